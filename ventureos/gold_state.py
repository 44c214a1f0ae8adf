"""What gold is computed from: silver's rows grouped (``row_groups``), each gold table's stored partial
aggregates (``STATE``), and silver's net change since they were stored (``net_change``).

The partials (``ventureos.gold.partial`` says what each table keeps) are stored in one table, whose
commit names the silver snapshot they equal (``MARKER`` in the snapshot summary). A gold step moves them
to silver's current snapshot by the net change in between, read from Iceberg's own manifests
(``silver_changes``): the current rows of the data files the snapshots since the marker added, minus
those of the files they deleted. That is what those commits wrote, so a step costs its batch, not the
lake, and it is exact whoever committed:

- a retried step finds the marker already moved and applies nothing twice;
- a run that crashed after its silver commit is caught up by the next step (its files are in the
  change), and several commits (a daily run and a feed-poll) are applied together;
- a marker silver no longer holds (snapshots expired, a historical load swapped the table), no
  stored partials, or partials that cannot hold the rows a change removes (``Inconsistent``): they
  are computed from a scan of current silver.

Counts and penalty totals add and subtract (``merge``). A first/last date or a latest row cannot be
subtracted: where a removed row held a partial's extreme and no added row reaches it, ``merge``
reports the partial stale and it is recomputed from current silver. Copies of untouched rows (a
copy-on-write rewrite deletes a file and adds them again) cancel out first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFile, ManifestEntryStatus
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DateType, IntegerType, LongType, NestedField, StringType

from ventureos.catalog import ensure_table, rewrites_only
from ventureos.schemas import MONEY, polars_schema, to_arrow, violations_schema

MARKER = "ventureos.silver-snapshot-id"
"""Snapshot-summary property of the partials' commits: the silver snapshot they equal."""
SILVER_COLUMNS = (
    "violation_id", "agency", "event_date", "company_name", "company_slug", "city", "state", "naics_code",
    "penalty_amount", "violation_type",
)  # fmt: skip
"""The silver columns gold needs: reads of silver project to these."""
READ_THREADS = 4
PENALTY = pl.Decimal(MONEY.precision, MONEY.scale)

NAME_GROUP = ("agency", "company_slug", "company_name", "city", "state")
"""What a stats or place row's entity and display name derive from."""
YEAR_GROUP = ("agency", "company_slug", "city", "state", "year", "violation_type")
"""What a year-stats row's entity, year and severity class derive from."""
LATEST = "\x1f"


def row_order() -> pl.Expr:
    """One string per row that sorts like (event date, violation id): ISO dates sort as text, a
    missing date sorts first, and the separator (below every printable character) keeps ``id-1``
    before ``id-10``."""
    return pl.concat_str(
        [pl.col("event_date").cast(pl.String).fill_null(""), pl.col("violation_id")], separator=LATEST
    )


def latest_key(order: pl.Expr, value: pl.Expr) -> pl.Expr:
    """``order`` (a ``row_order``) followed by ``value``: its max over a group is the value of the group's
    latest row that has one (null ``value``: null). Streamable, where ``sort_by().last()`` needs every
    row of a group in memory (3 GB for a rebuild over 8M rows). Rows sharing ``value`` may first be
    reduced to their max ``order``: the separator sorts below any character, so the max commutes."""
    return pl.concat_str([order, value], separator=LATEST)


def _counted(rows: pl.LazyFrame, by: Sequence[str], *aggs: pl.Expr) -> pl.LazyFrame:
    return rows.group_by(*by).agg(
        pl.len().cast(pl.Int64).alias("violation_count"),
        pl.col("penalty_amount").sum().cast(PENALTY).alias("penalty_total"),
        *aggs,
    )


