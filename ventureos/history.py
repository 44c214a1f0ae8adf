"""Full histories from the lake: every current violation of an entity, newest first, and one violation's
whole record with all its SCD2 versions.

Both read ``silver.violations`` through its lookup layout (``ventureos.lookup_layout``): a view of one
snapshot lists its data files with their partition (agency, event year) and manifest bounds; each file's
footer (row-group statistics) is read once per process and kept, since data files never change. So

- an entity's page reads its candidate files newest event year first and stops as soon as the page is
  full: the row groups whose statistics can hold the entity, a few columns of them;
- an id reads one row group per file whose id range holds it, in the partitions of the id's agency.

Pages are keyset-paginated on (``event_date`` desc, ``violation_id`` desc; no date last): the opaque
cursor is the last (date, id) seen, so a commit between two page requests neither repeats nor skips a
row that both snapshots hold (a row inserted before the cursor is simply not on later pages).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import polars as pl

from ventureos.entities import slugify
from ventureos.lakehouse import Lakehouse
from ventureos.schemas import VIOLATION_COLUMNS, VIOLATIONS_POLARS
from ventureos.silver_files import LOCATION, Footer, SilverFile, SilverView, position

LEVELS = ("company", "city", "state")
MAX_LIMIT = 500
PAGE_COLUMNS = (
    "violation_id", "agency", "dataset", "source_id", "event_date", "company_name", "company_slug",
    "address", "city", "state", "zip", "naics_code", "violation_type", "penalty_amount", "initial_penalty",
    "description",
)  # fmt: skip
"""What a history page (and its CSV) shows of each violation; ``violation_record`` has the rest."""
SPELLED_BY_ID = ("agency", "dataset", "source_id")
"""Page columns the violation id spells (``{agency}:{dataset}:{source_id}``): a company page derives
them instead of decoding three more column chunks per row group."""
VERSION_COLUMNS = (
    "valid_from", "valid_to", "is_current", "change_type", "event_date", "company_name", "penalty_amount",
    "initial_penalty", "violation_type", "record_hash", "meta_run_id", "meta_source_uri",
    "meta_ingest_timestamp",
)  # fmt: skip
LINEAGE_COLUMNS = (
    "record_hash",
    "meta_run_id",
    "meta_source_uri",
    "meta_ingest_timestamp",
    "valid_from",
    "valid_to",
)
"""Shown under ``lineage`` and ``versions`` of a record, not in it."""
OSHA_INSPECTION = "https://www.osha.gov/ords/imis/establishment.inspection_detail?id={}"
ECHO_FACILITY = "https://echo.epa.gov/detailed-facility-report?fid={}"


# Cursors ------------------------------------------------------------------------------------------


def encode_cursor(event_date: date | None, violation_id: str) -> str:
    """The opaque page cursor: the last (date, id) of a page, base64url JSON without padding."""
    raw = json.dumps([event_date.isoformat() if event_date else None, violation_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date | None, str]:
    """(date, id) of a cursor; ValueError for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        day, violation_id = json.loads(raw)
        if not isinstance(violation_id, str) or not violation_id or not (day is None or isinstance(day, str)):
            raise ValueError
        return (date.fromisoformat(day) if day else None), violation_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor[:40]!r}") from exc


_views: dict[tuple[str, ...], SilverView] = {}
_views_lock = threading.Lock()


def silver_view(lakehouse: Lakehouse, max_age: float = 0.0) -> SilverView:
    """The current snapshot's view; one younger than ``max_age`` seconds is reused as it is (an API
    process passes a second or so: refreshing reads the catalog and the table's metadata file)."""
    key = (str(lakehouse.settings.home), lakehouse.settings.warehouse_uri)
    with _views_lock:
        view = _views.get(key)
    if view is not None and time.monotonic() - view.loaded_at < max_age:
        return view
    table = lakehouse.violations()
    snapshot = table.current_snapshot()
    if view is not None and snapshot is not None and view.snapshot_id == snapshot.snapshot_id:
        view.loaded_at = time.monotonic()
        return view
    view = SilverView.of(table)
    view.loaded_at = time.monotonic()
    with _views_lock:
        _views[key] = view
    return view


