"""Historical loads: bulk CSVs -> silver in bounded batches, resumable, with an atomic ``replace``.

- **Batches.** Record files are streamed with Polars (``scan_csv().collect_batches``) in chunks of
  ``settings.batch_rows``; lookup tables (OSHA inspections) are converted once to a Parquet staging
  file and semi-joined per batch, so memory follows the batch, not the input.
- **Resumable.** Every batch commits with its load id, batch number and counts in the Iceberg
  snapshot summary of that same commit: "written" and "recorded as done" are one atomic fact. A
  re-run of the same load (same files, sizes, mode and batch size) skips the recorded batches.
- **Append** commits each batch to ``silver.violations`` (SCD2 against the current versions).
- **Replace** commits each batch to a staging table under the warehouse, then one transaction on
  silver deletes the dataset's rows and adds the staged data files: readers see old or new, never a
  mix or nothing. The staged files hold the same schema and partition spec, so nothing is rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, EqualTo
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from normalizers import Dataset
from ventureos.catalog import TABLE_PROPERTIES
from ventureos.layout import historical_lookup_key, staging_table_location
from ventureos.lookup_layout import SILVER_LAYOUT_PROPERTIES
from ventureos.report import RUN_COUNTS
from ventureos.schemas import (
    LINEAGE,
    ROW,
    SOURCE_URI,
    VIOLATIONS_PARTITION,
    VIOLATIONS_SCHEMA,
    violations_schema,
)
from ventureos.storage import Storage, open_storage

MODES = ("append", "replace")
STAGING_NAMESPACE = "staging"

LOAD_ID = "ventureos.load-id"
DATASET = "ventureos.dataset"
SWAP_STARTED = "ventureos.swap-started"
"""Staging table property: its files were (or were about to be) swapped into silver."""
BATCH = "ventureos.batch"
COUNTS = "ventureos.counts"
COMPLETE = "ventureos.load-complete"
# Polars' streaming CSV reader holds a queue of chunks per thread whatever the batch size: small chunks
# keep memory bounded by the batch at the same speed (bench/RESULTS.md). The knob is Polars' own, read
# when a scan starts; an operator's value wins.
CSV_CHUNK_BYTES = 4_000_000


class HistoricalSourceError(ValueError):
    """The source cannot be loaded as given (missing, empty, unsupported or unparseable files)."""


@dataclass(frozen=True)
class SourceFiles:
    """The files of one load: where they live, which hold records and which hold lookup tables."""

    storage: Storage
    records: list[str]
    lookups: dict[str, list[str]]
    sizes: dict[str, int]

    def uri(self, key: str) -> str:
        return self.storage.uri(key)


@dataclass(frozen=True)
class Load:
    """What one run of a load does: its id, its batches and the ones an earlier run already did."""

    load_id: str
    agency: str
    dataset: str
    mode: str
    batch_rows: int
    files: SourceFiles
    rows_per_file: dict[str, int]
    done: dict[int, dict[str, int]] = field(default_factory=dict)
    """Batch number -> its counts, for every batch already committed by this load."""
    complete: bool = False
    """Replace only: the final swap already happened (the run only cleans up and reports)."""
    lookup_uris: dict[str, str] = field(default_factory=dict)
    """Lookup name -> Parquet staging file URI."""

    @property
    def batches(self) -> int:
        return sum(math.ceil(rows / self.batch_rows) for rows in self.rows_per_file.values())

    @property
    def rows(self) -> int:
        return sum(self.rows_per_file.values())

    @property
    def staging_table(self) -> str:
        return f"{STAGING_NAMESPACE}.violations_{self.agency}_{self.dataset}_{self.load_id}"

    @property
    def lookup_keys(self) -> dict[str, str]:
        return {name: historical_lookup_key(self.load_id, name) for name in self.files.lookups}

    def write_id(self, batch: int) -> uuid.UUID:
        """Names a batch's buffer files: a re-run of the batch overwrites them (no content hash needed)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"ventureos:historical:{self.load_id}:{batch}")

    @property
    def dataset_key(self) -> str:
        return f"{self.agency}/{self.dataset}"

    def markers(self, batch: int, counts: dict[str, int]) -> dict[str, str]:
        return {
            LOAD_ID: self.load_id,
            DATASET: self.dataset_key,
            BATCH: str(batch),
            COUNTS: json.dumps(counts, sort_keys=True),
        }


