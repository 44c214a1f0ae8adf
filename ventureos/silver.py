"""SCD2 merge of normalized batches into ``silver.violations``, and the quarantine table.

Planning is pure (frames in, plan out); committing is one Iceberg transaction per table, so readers
see a batch either entirely or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import polars_hash  # noqa: F401  (registers .nchash)
from pyiceberg.expressions import In
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from ventureos.datafiles import EncodedFile, encode_partitions, upload
from ventureos.layout import source_as_of
from ventureos.schemas import (
    QUARANTINE_ARROW,
    ROW,
    SOURCE_URI,
    VIOLATION_COLUMNS,
    VIOLATIONS_POLARS,
    to_arrow,
    violations_schema,
)
from ventureos.silver_files import LOCATION, READ_THREADS, position, view_of

INSERT, UPDATE, DELETE = "INSERT", "UPDATE", "DELETE"
SCD2_COUNTS = ("inserted", "updated", "deleted", "unchanged", "stale", "duplicates")
COUNTS_SCHEMA = pl.Schema({"agency": pl.String, "dataset": pl.String} | dict.fromkeys(SCD2_COUNTS, pl.Int64))
# Quarantine reason of a record the source marks deleted whose violation silver never held.
WITHDRAWN = "deleted by the source (delete flag) and never loaded: no version to close"
# The same in a replace load, whose staging table starts empty: the delete stays out of the new rows.
LEFT_OUT_OF_REPLACE = "deleted by the source (delete flag): left out of the replacing rows"
WITHDRAWN_SCHEMA = pl.Schema(
    {"agency": pl.String, "dataset": pl.String, SOURCE_URI: pl.String, ROW: pl.UInt32}
)
# A version with no as-of (``source_as_of`` is null) is older than every version that has one.
OLDEST = datetime.min.replace(tzinfo=UTC)
# What gold and the live feed need to know which entities a record belongs to.
ENTITY_COLUMNS = ("violation_id", "agency", "company_name", "company_slug", "city", "state")


@dataclass
class Scd2Plan:
    """What one batch does to silver: the versions it adds and the current versions it closes."""

    added: pl.DataFrame
    closed: pl.DataFrame
    counts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COUNTS_SCHEMA))
    unchanged: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=violations_schema(ENTITY_COLUMNS))
    )
    """``ENTITY_COLUMNS`` of the batch's records that changed nothing in silver (and, when read by
    ``write_silver``, of the versions their current UPDATE versions closed). A re-run or redelivery
    of a batch whose run crashed after its silver commit changes nothing: gold and the live feed
    re-check these records' entities, or that crash would leave them behind silver for good."""
    withdrawn: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WITHDRAWN_SCHEMA))
    """Lineage (``SOURCE_URI``, ``ROW``) of the records the source marks deleted whose violation has no
    version in silver: nothing to close, so they go to quarantine (``WITHDRAWN``), not silver."""
    quality_issues: pl.Series | None = None
    """``quality_issues`` of the records as planned, after a recall completed them
    (``ingest.plan_batches``): what the run report counts. None: the batches' own."""

    @classmethod
    def empty(cls) -> Scd2Plan:
        return cls(added=empty_violations(), closed=empty_violations())

    @property
    def closed_ids(self) -> list[str]:
        return self.closed["violation_id"].to_list()

    @property
    def touched(self) -> pl.DataFrame:
        """``ENTITY_COLUMNS`` of every record of the batch: added and closed versions, unchanged records."""
        return pl.concat(
            [frame.select(ENTITY_COLUMNS) for frame in (self.added, self.closed, self.unchanged)]
        )

    @property
    def is_noop(self) -> bool:
        return self.added.is_empty() and self.closed.is_empty()


def empty_violations() -> pl.DataFrame:
    return pl.DataFrame(schema=VIOLATIONS_POLARS)


