"""Buffer -> monthly archive -> immutable yearly archive, without losing or duplicating a version.

Input: the buffer files; output: one archive file per event month, one immutable file per closed year,
and a late file per closed year for rows that arrived after it closed; a work area holds the staging
files and manifests of a run in progress (keys: ``ventureos.layout``). Rows without an event date go to ``violation_year=unknown/month=unknown``; that year is never closed.

Every run is the same three-phase protocol, identical on local disk and S3 (which has no rename):

1. *Stage*: each new target file is written under a unique staging key and read back; its row count
   and content checksum must equal what was planned.
2. *Commit*: one JSON manifest lists the staged files, their targets, counts, checksums and the source
   files they replace. Writing it is the commit point: before it nothing visible changed; after it
   the run only ever rolls forward.
3. *Apply*: each staged file is swapped into place (rename locally, server-side copy on S3), the
   target is read back and verified again, then the sources are deleted, then the manifest.

Each run first applies any manifest a crashed run left behind and removes unreferenced staging
files. Given silver, monthly consolidation archives only the buffered versions silver holds (the
*verified sweep*, ``committed_versions``): buffer files are written before silver's commit, so a run
that died in between leaves versions silver never held; they are counted as ``orphaned``, named in the
report, and their files are deleted with the month's other sources once the archive is verified. Merging is idempotent (versions deduplicated by ``VERSION_KEY``), so re-reading a source whose
rows already reached the archive adds nothing. Run one consolidation at a time (deploy both flows
with a shared concurrency limit of one); a buffer file written during a run is not in its manifest
and is left for the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers .nchash)
from pyiceberg.expressions import And, BooleanExpression, EqualTo, In
from pyiceberg.table import Table

from ventureos.layout import (
    BUFFER_PREFIX,
    CONSOLIDATION_MANIFEST_PREFIX,
    CONSOLIDATION_STAGING_PREFIX,
    LATE_PREFIX,
    archive_year_prefix,
    buffer_ingest_date,
    consolidation_manifest_key,
    consolidation_staging_key,
    is_month_key,
    late_key,
    month_key,
    year_key,
)
from ventureos.schemas import VIOLATION_COLUMNS, VIOLATIONS_POLARS
from ventureos.storage import Storage

UNKNOWN = "unknown"

VERSION_KEY = ("violation_id", "record_hash", "change_type")
"""One version of a violation: an UPDATE and the DELETE tombstone that follows it are two rows."""

COMMITTED_KEY = ("violation_id", "valid_from", "record_hash")
"""How a buffered version is matched to silver's: the same write (``valid_from``) of the same content."""

ID_FILTER_LIMIT = 10_000
"""Up to this many ids per agency, silver is read with an ``In`` filter on them; above it, the agency's
partitions are read (three columns) and joined: an ``In`` of 100k+ literals costs more than the scan."""

GRACE_MONTH = 7
"""A year may be closed from July 1 of the next year: six months for late rows to arrive."""


class ConsolidationError(RuntimeError):
    """A file did not verify, or the archive is in a state the protocol cannot repair by itself."""


class GracePeriodError(ValueError):
    """The yearly consolidation was asked for before the grace period ended (and without force)."""


# Keys -------------------------------------------------------------------------------------------


def month_files(storage: Storage, year: str) -> list[str]:
    """The month files of one violation year (never the year file itself)."""
    return [k for k in storage.list(archive_year_prefix(year)) if is_month_key(k)]


def buffer_files(storage: Storage, month: str) -> list[str]:
    """Buffer files whose ingest date falls in ``month`` (YYYY-MM) or before it.

    Earlier months' buffers are normally gone (consolidated); any still there arrived after their
    month's run, e.g. a missed day ingested later under its own date: this run takes them along.
    """
    return [
        key
        for folder in storage.list_dirs(BUFFER_PREFIX)
        if (ingest_date := buffer_ingest_date(folder)) is not None and ingest_date[:7] <= month
        for key in storage.list(f"{BUFFER_PREFIX}/{folder}")
        if key.endswith(".parquet")
    ]


# Parameters -------------------------------------------------------------------------------------


