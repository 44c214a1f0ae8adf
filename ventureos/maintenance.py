"""Iceberg maintenance of the silver and gold tables: compact small files, expire old snapshots.

pyiceberg 0.12 has no ``rewrite_data_files``. Compaction here reads the small data files of each
partition that has too many of them and, in ONE overwrite snapshot per table, removes exactly those
files and adds the rewritten ones (one file per partition, encoded by ``ventureos.datafiles`` like
every data file written here). Rows are identical before and after; the row counts are checked
before the commit. Files carrying delete files are left alone (the writers here are copy-on-write,
so there are none in practice).

Expiry removes old snapshots in one commit and then deletes the files that only they referenced
(the small files a compaction replaced, old manifests), so storage shrinks too.

Orphan removal (pyiceberg has none) deletes the files in a table's ``data/`` and ``metadata/`` that
no metadata references and that are older than ``orphan_file_age_days``: the data files of a write
that crashed before its commit (a re-run writes new ones), the manifests of a commit that lost a
conflict, metadata files older than the metadata log. A table located inside another (a replace
load's staging table, inside silver's location) keeps its files while it exists.

On S3 Tables the service compacts, manages snapshots and removes unreferenced files by itself, so the
steps are skipped there, with a log line saying so.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot

from ventureos.catalog import COMPACTION, OPERATION_PROPERTY, is_s3_tables
from ventureos.datafiles import encode_partitions, upload
from ventureos.historical import STAGING_NAMESPACE
from ventureos.ingest import CommitSlot, no_slot
from ventureos.layout import STAGING_TABLE_FOLDER
from ventureos.settings import Settings
from ventureos.storage import Storage, open_storage

log = logging.getLogger(__name__)

MAINTAINED_NAMESPACES = ("silver", "gold")


class MaintenanceError(RuntimeError):
    """A maintenance step would change the table's rows (nothing was committed)."""


@dataclass
class TableMaintenance:
    table: str
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: int = 0
    snapshots_expired: int = 0
    files_deleted: int = 0
    """Data, manifest and manifest-list files that only expired snapshots referenced."""
    orphan_files_deleted: int = 0
    """Files under the table's location that no metadata referenced (see ``orphan_files``)."""
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def maintained_tables(catalog: Catalog) -> list[str]:
    """Every table of the silver and gold namespaces that exist (gold may not exist yet)."""
    names: list[str] = []
    for namespace in MAINTAINED_NAMESPACES:
        try:
            identifiers = catalog.list_tables(namespace)
        except NoSuchNamespaceError:
            continue
        names += [".".join(identifier) for identifier in identifiers]
    return sorted(names)


def data_file_count(table: Table) -> int:
    return sum(1 for _ in table.scan().plan_files())


