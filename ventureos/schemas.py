"""Contracts of the data: Iceberg schemas and partition specs of the tables in DESIGN.md, the lineage
columns every raw frame carries, and the encoding of ``violation_details``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform, YearTransform
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    ListType,
    NestedField,
    StringType,
    TimestamptzType,
)

# Lineage columns added to every raw frame; named so that no source column can collide with them.
ROW = "__ventureos_row"
SOURCE_URI = "__ventureos_source_uri"
LINEAGE = (ROW, SOURCE_URI)

SILVER_NAMESPACE = "silver"
VIOLATIONS = f"{SILVER_NAMESPACE}.violations"
QUARANTINE = f"{SILVER_NAMESPACE}.violations_quarantine"

MONEY = DecimalType(18, 2)


def _fields(*specs: tuple[str, object, bool]) -> list[NestedField]:
    return [
        NestedField(field_id=i, name=name, field_type=ftype, required=required)
        for i, (name, ftype, required) in enumerate(specs, start=1)
    ]


VIOLATIONS_SCHEMA = Schema(
    *_fields(
        ("violation_id", StringType(), True),
        ("agency", StringType(), True),
        ("dataset", StringType(), True),
        ("source_id", StringType(), True),
        ("event_date", DateType(), False),
        ("company_name", StringType(), False),
        ("company_slug", StringType(), False),
        ("address", StringType(), False),
        ("city", StringType(), False),
        ("state", StringType(), False),
        ("zip", StringType(), False),
        ("latitude", DoubleType(), False),
        ("longitude", DoubleType(), False),
        ("naics_code", StringType(), False),
        ("violation_type", StringType(), False),
        ("penalty_amount", MONEY, False),
        ("initial_penalty", MONEY, False),
        ("description", StringType(), False),
        ("violation_details", StringType(), False),
        ("quality_score", DoubleType(), False),
        # Element id 30: the id create_table assigns after the 29 top-level fields.
        ("quality_issues", ListType(30, StringType(), element_required=False), False),
        ("record_hash", StringType(), False),
        ("meta_run_id", StringType(), False),
        ("meta_source_uri", StringType(), False),
        ("meta_ingest_timestamp", TimestamptzType(), False),
        ("valid_from", TimestamptzType(), False),
        ("valid_to", TimestamptzType(), False),
        ("is_current", BooleanType(), False),
        ("change_type", StringType(), False),
    )
)

VIOLATIONS_PARTITION = PartitionSpec(
    PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="agency"),
    PartitionField(source_id=5, field_id=1001, transform=YearTransform(), name="event_date_year"),
)

QUARANTINE_SCHEMA = Schema(
    *_fields(
        ("quarantine_id", StringType(), True),
        ("agency", StringType(), False),
        ("dataset", StringType(), False),
        ("source_uri", StringType(), False),
        ("reason", StringType(), True),
        ("raw_payload", StringType(), False),
        ("run_id", StringType(), False),
        ("quarantined_at", TimestamptzType(), False),
    )
)

VIOLATIONS_ARROW: pa.Schema = VIOLATIONS_SCHEMA.as_arrow()
QUARANTINE_ARROW: pa.Schema = QUARANTINE_SCHEMA.as_arrow()


def polars_schema(arrow_schema: pa.Schema) -> pl.Schema:
    return pl.from_arrow(arrow_schema.empty_table()).schema  # type: ignore[union-attr]


VIOLATIONS_POLARS = polars_schema(VIOLATIONS_ARROW)
QUARANTINE_POLARS = polars_schema(QUARANTINE_ARROW)
VIOLATION_COLUMNS: list[str] = VIOLATIONS_POLARS.names()


def violations_schema(columns: Sequence[str]) -> pl.Schema:
    """Silver's types of some of its columns: for frames that carry only what a step needs."""
    return pl.Schema({c: VIOLATIONS_POLARS[c] for c in columns})


def to_arrow(frame: pl.DataFrame, arrow_schema: pa.Schema) -> pa.Table:
    """Arrow table in the table's exact column order and types (required fields non-nullable)."""
    return frame.select(arrow_schema.names).to_arrow().cast(arrow_schema)


def details_json(columns: Sequence[str], unread: Mapping[str, pl.Expr] | None = None) -> pl.Expr:
    """Compact JSON object of the given source fields that have a value, keyed by the source's names.

    Null fields are left out: a column that only other files of the batch have (or that this record
    leaves blank) must not change the record's content, hence its ``record_hash``. ``unread`` maps
    mapped source fields to what they were parsed into: a value the parser could not read (a date of
    ``notadate``, a type code of ``X``) is kept here, so the source's text survives in silver.
    """
    has_value = {c: pl.col(c).is_not_null() for c in columns}
    has_value |= {c: pl.col(c).is_not_null() & parsed.is_null() for c, parsed in (unread or {}).items()}
    members = [
        pl.when(kept).then(pl.struct(c).struct.json_encode().str.head(-1).str.tail(-1))
        for c, kept in has_value.items()
    ]
    if not members:
        return pl.lit("{}", dtype=pl.String)
    return pl.concat_str(pl.lit("{"), pl.concat_str(members, separator=",", ignore_nulls=True), pl.lit("}"))