def parse_month(value: str) -> str:
    try:
        return datetime.strptime(value, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {value!r}") from None


def parse_year(value: str | int) -> str:
    text = str(value)
    if not (text.isdigit() and len(text) == 4):
        raise ValueError(f"year must be YYYY, got {value!r}")
    return text


def previous_month(today: date) -> str:
    first = today.replace(day=1)
    return f"{first.year - 1}-12" if first.month == 1 else f"{first.year}-{first.month - 1:02d}"


def previous_year(today: date) -> str:
    return str(today.year - 1)


def grace_ends(year: str) -> date:
    return date(int(year) + 1, GRACE_MONTH, 1)


def check_grace(year: str, today: date, force: bool) -> None:
    """Refuse to close a year before its grace period ends, unless forced."""
    if not force and today < grace_ends(year):
        raise GracePeriodError(
            f"year {year} can be closed from {grace_ends(year).isoformat()} (6-month grace for late rows);"
            " use --force (force=True) to close it earlier"
        )


# Pure planning ----------------------------------------------------------------------------------


def conform_versions(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """The silver.violations columns in contract order and types; a foreign file fails by name."""
    missing = [c for c in VIOLATION_COLUMNS if c not in frame.columns]
    if missing:
        raise ConsolidationError(f"{source}: not a violations file, missing column(s) {', '.join(missing)}")
    return frame.select(pl.col(c).cast(VIOLATIONS_POLARS[c]) for c in VIOLATION_COLUMNS)


def empty_versions() -> pl.DataFrame:
    return pl.DataFrame(schema=VIOLATIONS_POLARS)


def dedupe_versions(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per version (the latest ``valid_from`` wins), sorted so file bytes are reproducible."""
    return (
        frame.sort("valid_from", nulls_last=False, maintain_order=True)
        .unique(subset=list(VERSION_KEY), keep="last", maintain_order=True)
        .sort("event_date", "violation_id", "valid_from", "change_type", "record_hash", nulls_last=True)
    )


def content_checksum(frame: pl.DataFrame) -> str:
    """Order-independent checksum of every column of every row (what a read-back must reproduce)."""
    if frame.is_empty():
        return ""
    # Lazy: the engine encodes and hashes the rows on every core (eager: one core, twice the time).
    return (
        frame.lazy()
        .select(
            pl.struct(VIOLATION_COLUMNS).struct.json_encode().nchash.md5().sort().str.join("\n").nchash.md5()
        )
        .collect()
        .item()
    )


EVENT_YEAR = pl.col("event_date").dt.year().cast(pl.String).fill_null(UNKNOWN)
EVENT_MONTH = pl.col("event_date").dt.strftime("%m").fill_null(UNKNOWN)


def target_key(closed_years: set[str]) -> pl.Expr:
    """Where a row belongs: its event month's file, or the late area when that year is closed."""
    return (
        pl.when(EVENT_YEAR.is_in(sorted(closed_years)))
        .then(pl.format(late_key("{}"), EVENT_YEAR))
        .otherwise(pl.format(month_key("{}", "{}"), EVENT_YEAR, EVENT_MONTH))
    )


def merge_versions(
    existing: pl.DataFrame, incoming: pl.DataFrame, known: pl.DataFrame
) -> tuple[pl.DataFrame, int]:
    """Existing file rows plus the incoming versions, one row per version wherever it came from
    (the latest ``valid_from`` wins); incoming versions listed in ``known`` are left out.

    Returns the merged frame and how many versions it adds to the existing file.
    """
    keys = list(VERSION_KEY)
    unseen = incoming.join(known.select(keys), on=keys, how="anti", nulls_equal=True)
    merged = dedupe_versions(pl.concat([existing, unseen]))
    return merged, merged.join(existing.select(keys), on=keys, how="anti", nulls_equal=True).height


# Result -----------------------------------------------------------------------------------------


@dataclass
class ConsolidationResult:
    """What a run did; ``rows_in == rows_added + duplicates + orphaned`` always holds."""

    kind: str
    scope: str
    rows_in: int = 0
    rows_added: int = 0
    duplicates: int = 0
    rows_out: int = 0
    """Rows in the files written (existing rows they kept plus the rows added)."""
    late_rows: int = 0
    """Rows added to the late area because their year was already closed."""
    files_read: int = 0
    files_removed: int = 0
    written: list[str] = field(default_factory=list)
    recovered: int = 0
    """Manifests of crashed runs this run completed before its own work."""
    orphaned: int = 0
    """Buffered rows whose version silver does not hold (left out of the archive, their files deleted)."""
    orphaned_files: list[str] = field(default_factory=list)
    """The buffer files that held them."""

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.rows_added + self.duplicates + self.orphaned

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": f"{self.kind}-consolidate",
            "scope": self.scope,
            "rows_in": self.rows_in,
            "rows_added": self.rows_added,
            "duplicates": self.duplicates,
            "rows_out": self.rows_out,
            "late_rows": self.late_rows,
            "files_read": self.files_read,
            "files_removed": self.files_removed,
            "written": self.written,
            "recovered": self.recovered,
            "orphaned": self.orphaned,
            "orphaned_files": self.orphaned_files,
            "reconciled": self.reconciled,
        }

    def summary_line(self) -> str:
        status = "reconciled" if self.reconciled else "NOT RECONCILED"
        return (
            f"rows in {self.rows_in} = added {self.rows_added} + duplicates {self.duplicates}"
            f" + orphaned {self.orphaned} ({status});"
            f" rows out {self.rows_out} in {len(self.written)} file(s); late rows {self.late_rows};"
            f" files removed {self.files_removed}"
        )

    def markdown(self) -> str:
        lines = [f"# {self.kind}-consolidate {self.scope}", "", self.summary_line(), "", "| metric | value |"]
        lines.append("|---|---|")
        lines += [f"| {k} | {v} |" for k, v in self.as_dict().items() if isinstance(v, int | bool)]
        if self.written:
            lines += ["", "## Written", ""] + [f"- `{key}`" for key in self.written]
        if self.orphaned_files:
            lines += ["", "## Orphaned (versions silver does not hold)", ""]
            lines += [f"- `{key}`" for key in self.orphaned_files]
        return "\n".join(lines)


# Storage steps (each a named function, so a test can make exactly one of them fail) -------------


@dataclass(frozen=True)
class StagedFile:
    key: str
    staging: str
    rows: int
    checksum: str


def read_versions(storage: Storage, keys: list[str]) -> pl.DataFrame:
    frames = [conform_versions(storage.read_parquet(key), key) for key in keys]
    return pl.concat(frames) if frames else empty_versions()


SOURCE_FILE = "_source_file"


def scan_versions(storage: Storage, keys: list[str]) -> pl.LazyFrame:
    """All source files as one lazy frame (plus each row's file URI in ``_source_file``); each file's
    schema is checked first, so a foreign or broken file fails the run by name before anything is written."""
    for key in keys:
        try:
            schema = storage.scan_parquet([key]).collect_schema()
        except pl.exceptions.ComputeError as exc:
            raise ConsolidationError(f"{key}: not a readable Parquet file ({exc})") from exc
        conform_versions(pl.DataFrame(schema=schema), key)
    return _scan_checked(storage, keys)


def _scan_checked(storage: Storage, keys: list[str]) -> pl.LazyFrame:
    return storage.scan_parquet(keys, include_file_paths=SOURCE_FILE).select(
        *(pl.col(c).cast(VIOLATIONS_POLARS[c]) for c in VIOLATION_COLUMNS), SOURCE_FILE
    )


def verify_file(storage: Storage, key: str, rows: int, checksum: str) -> None:
    """Read the file back; its row count and content checksum must be the planned ones."""
    found = conform_versions(storage.read_parquet(key), key)
    found_checksum = content_checksum(found)
    if found.height != rows or found_checksum != checksum:
        raise ConsolidationError(
            f"{key}: verification failed, expected {rows} rows (checksum {checksum or '-'}),"
            f" read back {found.height} (checksum {found_checksum or '-'})"
        )


def stage_target(storage: Storage, key: str, frame: pl.DataFrame) -> StagedFile:
    """Write the new content of ``key`` under a unique staging key and verify it."""
    target = StagedFile(key, consolidation_staging_key(), frame.height, content_checksum(frame))
    storage.write_parquet(target.staging, frame)
    verify_file(storage, target.staging, target.rows, target.checksum)
    return target


def write_manifest(
    storage: Storage, kind: str, scope: str, targets: list[StagedFile], sources: list[str]
) -> str:
    """The commit point of a run: from here on, it only rolls forward."""
    created = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = consolidation_manifest_key(created, kind, scope)
    body = {
        "kind": kind,
        "scope": scope,
        "targets": [t.__dict__ for t in targets],
        "sources": sources,
    }
    storage.write_bytes(key, json.dumps(body, indent=2).encode())
    return key


def swap_target(storage: Storage, target: StagedFile) -> None:
    """Put the staged file in place: a rename locally, a server-side copy on S3 (atomic per object)."""
    storage.replace(target.staging, target.key)


def is_in_place(storage: Storage, target: StagedFile) -> bool:
    """True when the target already holds exactly the staged content (a swap done before a crash)."""
    if not storage.exists(target.key):
        return False
    found = conform_versions(storage.read_parquet(target.key), target.key)
    return found.height == target.rows and content_checksum(found) == target.checksum


def delete_source(storage: Storage, key: str) -> None:
    storage.delete(key)


def finish_manifest(storage: Storage, manifest_key: str, targets: list[StagedFile]) -> None:
    for target in targets:
        storage.delete(target.staging)
    storage.delete(manifest_key)


def apply_manifest(storage: Storage, manifest_key: str) -> int:
    """Roll a committed run forward: swap, verify, then delete sources. Returns files removed."""
    body = json.loads(storage.read_bytes(manifest_key))
    targets = [StagedFile(**t) for t in body["targets"]]
    for target in targets:
        if not is_in_place(storage, target):
            if not storage.exists(target.staging):
                raise ConsolidationError(
                    f"{manifest_key}: staged file {target.staging} for {target.key} is gone and the target"
                    " does not hold its content; restore it or the target before re-running"
                )
            swap_target(storage, target)
        verify_file(storage, target.key, target.rows, target.checksum)
    removed = 0
    for source in body["sources"]:
        if storage.exists(source):
            delete_source(storage, source)
            removed += 1
    for folder in sorted({source.rpartition("/")[0] for source in body["sources"]}):
        storage.remove_empty_folder(folder)  # a month or ingest-date folder left empty on local disk
    finish_manifest(storage, manifest_key, targets)
    return removed


def recover(storage: Storage) -> int:
    """Complete every manifest a crashed run left, oldest first, then drop unreferenced staging files."""
    manifests = [k for k in storage.list(CONSOLIDATION_MANIFEST_PREFIX) if k.endswith(".json")]
    for key in manifests:
        apply_manifest(storage, key)
    for key in storage.list(CONSOLIDATION_STAGING_PREFIX):
        storage.delete(key)
    return len(manifests)


# The verified sweep --------------------------------------------------------------------------


def silver_versions(silver: Table, buffered: pl.DataFrame) -> pl.DataFrame:
    """``COMMITTED_KEY`` of silver's versions (current or closed) of the ids in ``buffered``
    (``agency``, ``violation_id``): only those ids are read, agency by agency."""
    frames = [pl.DataFrame(schema={c: VIOLATIONS_POLARS[c] for c in COMMITTED_KEY})]
    for (agency,), part in buffered.partition_by("agency", as_dict=True).items():
        ids = part["violation_id"].unique()
        row_filter: BooleanExpression = EqualTo("agency", str(agency))
        if ids.len() <= ID_FILTER_LIMIT:
            row_filter = And(row_filter, In("violation_id", set(ids)))
        arrow = silver.scan(row_filter=row_filter, selected_fields=COMMITTED_KEY).to_arrow()
        rows = pl.DataFrame(pl.from_arrow(arrow)).select(
            pl.col(c).cast(VIOLATIONS_POLARS[c]) for c in COMMITTED_KEY
        )
        frames.append(rows.join(part.select("violation_id").unique(), on="violation_id", how="semi"))
    return pl.concat(frames).unique()


def committed_versions(
    storage: Storage, scan: pl.LazyFrame, silver: Table, result: ConsolidationResult
) -> pl.DataFrame:
    """The verified sweep: ``COMMITTED_KEY`` of the buffered versions silver holds. The other rows
    (a write that died between its buffer files and its commit; a version a historical *replace*
    removed from silver since) are counted in ``result.orphaned`` and their files named."""
    keys = list(COMMITTED_KEY)
    buffered = scan.select("agency", *keys, SOURCE_FILE).collect()
    silver.refresh()
    held = silver_versions(silver, buffered.select("agency", "violation_id").unique())
    orphans = buffered.join(held, on=keys, how="anti", nulls_equal=True)
    result.orphaned = orphans.height
    result.orphaned_files = sorted({storage.key_of(uri) for uri in orphans[SOURCE_FILE]})
    return buffered.join(held, on=keys, how="semi", nulls_equal=True).select(keys).unique()


def only_committed(frame: pl.LazyFrame, committed: pl.DataFrame | None) -> pl.LazyFrame:
    if committed is None:
        return frame
    keys = list(COMMITTED_KEY)
    return frame.join(committed.lazy(), on=keys, how="semi", nulls_equal=True)


# Runs -------------------------------------------------------------------------------------------


def _consolidate(
    storage: Storage,
    result: ConsolidationResult,
    sources: list[str],
    target: pl.Expr,
    known: dict[str, pl.DataFrame],
    scan: pl.LazyFrame | None = None,
    committed: pl.DataFrame | None = None,
) -> ConsolidationResult:
    """Merge each target's rows into its current content, stage, commit, apply.

    One pass finds which source files hold rows of which target; each target then reads only those
    files (after a backfill, a month's buffer holds hundreds of event months: reading every source per
    target would cost targets x sources). Memory holds one target's rows, not the input. A target whose
    content would not change is not rewritten. With ``committed`` (the verified sweep), only those
    versions are archived; ``result.orphaned`` already counts the others, read but left out.
    """
    scan = (scan if scan is not None else scan_versions(storage, sources)).with_columns(_target=target)
    located = (
        only_committed(scan, committed)
        .group_by("_target")
        .agg(pl.len().alias("rows"), pl.col(SOURCE_FILE).unique())
        .collect()
    )
    files_of = {
        key: sorted(map(storage.key_of, uris)) for key, _, uris in located.sort("_target").iter_rows()
    }
    result.rows_in, result.files_read = int(located["rows"].sum()) + result.orphaned, len(sources)
    targets = []
    for key, files in files_of.items():
        rows = (
            only_committed(_scan_checked(storage, files).filter(target == key), committed)
            .select(VIOLATION_COLUMNS)
            .collect()
        )
        existing = read_versions(storage, [key]) if storage.exists(key) else empty_versions()
        merged, added = merge_versions(existing, rows, known.get(key, empty_versions()))
        result.rows_added += added
        if key.startswith(LATE_PREFIX):
            result.late_rows += added
        if not merged.equals(existing):
            targets.append(stage_target(storage, key, merged))
            result.rows_out += merged.height
            result.written.append(key)
    result.duplicates = result.rows_in - result.rows_added - result.orphaned
    manifest = write_manifest(storage, result.kind, result.scope, targets, sources)
    result.files_removed = apply_manifest(storage, manifest)
    return result


def _year_file_keys(storage: Storage, years: set[str]) -> dict[str, pl.DataFrame]:
    """Late-area key -> version keys already in that closed year's file (never added twice)."""
    return {
        late_key(y): storage.scan_parquet([year_key(y)]).select(VERSION_KEY).collect() for y in sorted(years)
    }


def consolidate_month(storage: Storage, month: str, silver: Table | None = None) -> ConsolidationResult:
    """Buffer files ingested in ``month`` (or left from before it) -> the archive month file of each
    row's event month.

    With ``silver`` (what the flow passes), only the buffered versions silver holds are archived (see
    ``committed_versions``); without it every buffered version is, which only a caller that wrote the
    buffers itself, without silver, may ask for.
    """
    month = parse_month(month)
    result = ConsolidationResult("monthly", month, recovered=recover(storage))
    sources = buffer_files(storage, month)
    if not sources:
        return result
    scan = scan_versions(storage, sources)
    committed = committed_versions(storage, scan, silver, result) if silver is not None else None
    years = only_committed(scan, committed).select(EVENT_YEAR.unique()).collect()["event_date"]
    closed = {y for y in years if y != UNKNOWN and storage.exists(year_key(y))}
    known = _year_file_keys(storage, closed)
    return _consolidate(storage, result, sources, target_key(closed), known, scan, committed)


def consolidate_year(storage: Storage, year: str, today: date, force: bool = False) -> ConsolidationResult:
    """The year's month files -> one immutable year file; month files removed after verification.

    If the year is already closed, month files still there (written around the close, e.g. by a
    monthly run that started before it) go to the late area, minus rows the year file already holds.
    """
    year = parse_year(year)
    check_grace(year, today, force)
    result = ConsolidationResult("yearly", year, recovered=recover(storage))
    sources = month_files(storage, year)
    if not sources:
        return result
    if storage.exists(year_key(year)):
        return _consolidate(
            storage, result, sources, pl.lit(late_key(year)), _year_file_keys(storage, {year})
        )
    return _consolidate(storage, result, sources, pl.lit(year_key(year)), {})