# Source files ------------------------------------------------------------------------------------


def _storage_for(lake: Storage, source: str) -> tuple[Storage, str]:
    """(storage, key): a lake key as is; an absolute path or URI becomes its own storage root."""
    if "://" in source or Path(source).is_absolute():
        return open_storage(source.rstrip("/"), lake.settings), ""
    return lake, source.strip("/")


def _parent(storage: Storage, key: str) -> tuple[Storage, str]:
    """(storage, key) of the same place, with the key's last part moved out of a root that is a file
    or a name prefix."""
    if key:
        return storage, key
    parent, _, name = storage.root.rpartition("/")
    return open_storage(parent or "/", storage.settings), name


def find_source_files(lake: Storage, source: str, entry: Dataset) -> SourceFiles:
    """The CSVs of ``source``, split by role: a file, a folder, or a name prefix of files (``in/osha_``);
    a lake key, an absolute path or a URI."""
    storage, key = _storage_for(lake, source)
    info = storage.fs.get_file_info(storage.path(key).rstrip("/"))
    if info.type == pafs.FileType.File:
        storage, key = _parent(storage, key)
        keys = [key]
    elif info.type == pafs.FileType.Directory:
        keys = storage.list(key)
    else:
        storage, key = _parent(storage, key)
        folder = key.rpartition("/")[0]
        keys = [k for k in storage.list(folder) if k.startswith(key)]
    if not keys:
        raise HistoricalSourceError(f"no files under {source!r}")
    unsupported = [k for k in keys if not k.lower().endswith(".csv")]
    if unsupported:
        raise HistoricalSourceError(
            f"historical loads read CSV files only; not CSV: {', '.join(unsupported)}"
        )
    lookups: dict[str, list[str]] = {name: [] for name in entry.lookups}
    records = []
    for k in keys:
        role = entry.lookup_of(k)
        (lookups[role] if role else records).append(k)
    if not records:
        raise HistoricalSourceError(f"no record files under {source!r} (only lookups: {keys})")
    sizes = {k: storage.fs.get_file_info(storage.path(k)).size for k in keys}
    return SourceFiles(storage, records, {n: ks for n, ks in lookups.items() if ks}, sizes)


def load_id(agency: str, dataset: str, mode: str, batch_rows: int, files: SourceFiles) -> str:
    """Same files (URI and size), mode and batch size -> same id: what lets a re-run resume."""
    identity = {
        "agency": agency,
        "dataset": dataset,
        "mode": mode,
        "batch_rows": batch_rows,
        "files": sorted((files.uri(k), size) for k, size in files.sizes.items()),
    }
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def _scan_csv(files: SourceFiles, key: str, **options: Any) -> pl.LazyFrame:
    """Every column a string; ``options`` go to ``pl.scan_csv``."""
    os.environ.setdefault("POLARS_CSV_CHUNK_SIZE", str(CSV_CHUNK_BYTES))
    return pl.scan_csv(
        files.uri(key),
        infer_schema=False,
        encoding="utf8-lossy",
        storage_options=files.storage.polars_storage_options,
        **options,
    )