# Entity pages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    rows: pl.DataFrame
    """``PAGE_COLUMNS`` of up to ``limit`` violations, newest first."""
    next_cursor: str | None
    """The cursor of the next page; None on the last page."""


@dataclass(frozen=True)
class EntityMatch:
    """How to find an entity's rows: the column whose statistics prune, and the exact row filter."""

    column: str
    value: str
    rows: pl.Expr
    columns: tuple[str, ...]
    """The columns ``rows`` reads."""
    key: pl.Expr
    """The entity's key of a row (company slug, ``city-st``, state), compared with ``value_key``."""
    value_key: str


def entity_match(level: str, key: str) -> EntityMatch:
    """``key``: the company slug, the city slug with its state (``new-york-ny``) or the state code."""
    if level == "company":
        slug = pl.col("company_slug")
        return EntityMatch("company_slug", key, slug == key, ("company_slug",), slug, key)
    if level == "state":
        state = key.upper()
        return EntityMatch("state", state, pl.col("state") == state, ("state",), pl.col("state"), state)
    if level == "city":
        city, _, state = key.rpartition("-")
        if not city or len(state) != 2:
            raise ValueError(
                f"invalid city key {key!r}: expected the city slug and the state, e.g. austin-tx"
            )
        state = state.upper()
        city_key = slugify(pl.col("city")) + "-" + pl.col("state").str.to_lowercase()
        return EntityMatch("state", state, city_key == key, ("state", "city"), city_key, key)
    raise ValueError(f"unknown entity level {level!r}; expected one of {', '.join(LEVELS)}")


def _after(cursor: tuple[date | None, str] | None) -> pl.Expr:
    """Rows after the cursor in the page order (date desc, id desc, no date last)."""
    if cursor is None:
        return pl.lit(True)
    day, violation_id = cursor
    if day is None:
        return pl.col("event_date").is_null() & (pl.col("violation_id") < violation_id)
    return (
        (pl.col("event_date") < day)
        | ((pl.col("event_date") == day) & (pl.col("violation_id") < violation_id))
        | pl.col("event_date").is_null()
    )