def small_file_groups(table: Table, small_file_bytes: int, min_files: int) -> list[list[FileScanTask]]:
    """Per partition (and spec), the small data files, where there are at least ``min_files``
    (and at least two: rewriting one file into one file gains nothing)."""
    groups: dict[tuple[int, Any], list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        if not task.delete_files and task.file.file_size_in_bytes < small_file_bytes:
            groups[(task.file.spec_id, task.file.partition)].append(task)
    return [tasks for tasks in groups.values() if len(tasks) >= max(min_files, 2)]


def compact_table(table: Table, small_file_bytes: int, min_files: int) -> int:
    """Rewrite every partition holding ``min_files`` small files, in one commit; returns partitions."""
    groups = small_file_groups(table, small_file_bytes, min_files)
    if not groups:
        return 0
    name, metadata = ".".join(table.name()), table.metadata
    schema, spec = metadata.schema(), metadata.spec()
    with table.transaction() as txn:
        snapshot = txn.update_snapshot(snapshot_properties={OPERATION_PROPERTY: COMPACTION}).overwrite()
        with snapshot:
            for tasks in groups:
                rows = ArrowScan(metadata, table.io, schema, AlwaysTrue()).to_table(tasks)
                expected = sum(t.file.record_count for t in tasks)
                if rows.num_rows != expected:
                    raise MaintenanceError(
                        f"{name}: read {rows.num_rows} rows from files that hold {expected}"
                    )
                # Encoded like every other data file here (ventureos.datafiles): one file per partition.
                encoded = encode_partitions(schema, spec, pl.DataFrame(rows))
                new_files = upload(table, metadata, encoded, write_id=uuid.uuid4())
                if sum(f.record_count for f in new_files) != expected:
                    raise MaintenanceError(f"{name}: rewritten files do not hold {expected} rows")
                for task in tasks:
                    snapshot.delete_data_file(task.file)
                for data_file in new_files:
                    snapshot.append_data_file(data_file)
    return len(groups)


def expirable_snapshots(table: Table, older_than: datetime, keep_last: int) -> list[int]:
    """Snapshots older than the cutoff, except the newest ``keep_last`` and branch/tag heads."""
    if keep_last < 1:
        raise ValueError("snapshot_keep_last must be at least 1")
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    kept = {s.snapshot_id for s in snapshots[-keep_last:]}
    kept |= {ref.snapshot_id for ref in table.metadata.refs.values()}
    cutoff = older_than.timestamp() * 1000
    return [s.snapshot_id for s in snapshots if s.timestamp_ms < cutoff and s.snapshot_id not in kept]


def reachable_files(table: Table, snapshots: list[Snapshot]) -> set[str]:
    """Manifest lists, manifests and live data/delete files of the given snapshots."""
    paths: set[str] = set()
    for snapshot in snapshots:
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            paths.add(manifest.manifest_path)
            paths.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io))
    return paths


def expire_snapshots(table: Table, older_than: datetime, keep_last: int) -> tuple[int, int]:
    """Expire in one commit, then delete the files only expired snapshots referenced.

    Returns (snapshots expired, files deleted). A file still reachable from any remaining snapshot is
    kept; files being written by a concurrent commit are reachable from neither set, so never touched.
    """
    expired_ids = set(expirable_snapshots(table, older_than, keep_last))
    if not expired_ids:
        return 0, 0
    expired = [s for s in table.metadata.snapshots if s.snapshot_id in expired_ids]
    candidates = reachable_files(table, expired)
    table.maintenance.expire_snapshots().by_ids(sorted(expired_ids)).commit()
    table.refresh()
    unreferenced = candidates - reachable_files(table, table.metadata.snapshots)
    for path in sorted(unreferenced):
        table.io.delete(path)
    return len(expired_ids), len(unreferenced)


def location_of(table: Table) -> str:
    """The table's location as ``Storage`` roots are written (no ``file://``, no trailing slash)."""
    return table.location().removeprefix("file://").rstrip("/")


# Iceberg writes a table's files under data/ and metadata/ of its location, and a replace load's staging
# table lives at staging/{load id}/ inside silver's. Only files there can be a table's orphans: anything
# else under the location (the lake's buffer and archive, if the lake and the warehouse share a root)
# belongs to someone else and is never touched.
TABLE_FILES = re.compile(rf"^(?:{re.escape(STAGING_TABLE_FOLDER)}/[^/]+/)?(?:data|metadata)/")


def table_locations(catalog: Catalog) -> dict[str, str]:
    """Location of every table of this project's namespaces, by name (a Glue account holds others)."""
    locations = {}
    for namespace in (*MAINTAINED_NAMESPACES, STAGING_NAMESPACE):
        try:
            identifiers = catalog.list_tables(namespace)
        except NoSuchNamespaceError:
            continue
        for identifier in identifiers:
            locations[".".join(identifier)] = location_of(catalog.load_table(identifier))
    return locations


def metadata_files(table: Table) -> set[str]:
    """The current metadata file and the ones in its log."""
    return {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}