def check_columns(files: SourceFiles, entry: Dataset) -> None:
    """Every lookup table has files; every record file has the dataset's id columns and the lookups'
    join columns, and every lookup file its join column; lines end with LF (or CRLF) and no column has
    a lineage column's name (a bulk file is refused whole, before any batch: the daily path reads CR
    line ends and rejects such records one by one)."""
    missing_lookups = [name for name in entry.lookups if not files.lookups.get(name)]
    if missing_lookups:
        raise HistoricalSourceError(
            f"{entry.key} needs its {', '.join(missing_lookups)} file(s) with the records (a CSV whose name "
            f"contains {' or '.join(repr(n) for n in missing_lookups)}); the source holds none"
        )
    joins = tuple(dict.fromkeys(entry.lookups.values()))
    wanted = {key: tuple(dict.fromkeys((*entry.id_columns, *joins))) for key in files.records}
    wanted |= {key: (entry.lookups[name],) for name, keys in files.lookups.items() for key in keys}
    for key, columns in wanted.items():
        try:
            header = _scan_csv(files, key).collect_schema().names()
        except pl.exceptions.PolarsError as exc:
            raise HistoricalSourceError(f"{files.uri(key)}: {str(exc).splitlines()[0]}") from None
        if any("\r" in c for c in header):  # Polars ends lines at LF only: the file would be one header
            raise HistoricalSourceError(
                f"{files.uri(key)}: lines end with a lone CR (classic Mac): convert them to LF"
            )
        reserved = [c for c in header if c in LINEAGE]
        if reserved:
            raise HistoricalSourceError(
                f"{files.uri(key)}: column {', '.join(reserved)} has the name of a lineage column"
            )
        missing = [c for c in columns if c not in header]
        if missing:
            raise HistoricalSourceError(
                f"{files.uri(key)} is not a file of {entry.key}: no {', '.join(missing)} column "
                f"(columns: {', '.join(header[:8])}{', ...' if len(header) > 8 else ''})"
            )


def _physical_lines(files: SourceFiles, key: str) -> int:
    """Lines of a file, quotes ignored (each line read as one field)."""
    lines = _scan_csv(
        files, key, has_header=False, separator="\x01", quote_char=None, truncate_ragged_lines=True
    )
    return lines.select(pl.len()).collect().item()


def count_rows(files: SourceFiles) -> dict[str, int]:
    """Rows per record file (a newline count, no parsing): fixes the batches before any is read.

    A file with lines after its header but no row (a quote left open swallows the rest of the file
    into one field) is an error: its batches would silently be none.
    """
    counts = {}
    for key in files.records:
        try:
            counts[key] = _scan_csv(files, key).select(pl.len()).collect().item()
            if counts[key] == 0 and (lines := _physical_lines(files, key)) > 1:
                raise HistoricalSourceError(
                    f"{files.uri(key)}: no row can be read although {lines - 1} lines follow the header "
                    "(a quote left open?)"
                )
        except pl.exceptions.PolarsError as exc:
            raise HistoricalSourceError(f"{files.uri(key)}: {str(exc).splitlines()[0]}") from None
    return counts


# Reading batches ---------------------------------------------------------------------------------


def read_batches(load: Load, skip: Collection[int] = ()) -> Iterator[tuple[int, str, pl.DataFrame]]:
    """(batch number, file URI, raw frame) in a fixed order; numbering is stable across runs. Batches
    in ``skip`` (committed by an earlier run) are read past, not yielded."""
    number = 0
    for key in load.files.records:
        uri = load.files.uri(key)
        try:
            for frame in _scan_csv(load.files, key).collect_batches(chunk_size=load.batch_rows):
                if frame.height == 0:
                    continue
                if number not in skip:
                    yield number, uri, frame
                number += 1
        except pl.exceptions.PolarsError as exc:
            raise HistoricalSourceError(f"{uri}: batch {number}: {str(exc).splitlines()[0]}") from None


def raw_frame(frame: pl.DataFrame, uri: str) -> pl.DataFrame:
    """A batch as the normalizers expect it: every column a string, plus the lineage columns ``ROW`` and ``SOURCE_URI``."""
    return frame.with_row_index(ROW).with_columns(pl.lit(uri).alias(SOURCE_URI))


def stage_lookups(files: SourceFiles, lake: Storage, keys: dict[str, str]) -> dict[str, str]:
    """Each lookup table's CSVs -> one Parquet file (streamed), written once per load id."""
    uris = {}
    for name, key in keys.items():
        uris[name] = lake.uri(key)
        if lake.exists(key):
            continue
        frames = [_scan_csv(files, k) for k in files.lookups[name]]
        tmp = f"{key}.partial"
        pl.concat(frames, how="diagonal").sink_parquet(
            lake.uri(tmp), storage_options=lake.polars_storage_options, row_group_size=50_000, mkdir=True
        )
        lake.fs.move(lake.path(tmp), lake.path(key))
    return uris


