"""The Iceberg catalog of either shape, and the contract tables created on first use."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot

from ventureos.lookup_layout import SILVER_LAYOUT_PROPERTIES
from ventureos.registry import Registry
from ventureos.schemas import (
    QUARANTINE,
    QUARANTINE_SCHEMA,
    VIOLATIONS,
    VIOLATIONS_PARTITION,
    VIOLATIONS_SCHEMA,
)
from ventureos.settings import Settings

COMMIT_RETRIES = "commit.retry.num-retries"
TABLE_PROPERTIES = {"write.parquet.compression-codec": "zstd", COMMIT_RETRIES: "8"}
SILVER_PROPERTIES = TABLE_PROPERTIES | {COMMIT_RETRIES: "0"} | SILVER_LAYOUT_PROPERTIES
"""A concurrent commit to silver fails ours instead of being rebased onto it: pyiceberg's rebase does
not re-check an append, so two writers could each insert the same new violation. Writers of silver plan
again against the new state instead (``ventureos.ingest``), or their task retries."""


# Snapshot summary property naming what wrote a snapshot, where Iceberg's operation does not say it.
OPERATION_PROPERTY = "ventureos.operation"
COMPACTION = "compaction"


def rewrites_only(snapshot: Snapshot) -> bool:
    """The snapshot rewrote data files without changing the table's rows: a compaction (``ventureos
    maintain``'s, or any writer's ``replace`` operation, e.g. S3 Tables' own compaction)."""
    summary = snapshot.summary
    if summary is None:
        return False
    return summary.operation == Operation.REPLACE or summary.get(OPERATION_PROPERTY) == COMPACTION


CATALOGS = Registry[Catalog]("catalog type")
"""Iceberg catalogs by ``VENTUREOS_CATALOG_TYPE``: each registers ``factory(settings) -> Catalog``.

pyiceberg imports a catalog's client libraries only when that catalog is loaded, so the three
factories live here; a catalog with its own module would name it in the registry's modules.
"""


def open_catalog(settings: Settings) -> Catalog:
    """SqlCatalog on SQLite (embedded), REST (S3 Tables / Glue Iceberg endpoint) or Glue."""
    return CATALOGS.create(settings.catalog_type, settings)


def _load(settings: Settings, props: dict[str, str]) -> Catalog:
    return load_catalog(settings.catalog_name, **props, **settings.s3_properties())


@CATALOGS.register("sql")
def _sql_catalog(settings: Settings) -> Catalog:
    if settings.sql_catalog_uri.startswith("sqlite:///"):
        Path(settings.sql_catalog_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if not settings.warehouse_uri.startswith("s3://"):
        Path(settings.warehouse_uri).mkdir(parents=True, exist_ok=True)
    return _load(
        settings, {"type": "sql", "uri": settings.sql_catalog_uri, "warehouse": settings.warehouse_uri}
    )


@CATALOGS.register("rest")
def _rest_catalog(settings: Settings) -> Catalog:
    props = {"type": "rest", "uri": settings.catalog_uri or ""}
    if settings.warehouse:
        props["warehouse"] = settings.warehouse
    if settings.catalog_sigv4:
        props |= {
            "rest.sigv4-enabled": "true",
            "rest.signing-name": settings.catalog_signing_name,
            "rest.signing-region": settings.aws_region,
        }
    return _load(settings, props)


@CATALOGS.register("glue")
def _glue_catalog(settings: Settings) -> Catalog:
    props = {"type": "glue", "glue.region": settings.aws_region}
    if settings.warehouse:
        props["warehouse"] = settings.warehouse
    if settings.aws_endpoint_url:
        props["glue.endpoint"] = settings.aws_endpoint_url
    return _load(settings, props)


def is_s3_tables(settings: Settings) -> bool:
    """S3 Tables compacts and cleans up by itself; maintenance skips what it already does."""
    return settings.catalog_type == "rest" and settings.catalog_signing_name == "s3tables"


def ensure_table(
    catalog: Catalog,
    identifier: str,
    schema: Schema,
    partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
    properties: dict[str, str] = TABLE_PROPERTIES,
) -> Table:
    """Load the table, creating its namespace and itself on first use (safe under races); a table
    created with other values of ``properties`` gets them once."""
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    else:
        if any(table.properties.get(k) != v for k, v in properties.items()):
            with table.transaction() as txn:
                txn.set_properties(properties)
        return table
    namespace = identifier.rsplit(".", 1)[0]
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    try:
        return catalog.create_table(
            identifier, schema=schema, partition_spec=partition_spec, properties=properties
        )
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


def violations_table(catalog: Catalog) -> Table:
    return ensure_table(catalog, VIOLATIONS, VIOLATIONS_SCHEMA, VIOLATIONS_PARTITION, SILVER_PROPERTIES)


def quarantine_table(catalog: Catalog) -> Table:
    return ensure_table(catalog, QUARANTINE, QUARANTINE_SCHEMA)