def referenced_files(table: Table) -> set[str]:
    """Every file the table's metadata points to: snapshots' files, metadata and statistics files."""
    statistics = [*table.metadata.statistics, *table.metadata.partition_statistics]
    return (
        reachable_files(table, table.metadata.snapshots)
        | metadata_files(table)
        | {s.statistics_path for s in statistics}
    )


def orphan_files(catalog: Catalog, table: Table, storage: Storage, older_than: datetime) -> list[str]:
    """Keys (under the table's location: ``storage``'s root) of files no metadata references, last
    written before the cutoff.

    Listing comes first and the metadata is read after it: a file committed (or a staging table
    dropped after its swap into silver) in between is then seen as referenced, never as an orphan.
    """
    name, location = ".".join(table.name()), storage.root
    # Files the metadata names before the listing must all be listed (only expiry, which runs in this
    # same serialized maintenance, deletes files), else listing and metadata spell paths differently
    # and every file would look unreferenced.
    expected = {storage.key_of(task.file.file_path) for task in table.scan().plan_files()}
    expected.add(storage.key_of(table.metadata_location))
    listed = storage.modified_times("")
    nested = [
        storage.key_of(other) + "/"
        for other_name, other in table_locations(catalog).items()
        if other_name != name and other.startswith(f"{location}/")
    ]
    table.refresh()
    referenced = {storage.key_of(path) for path in referenced_files(table)}
    missing = sorted(expected - listed.keys())
    if missing:
        raise MaintenanceError(
            f"{name}: files the metadata names are not found under {location} (e.g. {missing[0]}): "
            "no orphan is deleted while listing and metadata disagree"
        )
    return sorted(
        key
        for key, modified in listed.items()
        if modified < older_than
        and key not in referenced
        and TABLE_FILES.match(key)
        and not key.startswith(tuple(nested))
    )


def remove_orphan_files(catalog: Catalog, table: Table, settings: Settings, now: datetime) -> int:
    storage = open_storage(location_of(table), settings)
    orphans = orphan_files(catalog, table, storage, now - timedelta(days=settings.orphan_file_age_days))
    for key in orphans:
        storage.delete(key)
    return len(orphans)


def maintain_table(catalog: Catalog, name: str, settings: Settings, now: datetime) -> TableMaintenance:
    """Compact, then expire (so the pre-compaction snapshot is expired too once it is old), then
    remove orphan files."""
    table = catalog.load_table(name)
    result = TableMaintenance(name, files_before=data_file_count(table))
    if is_s3_tables(settings):
        log.info("%s: S3 Tables compacts and expires snapshots itself; skipping compaction and expiry", name)
        result.files_after, result.skipped = result.files_before, "s3-tables"
        return result
    result.partitions_compacted = compact_table(
        table, settings.compaction_small_file_bytes, settings.compaction_min_files
    )
    table.refresh()
    result.files_after = data_file_count(table)
    cutoff = now - timedelta(days=settings.snapshot_retention_days)
    result.snapshots_expired, result.files_deleted = expire_snapshots(
        table, cutoff, settings.snapshot_keep_last
    )
    result.orphan_files_deleted = remove_orphan_files(catalog, table, settings, now)
    log.info(
        "%s: %d -> %d data files (%d partitions compacted), %d snapshots expired, %d files deleted, "
        "%d orphan files deleted",
        name,
        result.files_before,
        result.files_after,
        result.partitions_compacted,
        result.snapshots_expired,
        result.files_deleted,
        result.orphan_files_deleted,
    )
    return result


def maintain(
    catalog: Catalog, settings: Settings, now: datetime, slot: CommitSlot = no_slot
) -> list[TableMaintenance]:
    """Maintain every silver and gold table; one compaction commit and one expiry commit per table.

    Each table is maintained inside ``slot(table)``: the ``maintain-tables`` task (the entry point
    of the flows and of ``ventureos maintain``) passes the Iceberg commit slot; the default holds none.
    """
    results = []
    for name in maintained_tables(catalog):
        with slot(name):
            results.append(maintain_table(catalog, name, settings, now))
    return results