def entity_violations(
    lakehouse: Lakehouse,
    level: str,
    key: str,
    agency: str | None = None,
    year: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
    max_age: float = 0.0,
) -> Page:
    """Every current violation of a company, city or state, newest first, one page at a time.

    ``agency`` and ``year`` (of the event date) narrow it; ``cursor`` is a page's ``next_cursor``
    (ValueError when it is not one). ``max_age``: see ``silver_view``.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    match = entity_match(level, key)
    after = decode_cursor(cursor) if cursor is not None else None
    view = silver_view(lakehouse, max_age)
    newest_year = after[0].year if after and after[0] else None
    only_undated = after is not None and after[0] is None
    wanted = match.rows & pl.col("is_current") & _after(after)
    if year is not None:
        wanted &= pl.col("event_date").dt.year() == year
    # A company's rows are one run of each of its files (``lookup_layout``: one or two row groups), so
    # its page's columns are read with the columns that decide the page, in one pass. Cities and states
    # hold many rows of each file: two passes, the few columns that decide which rows a page holds for
    # every candidate row group, then the page's columns of only the row groups holding its rows.
    one_pass = level == "company"
    keys = sorted({"event_date", "violation_id", "is_current", *match.columns})
    if one_pass:
        keys = [c for c in PAGE_COLUMNS if c not in SPELLED_BY_ID]
    found: list[pl.DataFrame] = []
    count = 0
    current_year: object = object()
    for index, file in enumerate(view.files):
        if file.year != current_year:
            # A year's files are all read before stopping: the page order runs across files.
            if count > limit:
                break
            current_year = file.year
        if agency is not None and file.agency != agency:
            continue
        if year is not None and file.year != year:
            continue
        if file.year is not None and (only_undated or (newest_year is not None and file.year > newest_year)):
            continue
        if not file.may_hold(match.column, match.value):
            continue
        footer = view.footer(file)
        groups = sorted(
            set(_entity_groups(view, file, footer, match)) & set(footer.groups("is_current", True))
        )
        if not groups:
            continue
        if not one_pass:
            rows = view.read(file, groups, keys).with_columns(position(footer, groups, index))
        elif all(footer.row_groups[g].get("is_current") == (True, True) for g in groups):
            rows = view.read(file, groups, keys).with_columns(is_current=pl.lit(True))
        else:
            rows = view.read(file, groups, [*keys, "is_current"])
        rows = rows.filter(wanted)
        if not rows.is_empty():
            found.append(rows)
            count += rows.height
    if not found:
        return Page(pl.DataFrame(schema={c: VIOLATIONS_POLARS[c] for c in PAGE_COLUMNS}), None)
    order = {"by": ["event_date", "violation_id"], "descending": True, "nulls_last": True}
    chosen = pl.concat(found).sort(**order).head(limit + 1)
    if one_pass:
        spelled = pl.col("violation_id").str.splitn(":", 3)
        ordered = chosen.with_columns(
            spelled.struct[i].alias(name) for i, name in enumerate(SPELLED_BY_ID)
        ).select(PAGE_COLUMNS)
    else:
        page_rows = []
        for (file_key,), rows in chosen.select(LOCATION).group_by("_file"):
            file_index = int(file_key)  # type: ignore[call-overload]
            file, groups = view.files[file_index], sorted(rows["_group"].unique().to_list())
            footer = view.footer(file)
            read = view.read(file, groups, PAGE_COLUMNS).with_columns(position(footer, groups, file_index))
            page_rows.append(read.join(rows, on=list(LOCATION), how="semi").select(PAGE_COLUMNS))
        ordered = pl.concat(page_rows).sort(**order)
    page = ordered.head(limit)
    last = page.row(-1, named=True)
    next_cursor = encode_cursor(last["event_date"], last["violation_id"]) if ordered.height > limit else None
    return Page(page, next_cursor)


def _entity_groups(view: SilverView, file: SilverFile, footer: Footer, match: EntityMatch) -> list[int]:
    """The row groups of ``file`` holding ``match``'s entity, from a digest built on the file's first
    use: a file whose company range holds a slug alphabetically but not the company is skipped unread,
    and in the others only the row groups holding the entity are read (a company's rows are one run;
    a city's or state's are spread over the file)."""

    def build() -> dict[str, list[int]]:
        rows = _every_row_group(view, file, footer, match.columns)
        by_key = rows.group_by(match.key.alias("key")).agg(pl.col("_group").unique().sort())
        return dict(by_key.drop_nulls("key").iter_rows())

    groups: dict[str, list[int]] = footer.digest(("entities", match.columns), build)
    return groups.get(match.value_key, [])


def _every_row_group(
    view: SilverView, file: SilverFile, footer: Footer, columns: tuple[str, ...]
) -> pl.DataFrame:
    """``columns`` of the whole file, with each row's row group (``_group``)."""
    every_group = list(range(footer.metadata.num_row_groups))
    return view.read(file, every_group, columns).with_columns(position(footer, every_group, 0))


# One violation ------------------------------------------------------------------------------------


def agency_link(row: dict[str, Any], details: dict[str, Any]) -> str | None:
    """The violation's page on the agency's own site, where the source names one.

    OSHA enforcement: the inspection (``activity_nr``, the part of the source id before the citation);
    OSHA severe injury: the inspection it led to (``Inspection``), if any; EPA ECHO and ICIS FE&C: the
    facility's detailed report (``REGISTRY_ID``: the part of an ECHO source id before the date).
    """
    source = (row["agency"], row["dataset"])
    if source == ("osha", "enforcement"):
        return OSHA_INSPECTION.format(row["source_id"].split("-", 1)[0])
    if source == ("osha", "severe_injury"):
        inspection = _integral(details.get("Inspection"))
        return OSHA_INSPECTION.format(inspection) if inspection else None
    if source == ("epa", "echo"):
        return ECHO_FACILITY.format(row["source_id"].split(":", 1)[0])
    if source == ("epa", "icis_fec"):
        registry = _integral(details.get("REGISTRY_ID"))
        return ECHO_FACILITY.format(registry) if registry else None
    return None


