"""Reading silver's data files directly, through its lookup layout (``ventureos.lookup_layout``): one
snapshot's files with their partition and manifest bounds, each file's footer (row-group statistics)
read once per process and kept, since data files never change.

Two kinds of reads use it:

- by id (``locate`` then ``read_located``): the write path finds the versions of a batch's ids (the
  current ones it may close, closed ones, delete tombstones) and the API one violation's versions.
  Files are pruned by agency (the id's prefix) and by their manifest id range, row groups by their id
  range and ``is_current`` statistics; only the id column of the remaining row groups is read to find
  the rows, then only the rows' row groups are read whole. The cost is the id column of the row groups
  whose range holds a wanted id, never pyiceberg's per-file evaluation of an ``In(...)`` over the batch
  (binding it costs Python time per literal per file: most of a daily run on a 2M-row lake).
- by entity (``ventureos.history``): an entity's rows through the manifests' ``company_slug`` and
  ``state`` bounds and a per-file digest of which row groups hold which entity.

A located row carries its file and position, so a commit that closes versions rewrites exactly the
files holding them (``ventureos.silver.commit_scd2``) instead of letting pyiceberg read every file whose
statistics cannot exclude the ids.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.types import StringType

from ventureos.schemas import VIOLATIONS_POLARS

T = TypeVar("T")

STATS_COLUMNS = ("violation_id", "is_current")
"""Columns whose row-group statistics the footer cache keeps (an id's row groups, groups with current
or closed rows); the entity columns prune through the manifests and the per-file entity digest."""
BOUND_COLUMNS = ("company_slug", "state", "violation_id")
"""Columns whose manifest bounds a ``SilverFile`` keeps."""
READ_THREADS = 4
"""Files read side by side by ``locate`` and ``read_located`` (pyarrow decodes outside the GIL)."""
LOCATION = ("_file", "_group", "_row")
"""Where a located row lies: index of its file in the view, row group, row within the group."""


@dataclass(frozen=True)
class SilverFile:
    path: str
    agency: str | None
    year: int | None
    """Event year of the partition (None: rows without an event date)."""
    bounds: dict[str, tuple[str | None, str | None]]
    """Manifest (lower, upper) of ``BOUND_COLUMNS``; None where the manifest has none."""
    data_file: DataFile

    def may_hold(self, column: str, value: str) -> bool:
        lower, upper = self.bounds.get(column, (None, None))
        # Truncated bounds (a table written without full metrics) are still bounds: Iceberg truncates
        # the lower one and increments the truncated upper one.
        return (lower is None or lower <= value) and (upper is None or value <= upper)


@dataclass
class Footer:
    metadata: pq.FileMetaData
    row_groups: list[dict[str, tuple[Any, Any]]]
    """Per row group, (min, max) of ``STATS_COLUMNS`` (absent when the writer kept no statistics)."""
    digests: dict[Hashable, Any] = field(default_factory=dict)
    """What lookups derived from the file's own columns, by name (``digest``); kept with the footer, since
    the file never changes."""
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def digest(self, name: Hashable, build: Callable[[], T]) -> T:
        """The digest ``name`` of this file, built by ``build`` on first use. Once: the first requests
        of a cold API process under load all want the same digests (built by every thread at once, a
        single worker under 50 clients stalled for a minute and dropped connections)."""
        found = self.digests.get(name)
        if found is None:
            with self._building:
                found = self.digests.get(name)
                if found is None:
                    found = self.digests[name] = build()
        return found

    def groups(self, column: str, value: Any) -> list[int]:
        """Row groups whose statistics may hold ``column == value``."""
        return [
            i
            for i, stats in enumerate(self.row_groups)
            if column not in stats or stats[column][0] <= value <= stats[column][1]
        ]

    def groups_of_ids(self, ids: Sequence[str], current: bool | None) -> list[int]:
        """Row groups whose statistics may hold any of the sorted ``ids`` with ``is_current`` equal to
        ``current`` (None: either). ``ids`` is a plain sequence: ``bisect`` costs a microsecond a row
        group, Polars' scalar ``search_sorted`` a query plan (a second of a daily run at 8M rows)."""
        found = []
        for i, stats in enumerate(self.row_groups):
            if current is not None and "is_current" in stats:
                low, high = stats["is_current"]
                if not low <= current <= high:
                    continue
            if "violation_id" in stats:
                low, high = stats["violation_id"]
                if bisect_left(ids, low) == bisect_right(ids, high):
                    continue
            found.append(i)
        return found