def plan_scd2(
    incoming: pl.DataFrame,
    current: pl.DataFrame,
    now: datetime,
    run_id: str,
    tombstones: pl.DataFrame | None = None,
) -> Scd2Plan:
    """Compare a finalized, valid batch with the current silver versions of the same ids.

    Unchanged hash -> no-op; changed -> close + new UPDATE version; ``is_deleted`` -> close + DELETE
    tombstone (never current); unknown id -> INSERT. A delete of an id with no current version is
    unchanged when ``tombstones`` (``deleted_before``: of ids with no current version) has it, else
    withdrawn.

    The monotonic guard: a record whose as-of (``layout.source_as_of`` of its source) is older than
    that of the id's current version, or of its tombstone when it has no current one, changes nothing
    and counts as ``stale``: a replay of an older date or message never makes older content current
    again, nor brings a deleted violation back. Equal as-of: the later ingest wins (re-running a date
    with a corrected file applies the correction). Within the batch the record with the latest as-of
    of an id wins (the last of those), the others count as duplicates.
    """
    if tombstones is None:
        tombstones = pl.DataFrame(schema=violations_schema(TOMBSTONE_COLUMNS))
    newest = pl.col("_as_of").fill_null(OLDEST)
    batch = (
        incoming.with_columns(_as_of=source_as_of(SOURCE_URI))
        .filter(newest == newest.max().over("violation_id"))
        .unique(subset=["violation_id"], keep="last", maintain_order=True)
    )
    ts = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    joined = batch.join(
        current.select(
            "violation_id", pl.col("record_hash").alias("_current_hash"), _current_as_of=source_as_of()
        ),
        on="violation_id",
        how="left",
    ).join(
        tombstones.select("violation_id", _deleted=pl.lit(True), _deleted_as_of=source_as_of()),
        on="violation_id",
        how="left",
    )
    exists = pl.col("_current_hash").is_not_null()
    was_deleted = pl.col("_deleted").fill_null(False) & ~exists
    than = pl.when(exists).then(pl.col("_current_as_of")).otherwise(pl.col("_deleted_as_of"))
    stale = than.is_not_null() & (pl.col("_as_of").is_null() | (pl.col("_as_of") < than))
    change = (
        pl.when(pl.col("_stale"))
        .then(pl.lit(None, dtype=pl.String))
        .when(~exists & ~pl.col("is_deleted"))
        .then(pl.lit(INSERT))
        .when(exists & pl.col("is_deleted"))
        .then(pl.lit(DELETE))
        .when(exists & (pl.col("_current_hash") != pl.col("record_hash")))
        .then(pl.lit(UPDATE))
    )
    withdrawn = pl.col("is_deleted") & ~exists & ~was_deleted
    decided = joined.with_columns(_stale=stale).with_columns(change_type=change, _withdrawn=withdrawn)
    added = (
        decided.filter(pl.col("change_type").is_not_null())
        .with_columns(
            meta_run_id=pl.lit(run_id),
            meta_source_uri=pl.col(SOURCE_URI),
            meta_ingest_timestamp=ts,
            valid_from=ts,
            valid_to=pl.when(pl.col("change_type") == DELETE).then(ts),
            is_current=pl.col("change_type") != DELETE,
        )
        .select(pl.col(c).cast(VIOLATIONS_POLARS[c]) for c in VIOLATION_COLUMNS)
    )
    closing_ids = added.filter(pl.col("change_type") != INSERT)["violation_id"]
    closed = current.filter(pl.col("violation_id").is_in(closing_ids.implode())).with_columns(
        valid_to=ts, is_current=pl.lit(False)
    )
    no_change = pl.col("change_type").is_null() & ~pl.col("_withdrawn") & ~pl.col("_stale")
    read = incoming.group_by("agency", "dataset").agg(pl.len().alias("_read"))
    counts = (
        decided.group_by("agency", "dataset")
        .agg(
            inserted=(pl.col("change_type") == INSERT).sum(),
            updated=(pl.col("change_type") == UPDATE).sum(),
            deleted=(pl.col("change_type") == DELETE).sum(),
            unchanged=no_change.sum(),
            stale=pl.col("_stale").sum(),
            _kept=pl.len(),
        )
        .join(read, on=["agency", "dataset"])
        .with_columns(duplicates=pl.col("_read") - pl.col("_kept"))
        .select(pl.col(c).cast(t) for c, t in COUNTS_SCHEMA.items())
        .sort("agency", "dataset")
    )
    unchanged = decided.filter(no_change).select(ENTITY_COLUMNS).cast(violations_schema(ENTITY_COLUMNS))
    withdrawn_rows = (
        decided.filter(pl.col("_withdrawn")).select(WITHDRAWN_SCHEMA.names()).cast(WITHDRAWN_SCHEMA)
    )
    return Scd2Plan(
        added=added,
        closed=closed.select(VIOLATION_COLUMNS),
        counts=counts,
        unchanged=unchanged,
        withdrawn=withdrawn_rows,
    )


TOMBSTONE_COLUMNS = ("violation_id", "meta_source_uri")
"""What the plan needs of the tombstone of an id with no current version: that it has one, its as-of."""