def lookup_rows(uri: str, records: pl.DataFrame, lake: Storage, key: str) -> pl.DataFrame:
    """The lookup rows a batch needs: semi-joined on the dataset's join column for that lookup.

    The key range of the batch prunes row groups first (bulk dumps come ordered by key).
    """
    lookup = pl.scan_parquet(uri, storage_options=lake.polars_storage_options)
    for name, columns in (("lookup table", lookup.collect_schema().names()), ("records", records.columns)):
        if key not in columns:
            raise HistoricalSourceError(f"cannot join {uri} on {key!r}: the {name} have no such column")
    wanted = records.select(key).drop_nulls().unique()
    low, high = wanted[key].min(), wanted[key].max()
    if low is None:
        return lookup.head(0).collect()
    return (
        lookup.filter(pl.col(key).is_between(pl.lit(low), pl.lit(high)))
        .join(wanted.lazy(), on=key, how="semi")
        .collect()
    )


# Markers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadHistory:
    """What a table's snapshot summaries say about one load."""

    done: dict[int, dict[str, int]] = field(default_factory=dict)
    """Batch number -> its counts, for every batch committed since the load last counted as run."""
    complete: bool = False
    """The replace swap happened (and no later replace by another load swapped it out)."""
    snapshots: tuple[Snapshot, ...] = ()
    """The load's snapshots since it last counted as run, oldest first."""


def load_history(table: Table | None, load: Load) -> LoadHistory:
    """The load's batches and marks in ``table``.

    A completed replace of the same dataset by another load swapped the load's rows out: from there on
    the load counts as not run (running it again loads it again, instead of skipping every batch).
    """
    done: dict[int, dict[str, int]] = {}
    complete = False
    snapshots: list[Snapshot] = []
    for snapshot in sorted(table.metadata.snapshots if table else [], key=lambda s: s.sequence_number or 0):
        summary = snapshot.summary
        if summary is None or summary[LOAD_ID] is None:
            continue
        if summary[LOAD_ID] != load.load_id:
            if summary[COMPLETE] == "true" and summary[DATASET] == load.dataset_key:
                done, complete, snapshots = {}, False, []
            continue
        snapshots.append(snapshot)
        if summary[COMPLETE] == "true":
            complete = True
            done |= {int(k): v for k, v in json.loads(summary[COUNTS] or "{}").items()}
        elif summary[BATCH] is not None:
            done[int(summary[BATCH])] = json.loads(summary[COUNTS] or "{}")
    return LoadHistory(done, complete, tuple(snapshots))


def versions_before_load(silver: Table, load: Load, columns: Sequence[str]) -> pl.DataFrame:
    """The dataset's current versions in silver just before this run of the load first committed to
    it (empty when it has committed nothing to silver yet, or silver was empty).

    Raises ``HistoricalSourceError`` when that snapshot has expired: what the load replaced can no
    longer be read.
    """
    schema = violations_schema(columns)
    ours = load_history(silver, load).snapshots
    parent = ours[0].parent_snapshot_id if ours else None
    if parent is None:
        return pl.DataFrame(schema=schema)
    if silver.snapshot_by_id(parent) is None:
        raise HistoricalSourceError(
            f"silver's snapshot {parent} from before load {load.load_id} has expired: cannot tell which "
            "versions the load replaced"
        )
    rows = silver.scan(
        row_filter=And(
            EqualTo("is_current", True), EqualTo("agency", load.agency), EqualTo("dataset", load.dataset)
        ),
        selected_fields=tuple(columns),
        snapshot_id=parent,
    ).to_arrow()
    return pl.from_arrow(rows).cast(schema)  # type: ignore[union-attr]


def held_none(table: Table, load: Load) -> bool:
    """Whether the target held none of the dataset's rows when the load began (recorded per batch)."""
    if load.done:
        # Recorded under "fresh" in the marks of loads already committed: the key stays.
        return any(counts.get("fresh", 0) for counts in load.done.values())
    rows = table.scan(
        row_filter=And(EqualTo("agency", load.agency), EqualTo("dataset", load.dataset)),
        selected_fields=("violation_id",),
        limit=1,
    ).to_arrow()
    return rows.num_rows == 0