class FooterCache:
    """Parsed footers by data-file path (data files are immutable), least recently used out first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._footers: OrderedDict[str, Footer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, io: FileIO, path: str) -> Footer:
        with self._lock:
            footer = self._footers.get(path)
            if footer is not None:
                self._footers.move_to_end(path)
                return footer
        with io.new_input(path).open() as stream:
            metadata = pq.ParquetFile(stream).metadata
        footer = Footer(metadata, _row_group_stats(metadata))
        with self._lock:
            self._footers[path] = footer
            while len(self._footers) > self.size:
                self._footers.popitem(last=False)
        return footer


def _row_group_stats(metadata: pq.FileMetaData) -> list[dict[str, tuple[Any, Any]]]:
    leaves = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    groups = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        stats = {}
        for name in STATS_COLUMNS:
            column = group.column(leaves[name]).statistics if name in leaves else None
            if column is not None and column.has_min_max:
                stats[name] = (column.min, column.max)
        groups.append(stats)
    return groups


FOOTERS = FooterCache()


@dataclass
class SilverView:
    """One snapshot of silver: its data files, newest event year first (no year last)."""

    table: Table
    snapshot_id: int | None
    files: list[SilverFile]
    loaded_at: float = 0.0
    """``time.monotonic()`` when a cache last confirmed the view is current (see ``history.silver_view``)."""

    @classmethod
    def of(cls, table: Table) -> SilverView:
        snapshot = table.current_snapshot()
        if snapshot is None:
            return cls(table, None, [])
        schema = table.schema()
        ids = {name: schema.find_field(name).field_id for name in BOUND_COLUMNS}
        files = [_silver_file(task.file, table, ids) for task in table.scan().plan_files()]
        files.sort(key=lambda f: (f.year is None, -(f.year or 0), f.path))
        return cls(table, snapshot.snapshot_id, files)

    def footer(self, file: SilverFile) -> Footer:
        return FOOTERS.get(self.table.io, file.path)

    def read(self, file: SilverFile, groups: list[int], columns: Iterable[str]) -> pl.DataFrame:
        footer = self.footer(file)
        with self.table.io.new_input(file.path).open() as stream:
            rows = pq.ParquetFile(stream, metadata=footer.metadata).read_row_groups(
                # Row groups are small: thread dispatch would cost more than it saves.
                groups,
                columns=list(columns),
                use_threads=False,
            )
        return _frame(rows)

    def locate(
        self,
        violation_ids: Iterable[str],
        current: bool | None = True,
        years: Iterable[int | None] | None = None,
    ) -> pl.DataFrame:
        """``violation_id`` and ``LOCATION`` of every row of the given ids whose ``is_current`` is
        ``current`` (None: every version).

        ``years``: per id, the event year of the partition where its current version most likely is (a
        batch's own row's year: an update rarely moves a violation's date). With ``current`` true, each
        id is first searched in that partition only, and in the rest of the table only if it is not
        there (an id has one current version); a new id's search ends at the manifests' id bounds.
        """
        ids = pl.DataFrame({"violation_id": list(violation_ids)}, schema={"violation_id": pl.String})
        found: list[pl.DataFrame] = []
        if current and years is not None:
            hinted = ids.with_columns(year=pl.Series(list(years), dtype=pl.Int64)).unique()
            by_year = {key[0]: rows["violation_id"].sort() for key, rows in hinted.group_by("year")}
            found = self._locate(lambda file: by_year.get(file.year), current)
            if found:
                ids = ids.filter(~pl.col("violation_id").is_in(pl.concat(found)["violation_id"].implode()))
        every = ids["violation_id"].unique().sort()
        found += self._locate(lambda file: every, current)
        schema = {"violation_id": pl.String, **dict.fromkeys(LOCATION, pl.Int64)}
        return pl.concat(found) if found else pl.DataFrame(schema=schema)

    def _locate(
        self, ids_of: Callable[[SilverFile], pl.Series | None], current: bool | None
    ) -> list[pl.DataFrame]:
        """Rows of the ids ``ids_of(file)`` (sorted; None or empty: skip the file), file by file."""
        # Files given the same ids (one year's, or all) of the same agency are matched against them
        # in one vectorized search of their id bounds: a Python test per file costs seconds at
        # thousands of files.
        shared: dict[tuple[int, str | None], tuple[pl.Series, list[int]]] = {}
        for index, file in enumerate(self.files):
            ids = ids_of(file)
            if ids is not None and not ids.is_empty():
                shared.setdefault((id(ids), file.agency), (ids, []))[1].append(index)
        candidates = []
        for (_, agency), (ids, indexes) in shared.items():
            if agency is not None:
                ids = ids.filter(ids.str.starts_with(f"{agency}:"))
            listed = ids.to_list()
            for index in self._within_bounds(ids, indexes):
                candidates.append((index, self.files[index], ids, listed))
        columns = ("violation_id",) if current is None else ("violation_id", "is_current")

        def rows_of(index: int, file: SilverFile, ids: pl.Series, listed: list[str]) -> pl.DataFrame | None:
            footer = self.footer(file)
            groups = footer.groups_of_ids(listed, current)
            if not groups:
                return None
            wanted = pl.col("violation_id").is_in(ids.implode())
            if current is not None:
                wanted &= pl.col("is_current") == current
            rows = self.read(file, groups, columns).with_columns(position(footer, groups, index))
            return rows.filter(wanted).select("violation_id", *LOCATION)

        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            return [rows for rows in pool.map(lambda c: rows_of(*c), candidates) if rows is not None]

    def _within_bounds(self, ids: pl.Series, indexes: list[int]) -> list[int]:
        """The files of ``indexes`` whose ``violation_id`` bounds hold one of ``ids`` (sorted)."""
        if ids.is_empty():
            return []
        bounds = [self.files[i].bounds.get("violation_id", (None, None)) for i in indexes]
        lowers = pl.Series([lower or "" for lower, _ in bounds], dtype=pl.String)
        uppers = pl.Series([upper or "" for _, upper in bounds], dtype=pl.String)
        starts = ids.search_sorted(lowers, side="left").to_list()
        ends = ids.search_sorted(uppers, side="right").to_list()
        return [
            index
            for index, (_, upper), start, end in zip(indexes, bounds, starts, ends, strict=True)
            if start < (ids.len() if upper is None else end)
        ]

    def read_located(self, located: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
        """``columns`` of the rows ``located`` (``LOCATION``), with their location."""
        columns = list(dict.fromkeys(columns))

        def rows_of(file_index: int, rows: pl.DataFrame) -> pl.DataFrame:
            footer = self.footer(self.files[file_index])
            groups = sorted(rows["_group"].unique().to_list())
            read = self.read(self.files[file_index], groups, columns)
            return read.with_columns(position(footer, groups, file_index)).join(
                rows.select(LOCATION), on=list(LOCATION), how="semi"
            )

        parts = [(int(key[0]), rows) for key, rows in located.group_by("_file")]  # type: ignore[call-overload]
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            found = list(pool.map(lambda part: rows_of(*part), parts))
        if not found:
            return pl.DataFrame(
                schema={**{c: VIOLATIONS_POLARS[c] for c in columns}, **dict.fromkeys(LOCATION, pl.Int64)}
            )
        return pl.concat(found)


_VIEWS: OrderedDict[tuple[str, int | None], SilverView] = OrderedDict()
_VIEWS_LOCK = threading.Lock()
VIEWS_KEPT = 8


def view_of(table: Table) -> SilverView:
    """The view of ``table``'s current snapshot (as loaded: refresh the table first to see new commits).

    A snapshot's files never change, so its view is built once per process (planning reads every
    manifest) and shared by the lookups of one write: plan, tombstones, superseded versions, commit.
    """
    snapshot = table.current_snapshot()
    key = (table.metadata_location, snapshot.snapshot_id if snapshot else None)
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
        if view is not None:
            _VIEWS.move_to_end(key)
            return view
    view = SilverView.of(table)
    with _VIEWS_LOCK:
        _VIEWS[key] = view
        while len(_VIEWS) > VIEWS_KEPT:
            _VIEWS.popitem(last=False)
    return view


def position(footer: Footer, groups: list[int], file_index: int) -> list[pl.Series]:
    """Where each row of ``groups`` (read together, in order) lies: file, row group, row in the group."""
    sizes = [footer.metadata.row_group(g).num_rows for g in groups]
    return [
        pl.Series("_file", [file_index] * sum(sizes), dtype=pl.Int64),
        pl.Series(
            "_group", [g for g, n in zip(groups, sizes, strict=True) for _ in range(n)], dtype=pl.Int64
        ),
        pl.concat([pl.int_range(n, eager=True) for n in sizes]).alias("_row").cast(pl.Int64),
    ]


def _silver_file(data_file: DataFile, table: Table, ids: dict[str, int]) -> SilverFile:
    spec = table.specs()[data_file.spec_id]
    values = {f.name: data_file.partition[i] for i, f in enumerate(spec.fields)}
    bounds = {}
    for name, field_id in ids.items():
        lower = (data_file.lower_bounds or {}).get(field_id)
        upper = (data_file.upper_bounds or {}).get(field_id)
        bounds[name] = (
            from_bytes(StringType(), lower) if lower is not None else None,
            from_bytes(StringType(), upper) if upper is not None else None,
        )
    year = values.get("event_date_year")
    return SilverFile(
        data_file.file_path,
        values.get("agency"),
        None if year is None else 1970 + int(year),
        bounds,
        data_file,
    )


def _frame(rows: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    differ = {c: VIOLATIONS_POLARS[c] for c, t in frame.schema.items() if t != VIOLATIONS_POLARS[c]}
    return frame.cast(differ) if differ else frame  # type: ignore[arg-type]