def deleted_before(table: Table, incoming: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """The last ``DELETE`` tombstone (``TOMBSTONE_COLUMNS``) of each id of ``incoming`` that has no
    current version: the source deleted it. A re-delivered delete of it is no news (a delete of an id
    with no version at all is withdrawn), and a record older than the delete must not bring it back.

    An id with versions but no current one was deleted (an update adds the current version in the
    commit that closes the old one), so only those ids' closed versions are read (the row groups that
    hold closed versions, ``silver_files``). Nothing is read when every id has a current version.
    """
    unmatched = incoming.filter(~pl.col("violation_id").is_in(current["violation_id"].implode()))
    if unmatched.is_empty():
        return pl.DataFrame(schema=violations_schema(TOMBSTONE_COLUMNS))
    view = view_of(table)
    rows = view.read_located(
        view.locate(unmatched["violation_id"], current=False),
        (*TOMBSTONE_COLUMNS, "valid_from", "change_type"),
    )
    return (
        rows.filter(pl.col("change_type") == DELETE)
        .sort("valid_from")
        .unique(subset=["violation_id"], keep="last")
        .select(TOMBSTONE_COLUMNS)
        .cast(violations_schema(TOMBSTONE_COLUMNS))
    )


def withdrawn_records(
    deleted: pl.DataFrame, withdrawn: pl.DataFrame, agency: str, dataset: str, reason: str = WITHDRAWN
) -> pl.DataFrame:
    """The quarantine rows (source_uri, reason, raw_payload) of one batch's withdrawn deletes.

    Matched by row number within the batch (one batch per agency/dataset), not by source URI: the
    feed rewrites that to the message's stable URI.
    """
    rows = withdrawn.filter(agency=agency, dataset=dataset).select(ROW)
    return deleted.join(rows, on=ROW, how="semi").select(
        "source_uri", reason=pl.lit(reason), raw_payload="raw_payload"
    )


def current_versions(
    table: Table,
    violation_ids: Iterable[str],
    columns: Sequence[str] = VIOLATION_COLUMNS,
    years: Iterable[int | None] | None = None,
) -> pl.DataFrame:
    """Current rows of the given ids (by default whole: the ones a batch may close); ``years``: the
    event years to search first (``SilverView.locate``)."""
    view = view_of(table)
    rows = view.read_located(view.locate(violation_ids, current=True, years=years), columns)
    return rows.select(columns).cast(violations_schema(columns))


def superseded_entities(table: Table, current: pl.DataFrame, unchanged: pl.DataFrame) -> pl.DataFrame:
    """``ENTITY_COLUMNS`` of the versions that the current UPDATE versions of ``unchanged`` records closed.

    A re-run must re-check these too: if the run that wrote the update crashed before gold and the
    live feed, those still count the violation under its old entity (say, before a rename).
    """
    updated = current.filter(
        pl.col("violation_id").is_in(unchanged["violation_id"].implode()) & (pl.col("change_type") == UPDATE)
    )
    if updated.is_empty():
        return unchanged.clear()
    view = view_of(table)
    closed = view.read_located(
        view.locate(updated["violation_id"], current=False), (*ENTITY_COLUMNS, "valid_to")
    )
    by_that_run = updated.select("violation_id", valid_to=pl.col("valid_from"))
    return (
        closed.join(by_that_run, on=["violation_id", "valid_to"])
        .select(ENTITY_COLUMNS)
        .cast(violations_schema(ENTITY_COLUMNS))
    )


def content_id(plan: Scd2Plan) -> uuid.UUID:
    """Order-independent identity of what a plan writes, stable across re-runs of the same input.

    Added versions count by id, hash and change type (their timestamps are the run's); closed ones
    also by ``valid_from``, so a value that flips back and forth is a new identity each time.
    """
    fields = ["violation_id", "record_hash", "change_type"]
    rows = pl.concat(
        [
            plan.added.select(pl.concat_str(fields, separator=":").alias("row")),
            plan.closed.select(
                pl.concat_str([*fields, pl.col("valid_from").cast(pl.String)], separator=":").alias("row")
            ),
        ]
    )
    digest = rows.select(pl.col("row").sort().str.join("\n").nchash.md5()).item()
    return uuid.UUID(hex=digest)


@dataclass(frozen=True)
class EncodedVersions:
    """A plan's rows as Parquet files of the table, encoded once (a historical batch also stores the
    added ones as its buffer files; daily and feed runs write one buffer file per dataset instead)."""

    write_id: uuid.UUID
    """Names the buffer files (data files get the commit's own random names: never overwritten)."""
    added: list[EncodedFile]
    closed: list[EncodedFile]


def encode_versions(table: Table, plan: Scd2Plan, write_id: uuid.UUID | None = None) -> EncodedVersions:
    """Encode the plan's closed and added versions by partition (and dataset: a buffer file is per dataset).

    ``write_id`` names the buffer files; by default it comes from the content.
    """
    schema, spec = table.schema(), table.spec()
    return EncodedVersions(
        write_id=write_id or content_id(plan),
        added=encode_partitions(schema, spec, plan.added, extra_keys=("dataset",)),
        closed=encode_partitions(schema, spec, plan.closed),
    )


def commit_scd2(
    table: Table,
    plan: Scd2Plan,
    encoded: EncodedVersions,
    snapshot_properties: dict[str, str] | None = None,
) -> None:
    """One atomic commit: closed versions are rewritten with valid_to, new versions appended.

    ``encoded`` are the plan's files (``encode_versions``: the caller writes the same bytes as buffer
    files). ``snapshot_properties`` land in the snapshot summary of that same commit (a historical
    load marks its batch there, so "written" and "recorded as done" are one fact); with them, a no-op
    plan still commits an empty snapshot to carry the mark.

    Closing is copy-on-write: each data file holding a current version the plan closes is replaced by
    a copy without it (``rewrite_without``), in the snapshot that appends the closed and new versions.
    ``table`` must still be at the snapshot the plan was made against; if another writer committed
    meanwhile, the commit fails (silver takes no rebased commits) and the caller plans again.
    """
    if plan.is_noop and not snapshot_properties:
        return
    with table.transaction() as txn:
        producer = txn.update_snapshot(snapshot_properties=snapshot_properties or {})
        removed = rewrite_without(table, plan.closed) if not plan.closed.is_empty() else []
        with producer.overwrite() if removed else producer.fast_append() as snapshot:
            uploads = [(snapshot.commit_uuid, [*encoded.closed, *encoded.added])]
            for data_file, copies in removed:
                snapshot.delete_data_file(data_file)
                # Named after the file it replaces: a copy's partition and index are a new file's too.
                uploads.append((uuid.uuid5(snapshot.commit_uuid, data_file.file_path), copies))
            for write_id, files in uploads:
                for data_file in upload(table, txn.table_metadata, files, write_id):
                    snapshot.append_data_file(data_file)


def rewrite_without(table: Table, closed: pl.DataFrame) -> list[tuple[DataFile, list[EncodedFile]]]:
    """Each data file holding a current version of ``closed``'s ids, with the encoded copy of its other
    rows (the layout's files, ``encode_partitions``; none when no row is left). Files are read one at a
    time per thread: memory holds a few files, whatever the lake's size."""
    view = view_of(table)
    located = view.locate(closed["violation_id"], current=True, years=closed["event_date"].dt.year())
    schema, spec = table.schema(), table.spec()

    def copy(file_index: int, rows: pl.DataFrame) -> tuple[DataFile, list[EncodedFile]]:
        file = view.files[file_index]
        footer = view.footer(file)
        every_group = list(range(footer.metadata.num_row_groups))
        kept = (
            view.read(file, every_group, VIOLATION_COLUMNS)
            .with_columns(position(footer, every_group, file_index))
            .join(rows.select(LOCATION), on=list(LOCATION), how="anti")
            .select(VIOLATION_COLUMNS)
        )
        return file.data_file, encode_partitions(schema, spec, kept) if not kept.is_empty() else []

    parts = [(int(key[0]), rows) for key, rows in located.group_by("_file")]  # type: ignore[call-overload]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lambda part: copy(*part), parts))


# Quarantine -------------------------------------------------------------------------------------


def quarantine_frame(
    rejects: pl.DataFrame, agency: str | None, dataset: str | None, run_id: str, now: datetime
) -> pl.DataFrame:
    """Rows for ``silver.violations_quarantine`` from (source_uri, reason, raw_payload) rows.

    The id hashes the payload, source and reason, so quarantining the same input twice stores it once.
    """
    return rejects.select(
        pl.concat_str(
            [pl.col(c).fill_null("") for c in ("source_uri", "reason", "raw_payload")], separator="\x1f"
        )
        .nchash.md5()
        .alias("quarantine_id"),
        pl.lit(agency, dtype=pl.String).alias("agency"),
        pl.lit(dataset, dtype=pl.String).alias("dataset"),
        "source_uri",
        "reason",
        "raw_payload",
        pl.lit(run_id).alias("run_id"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )


def append_quarantine(table: Table, frame: pl.DataFrame) -> int:
    """Append the records not already quarantined; one commit. Returns how many were new."""
    if frame.is_empty():
        return 0
    frame = frame.unique(subset=["quarantine_id"], keep="first", maintain_order=True)
    known = table.scan(
        row_filter=In("quarantine_id", set(frame["quarantine_id"].to_list())),
        selected_fields=("quarantine_id",),
    ).to_arrow()
    new = frame.filter(~pl.col("quarantine_id").is_in(known.column("quarantine_id").to_pylist()))
    if not new.is_empty():
        table.append(to_arrow(new, QUARANTINE_ARROW))
    return new.height