def _integral(value: object) -> str | None:
    """``1018519`` from ``1018519``, ``1018519.0`` or ``1018519.00``; None for anything else."""
    text = str(value).strip() if value is not None else ""
    whole, _, fraction = text.partition(".")
    return whole if whole.isdigit() and fraction.strip("0") == "" else None


def violation_versions(lakehouse: Lakehouse, violation_id: str, max_age: float = 0.0) -> pl.DataFrame:
    """Every version of one violation (current, closed and delete tombstones), oldest first.

    Within the partitions of the id's agency, only files whose id hashes (``_id_hashes``, a digest of
    the file) hold it are read: the row groups the digest gives for its hash.
    """
    view = silver_view(lakehouse, max_age)
    agency = violation_id.split(":", 1)[0]
    wanted = _id_hash(pl.Series([violation_id]))[0]
    found = []
    for file in view.files:
        if (file.agency is not None and file.agency != agency) or not file.may_hold(
            "violation_id", violation_id
        ):
            continue
        footer = view.footer(file)
        hashes, hash_groups = footer.digest("id_hashes", partial(_id_hashes, view, file, footer))
        start, end = bisect_left(hashes, wanted), bisect_right(hashes, wanted)
        if start == end:
            continue
        groups = sorted(set(hash_groups[start:end]))
        rows = view.read(file, groups, VIOLATION_COLUMNS).filter(pl.col("violation_id") == violation_id)
        if not rows.is_empty():
            found.append(rows)
    if not found:
        return pl.DataFrame(schema=VIOLATIONS_POLARS)
    return pl.concat(found).sort("valid_from", nulls_last=True)


def _id_hashes(view: SilverView, file: SilverFile, footer: Footer) -> tuple[array[int], array[int]]:
    """The 64-bit hashes of the file's violation ids, sorted, and each one's row group (12 bytes a row:
    96 MB for 8M rows). Every file's id range holds almost every id and a row group's may be wide (the
    layout orders by company first), so without it an id lookup reads row groups of every file of its
    agency. Plain arrays searched with ``bisect``: a microsecond a file, where Polars' scalar
    ``search_sorted`` runs a query plan."""
    ids = _every_row_group(view, file, footer, ("violation_id",))
    digest = ids.select(hash=_id_hash(ids["violation_id"]), group=pl.col("_group").cast(pl.Int32)).sort(
        "hash"
    )
    return array("Q", digest["hash"].to_list()), array("i", digest["group"].to_list())


def _id_hash(ids: pl.Series) -> pl.Series:
    return ids.hash(seed=0)


def violation_record(lakehouse: Lakehouse, violation_id: str, max_age: float = 0.0) -> dict[str, Any] | None:
    """The whole record of one violation, or None when silver never held it.

    ``record``: the current version (the last one when the source deleted it) with its details parsed;
    ``versions``: every SCD2 version oldest first; ``lineage``: the source file and ingest time of the
    shown version; ``agency_url``: the agency's own page (``agency_link``).
    """
    versions = violation_versions(lakehouse, violation_id, max_age)
    if versions.is_empty():
        return None
    current = versions.filter(pl.col("is_current"))
    shown = (current if not current.is_empty() else versions.tail(1)).row(0, named=True)
    details = json.loads(shown["violation_details"]) if shown["violation_details"] else {}
    record = {c: shown[c] for c in VIOLATION_COLUMNS if c not in LINEAGE_COLUMNS}
    record["violation_details"] = details
    return {
        "violation_id": violation_id,
        "deleted": current.is_empty(),
        "record": record,
        "lineage": {
            "source_uri": shown["meta_source_uri"],
            "ingested_at": shown["meta_ingest_timestamp"],
            "run_id": shown["meta_run_id"],
        },
        "versions": versions.select(VERSION_COLUMNS).to_dicts(),
        "agency_url": agency_link(shown, details),
    }