@dataclass
class SeenIds:
    """64-bit hashes of the violation ids written by this load: 8 bytes a row, not a lookup per id.

    Into a target that held none of the dataset's rows when the load began, only an id seen before can have a current
    version; the exact check then reads just those few ids from the table.
    """

    chunks: list[pl.Series] = field(default_factory=list)

    @classmethod
    def of_table(cls, table: Table, load: Load) -> SeenIds:
        """The ids already in the target (a resumed load), read as a stream of record batches."""
        seen = cls()
        if not load.done:
            return seen
        reader = table.scan(
            row_filter=And(EqualTo("agency", load.agency), EqualTo("dataset", load.dataset)),
            selected_fields=("violation_id",),
        ).to_arrow_batch_reader()
        for batch in reader:
            seen.add(pl.Series(batch.column(0)))
        return seen

    def add(self, ids: pl.Series) -> None:
        if ids.len():
            self.chunks.append(ids.hash().unique())

    def candidates(self, ids: pl.Series) -> pl.Series:
        """The ids of a batch this load may have written before.

        The hash set is built over the batch, not over every id seen: memory must not grow with
        the input.
        """
        if not self.chunks:
            return ids.head(0)
        hashes = ids.hash()
        wanted = hashes.unique().implode()
        seen = pl.concat([chunk.filter(chunk.is_in(wanted)) for chunk in self.chunks])
        return ids.filter(hashes.is_in(seen.implode()))


# Replace: staging table and the atomic swap -------------------------------------------------------


def staging_table(catalog: Catalog, load: Load, silver: Table, create: bool = True) -> Table | None:
    """The load's staging table, placed under silver's location (its files become silver's files)."""
    try:
        return catalog.load_table(load.staging_table)
    except NoSuchTableError:
        if not create:
            return None
    try:
        catalog.create_namespace(STAGING_NAMESPACE)
    except Exception as exc:  # already exists: the catalogs raise different types
        if "exist" not in str(exc).lower():
            raise
    return catalog.create_table(
        load.staging_table,
        schema=VIOLATIONS_SCHEMA,
        partition_spec=VIOLATIONS_PARTITION,
        location=staging_table_location(silver.location(), load.load_id),
        # The layout's metrics: its files' manifest entries become silver's at the swap.
        properties=TABLE_PROPERTIES | SILVER_LAYOUT_PROPERTIES,
    )


def swap_in(silver: Table, staging: Table, load: Load, done: dict[int, dict[str, int]]) -> int:
    """One silver transaction: delete the dataset's rows, add the staged files. Returns files added.

    The snapshot carries the load's completion mark and every batch's counts, so a re-run after a
    crash right here knows the swap happened. The staging table is marked first: once its files may
    belong to silver, it is never resumed from (silver may lose them again to a later replace and
    snapshot expiry), only dropped.
    """
    with staging.transaction() as marking:
        marking.set_properties({SWAP_STARTED: "true"})
    files = [task.file for task in staging.scan().plan_files()]
    counts = json.dumps({str(k): v for k, v in sorted(done.items())}, sort_keys=True)
    properties = {LOAD_ID: load.load_id, DATASET: load.dataset_key, COMPLETE: "true", COUNTS: counts}
    with silver.transaction() as txn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Delete operation did not match any records")  # a first load
        # Both snapshots of the swap carry the marks: the delete's parent is silver before the load.
        txn.delete(And(EqualTo("agency", load.agency), EqualTo("dataset", load.dataset)), properties)
        with txn.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)
    return len(files)


def drop_staging(catalog: Catalog, load: Load, lake: Storage) -> None:
    """Forget the staging table (its data files now belong to silver) and the lookup files."""
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(load.staging_table)
    for key in load.lookup_keys.values():
        lake.delete(key)


# Progress ----------------------------------------------------------------------------------------

ProgressListener = Callable[[int, int, str], None]
_listeners: list[ProgressListener] = []


def add_progress_listener(listener: ProgressListener) -> Callable[[], None]:
    """In-process observers (the CLI's progress bar); returns the function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def notify_progress(done: int, total: int, message: str) -> None:
    for listener in list(_listeners):
        listener(done, total, message)


def sum_counts(done: dict[int, dict[str, int]]) -> dict[str, int]:
    return {c: sum(int(counts.get(c, 0)) for counts in done.values()) for c in RUN_COUNTS}