def row_groups(silver: pl.DataFrame | pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Silver rows (``SILVER_COLUMNS``) grouped by ``NAME_GROUP`` (counts, penalties, dates, the latest
    row's order and the latest industry) and by ``YEAR_GROUP`` (counts, penalties)."""
    rows = silver.lazy()
    names = _counted(
        rows,
        NAME_GROUP,
        pl.col("event_date").min().alias("first_event_date"),
        pl.col("event_date").max().alias("last_event_date"),
        row_order().max().alias("latest_row"),
        # The industry of the latest violation that has one.
        latest_key(row_order(), pl.col("naics_code")).max().alias("latest_industry"),
    )
    years = _counted(
        rows.with_columns(pl.col("event_date").dt.year().cast(pl.Int32).alias("year")), YEAR_GROUP
    )
    return names, years


def current_silver(violations: Table, storage_options: dict[str, str] | None = None) -> pl.LazyFrame:
    """Every current silver row, ``SILVER_COLUMNS`` only, as a lazy scan that Polars reads itself.

    Polars reads the data files natively (2M rows: 0.7 s, against 4 s through pyiceberg's
    ``to_arrow``), and filters given to the frame stay Polars filters: pyiceberg's ``In`` over many
    values binds each value for each data file in Python. ``storage_options`` are Polars'
    object-store options (``Storage.polars_storage_options``): Polars does not see pyiceberg's S3
    endpoint.
    """
    # Plan with pyiceberg (what Polars falls back to anyway) without warning that the optional
    # polars_iceberg planner is not installed; an operator's choice wins.
    os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")
    return (
        pl.scan_iceberg(violations, storage_options=storage_options)
        .filter(pl.col("is_current"))
        .select(SILVER_COLUMNS)
    )


STATE = "gold.rollup_state"
STATE_SCHEMA = Schema(
    # The gold table (identifier) whose partial aggregates a row holds: one table for all, so every
    # part moves in one commit with one marker.
    NestedField(1, "gold_table", StringType(), required=True),
    NestedField(2, "entity_key", StringType(), required=True),
    NestedField(3, "place_key", StringType(), required=False),
    NestedField(4, "agency", StringType(), required=True),
    NestedField(5, "spelling", StringType(), required=False),
    NestedField(6, "year", IntegerType(), required=False),
    NestedField(7, "severity", StringType(), required=False),
    NestedField(8, "violation_count", LongType(), required=True),
    NestedField(9, "penalty_total", MONEY, required=True),
    NestedField(10, "first_event_date", DateType(), required=False),
    NestedField(11, "last_event_date", DateType(), required=False),
    NestedField(12, "latest_name", StringType(), required=False),
    NestedField(13, "latest_industry", StringType(), required=False),
    # A city's or state's partials are per company too (None: rows without one).
    NestedField(14, "company_slug", StringType(), required=False),
)
STATE_ARROW = STATE_SCHEMA.as_arrow()
STATE_POLARS = polars_schema(STATE_ARROW)
STATE_COLUMNS = {
    "spelling": "_spelling",
    "latest_name": "_latest_name",
    "latest_industry": "_latest_industry",
}
"""Stored column -> the name the rollups (``ventureos.gold``) give it."""
STATE_NAMES = {rollup: stored for stored, rollup in STATE_COLUMNS.items()}
EXTREMES = {
    "first_event_date": "min",
    "last_event_date": "max",
    "_latest_name": "max",
    "_latest_industry": "max",
}
"""Partial aggregates that cannot be subtracted, and how they combine."""


def state_table(catalog: Catalog) -> Table:
    return ensure_table(catalog, STATE, STATE_SCHEMA)


def stored_state(catalog: Catalog) -> tuple[pl.DataFrame, int | None]:
    """The stored partial aggregates (rollup names) and the silver snapshot they equal (None: none)."""
    table = state_table(catalog)
    snapshot = table.current_snapshot()
    marker = snapshot.summary[MARKER] if snapshot is not None and snapshot.summary is not None else None
    rows = pl.from_arrow(table.scan().to_arrow())
    assert isinstance(rows, pl.DataFrame)
    return rows.cast(STATE_POLARS).rename(STATE_COLUMNS), None if marker is None else int(marker)  # type: ignore[arg-type]


def store_state(catalog: Catalog, partials: pl.DataFrame, snapshot_id: int | None) -> None:
    """Replace the stored partial aggregates (rollup names, ``gold_table`` set) in one commit."""
    renamed = partials.rename(STATE_NAMES, strict=False)
    rows = renamed.select(
        pl.col(c).cast(t) if c in renamed.columns else pl.lit(None, t).alias(c)
        for c, t in STATE_POLARS.items()
    )
    marker = {MARKER: str(snapshot_id)} if snapshot_id is not None else {}
    state_table(catalog).overwrite(to_arrow(rows, STATE_ARROW), snapshot_properties=marker)


def net_change(violations: Table, since: int) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Current silver rows (``SILVER_COLUMNS``) added and removed since snapshot ``since``; None when
    ``since`` is not an ancestor of the current snapshot. Copies of untouched rows (a copy-on-write
    rewrite deletes a file and adds its other rows again) cancel."""
    change = silver_changes(violations, since)
    if change is None:
        return None
    added, removed = (_current_rows(violations, files) for files in change)
    on = list(SILVER_COLUMNS)
    return (
        added.join(removed, on=on, how="anti", nulls_equal=True),
        removed.join(added, on=on, how="anti", nulls_equal=True),
    )


class Inconsistent(Exception):
    """The stored partials cannot be the aggregate of the rows a change removes (a removed row's partial
    is not stored, or a count would go below zero): e.g. a deploy changed how a spelling or a severity
    class is derived. The partials must be computed again from a scan."""


def merge(
    stored: pl.DataFrame, added: pl.DataFrame, removed: pl.DataFrame, by: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``stored`` partial aggregates plus ``added`` minus ``removed`` (partials of rows, keyed by ``by``),
    and the keys (``by``) whose extremes a removed row held: their merged extremes are not known.
    Raises ``Inconsistent`` when ``removed`` cannot have been counted in ``stored``."""
    by = list(by)
    if added.is_empty() and removed.is_empty():
        return stored, stored.clear().select(by)
    keys = pl.concat([added.select(by), removed.select(by)]).unique()
    touched = stored.join(keys, on=by, how="semi", nulls_equal=True)
    kept = stored.join(keys, on=by, how="anti", nulls_equal=True)
    values = [c for c in stored.columns if c not in by]
    merged = (
        keys.join(touched, on=by, how="left", nulls_equal=True)
        .join(added.rename({c: f"_a{c}" for c in values}), on=by, how="left", nulls_equal=True)
        .join(removed.rename({c: f"_r{c}" for c in values}), on=by, how="left", nulls_equal=True)
    )
    sums = [
        (pl.col(c).fill_null(0) + pl.col(f"_a{c}").fill_null(0) - pl.col(f"_r{c}").fill_null(0)).cast(
            stored.schema[c]
        )
        for c in ("violation_count", "penalty_total")
    ]
    extremes, stale = [], pl.lit(False)
    for c, how in EXTREMES.items():
        if c not in values:
            continue
        old, new, gone = pl.col(c), pl.col(f"_a{c}"), pl.col(f"_r{c}")
        if how == "min":
            extremes.append(pl.min_horizontal(old, new).alias(c))
            beaten = new.is_null() | (new > gone)
        else:
            extremes.append(pl.max_horizontal(old, new).alias(c))
            beaten = new.is_null() | (new < gone)
        # The removed rows held the extreme (theirs equals the stored one) and no added row reaches it.
        stale = stale | (gone.is_not_null() & gone.eq_missing(old) & beaten)
    unknown = pl.col("_rviolation_count").is_not_null() & pl.col("violation_count").is_null()
    merged = merged.select(*by, *sums, *extremes, stale.alias("_stale"), unknown.alias("_unknown"))
    count, penalty = pl.col("violation_count"), pl.col("penalty_total")
    if not merged.filter(pl.col("_unknown") | (count < 0) | ((count == 0) & (penalty != 0))).is_empty():
        raise Inconsistent(f"removed rows not counted in the stored partials (keys {', '.join(by)})")
    merged = merged.drop("_unknown").filter(count > 0)
    return (
        pl.concat([kept, merged.drop("_stale").select(stored.columns)]),
        merged.filter("_stale").select(by),
    )


def silver_changes(violations: Table, since: int) -> tuple[list[DataFile], list[DataFile]] | None:
    """The data files added and deleted by the snapshots after ``since`` up to the current one (net: a
    file added then deleted in between is in neither), from the manifests those snapshots wrote.
    None when ``since`` is not an ancestor of the current snapshot (expired, or the table replaced).

    A compaction (``catalog.rewrites_only``) of files that predate ``since`` is left out: its new files
    hold exactly the rows of the files it removed, which stay counted, and a later change to a compacted
    file is a deletion of that file like any other. Reading it instead would read every file it
    rewrote, twice: the whole lake after ``ventureos maintain``. One that rewrote a file added since
    ``since`` is read like any snapshot: left out, that file's rows would be added both from it and
    from the compacted file, and cancel against one removal of the latter."""
    chain = []
    snapshot = violations.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since:
        chain.append(snapshot)
        parent = snapshot.parent_snapshot_id
        snapshot = violations.snapshot_by_id(parent) if parent is not None else None
    if snapshot is None:
        return None
    io = violations.io
    added: dict[str, DataFile] = {}
    deleted: dict[str, DataFile] = {}
    for snapshot in reversed(chain):
        entries = [
            entry
            for manifest in snapshot.manifests(io)
            # A manifest written by an earlier snapshot: its entries are not this one's changes.
            if manifest.added_snapshot_id == snapshot.snapshot_id
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False)
            if entry.snapshot_id == snapshot.snapshot_id
        ]
        gone = [e.data_file.file_path for e in entries if e.status == ManifestEntryStatus.DELETED]
        if rewrites_only(snapshot) and not any(path in added for path in gone):
            continue
        for entry in entries:
            path = entry.data_file.file_path
            if entry.status == ManifestEntryStatus.ADDED:
                added[path] = entry.data_file
            elif entry.status == ManifestEntryStatus.DELETED and added.pop(path, None) is None:
                deleted[path] = entry.data_file
    return list(added.values()), list(deleted.values())


def _current_rows(violations: Table, files: list[DataFile]) -> pl.DataFrame:
    """The current rows (``SILVER_COLUMNS``) of some of silver's data files."""
    columns = [*SILVER_COLUMNS, "is_current"]

    def read(file: DataFile) -> pl.DataFrame:
        with violations.io.new_input(file.file_path).open() as stream:
            rows = pl.from_arrow(pq.read_table(stream, columns=columns))
        assert isinstance(rows, pl.DataFrame)
        return rows.filter("is_current").select(SILVER_COLUMNS)

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        frames = list(pool.map(read, files))
    schema = violations_schema(SILVER_COLUMNS)
    return pl.concat([f.cast(schema) for f in frames]) if frames else pl.DataFrame(schema=schema)  # type: ignore[arg-type]
