"""Gold aggregates per entity (company, city, state) and agency, plus ``all``, kept equal to current silver.

How a batch updates gold: the entity keys its SCD2 plan touches (added versions and the versions it
closes, so an UPDATE that moves a violation to another company changes both companies) are recomputed
from the *current* silver rows of exactly those entities. Counts and penalty totals could be patched by
adding and subtracting deltas, but first/last event dates cannot (a delete of the earliest violation
needs the next one), and a delta applied twice by a retried task would drift. Recomputing the touched
entities is exact, idempotent under retries and costs the rows of the touched entities, not the table.

Rows keep their ``updated_at`` when the recomputed stats are unchanged, so ``gold-sync`` pushes only what
really changed. An (entity, agency) that loses its last current violation leaves gold (gold stays the
plain aggregate) and is recorded in ``gold.stats_removals`` so the sync can delete it from serving.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, GreaterThan, In, Or
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DateType, LongType, NestedField, StringType, TimestamptzType

from ventureos.catalog import ensure_table
from ventureos.entities import city_key, company_key, slugify, state_key
from ventureos.schemas import MONEY, polars_schema, to_arrow, violations_schema
from ventureos.silver import Scd2Plan

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

GOLD_NAMESPACE = "gold"
ALL = "all"
LEVELS = ("company", "city", "state")
GOLD_TABLES = {level: f"{GOLD_NAMESPACE}.{level}_stats" for level in LEVELS}
REMOVALS = f"{GOLD_NAMESPACE}.stats_removals"
STAT_COLUMNS = (
    "entity_name", "industry", "violation_count", "penalty_total", "first_event_date", "last_event_date",
)  # fmt: skip
# The silver columns gold needs: reads of silver project to these.
SILVER_COLUMNS = (
    "violation_id", "agency", "event_date", "company_name", "company_slug", "city", "state", "naics_code",
    "penalty_amount",
)  # fmt: skip

GOLD_SCHEMA = Schema(
    NestedField(1, "entity_key", StringType(), required=True),
    NestedField(2, "agency", StringType(), required=True),
    NestedField(3, "entity_name", StringType(), required=False),
    NestedField(4, "violation_count", LongType(), required=True),
    NestedField(5, "penalty_total", MONEY, required=True),
    NestedField(6, "first_event_date", DateType(), required=False),
    NestedField(7, "last_event_date", DateType(), required=False),
    NestedField(8, "updated_at", TimestamptzType(), required=True),
    # NAICS code of the entity's latest violation that has one (the METADATA "industry").
    NestedField(9, "industry", StringType(), required=False),
)
REMOVALS_SCHEMA = Schema(
    NestedField(1, "entity_key", StringType(), required=True),
    NestedField(2, "agency", StringType(), required=True),
    NestedField(3, "removed_at", TimestamptzType(), required=True),
)
GOLD_ARROW = GOLD_SCHEMA.as_arrow()
REMOVALS_ARROW = REMOVALS_SCHEMA.as_arrow()
GOLD_POLARS = polars_schema(GOLD_ARROW)
REMOVALS_POLARS = polars_schema(REMOVALS_ARROW)


def gold_table(catalog: Catalog, level: str) -> Table:
    if level not in GOLD_TABLES:
        raise ValueError(f"unknown entity level {level!r}; expected one of {', '.join(LEVELS)}")
    return ensure_table(catalog, GOLD_TABLES[level], GOLD_SCHEMA)


def removals_table(catalog: Catalog) -> Table:
    return ensure_table(catalog, REMOVALS, REMOVALS_SCHEMA)


# Pure aggregation --------------------------------------------------------------------------------


def entity_rows(silver: Frame, level: str) -> Frame:
    """Silver rows plus ``entity_key``/``entity_name`` of ``level``; rows that are no such entity are left out.

    A null company slug (e.g. an individual) is not a company; a null city or state is no city/state.
    """
    company, city, state = pl.col("company_slug"), pl.col("city"), pl.col("state")
    key, name, valid = {
        "company": (company_key(company), pl.col("company_name"), company.is_not_null()),
        "city": (
            city_key(city, state),
            pl.concat_str(city, pl.lit(", "), state),
            state.is_not_null() & (slugify(city).fill_null("") != ""),
        ),
        "state": (state_key(state), state, state.is_not_null()),
    }[level]
    # Key and validity in one context: a city's slug (a chain of regexes) is computed once, not twice.
    return (
        silver.with_columns(key.alias("entity_key"), name.alias("entity_name"), valid.alias("_is_entity"))
        .filter(pl.col("_is_entity"))
        .drop("_is_entity")
    )


_LATEST = "\x1f"


def _latest_key(value: pl.Expr) -> pl.Expr:
    """One string that sorts like (event date, violation id) and carries ``value``: its max over a group
    is the value of the group's latest row that has one. Streamable, where ``sort_by().last()`` needs
    every row of a group in memory (3 GB for a rebuild over 8M rows). ISO dates sort as text; a
    missing date sorts first, and the separator (below every printable character) keeps ``id-1``
    before ``id-10``.
    """
    parts = [pl.col("event_date").cast(pl.String).fill_null(""), pl.col("violation_id"), value]
    return pl.concat_str(parts, separator=_LATEST)


def _value_of(latest_key: pl.Expr) -> pl.Expr:
    return latest_key.str.splitn(_LATEST, 3).struct.field("field_2")


# Per (entity, agency) from silver rows, then per entity from those: sums, min/max and the latest
# keys combine, so the rows are grouped once per level.
_FROM_ROWS = [
    pl.col("_latest_name").max(),
    pl.col("_latest_industry").max(),
    pl.len().cast(pl.Int64).alias("violation_count"),
    pl.col("penalty_amount").sum().cast(GOLD_POLARS["penalty_total"]).alias("penalty_total"),
    pl.col("event_date").min().alias("first_event_date"),
    pl.col("event_date").max().alias("last_event_date"),
]
_FROM_AGENCIES = [
    pl.col("_latest_name").max(),
    pl.col("_latest_industry").max(),
    pl.col("violation_count").sum(),
    pl.col("penalty_total").sum(),
    pl.col("first_event_date").min(),
    pl.col("last_event_date").max(),
]


def _aggregate_plan(silver: pl.LazyFrame, level: str, now: datetime) -> pl.LazyFrame:
    keyed = entity_rows(silver, level).select(
        "entity_key",
        "agency",
        "event_date",
        "penalty_amount",
        # The name as the entity's latest violation spells it; the industry of the latest that has one.
        _latest_key(pl.col("entity_name")).alias("_latest_name"),
        _latest_key(pl.col("naics_code")).alias("_latest_industry"),
    )
    per_agency = keyed.group_by("entity_key", "agency").agg(_FROM_ROWS)
    overall = per_agency.group_by("entity_key").agg(_FROM_AGENCIES).with_columns(agency=pl.lit(ALL))
    return (
        pl.concat([per_agency, overall], how="diagonal")
        .with_columns(
            entity_name=_value_of(pl.col("_latest_name")),
            industry=_value_of(pl.col("_latest_industry")),
            updated_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
        )
        .select(pl.col(c).cast(t) for c, t in GOLD_POLARS.items())
        .sort("entity_key", "agency")
    )


def aggregate_levels(
    silver: pl.DataFrame | pl.LazyFrame, levels: Sequence[str], now: datetime
) -> dict[str, pl.DataFrame]:
    """Gold rows of each level from current silver rows: per (entity, agency) and per entity as ``all``.

    One streaming query for all levels: a lazy scan of all of silver is read once, and memory
    holds the groups, not the rows.
    """
    plans = [_aggregate_plan(silver.lazy(), level, now) for level in levels]
    return dict(zip(levels, pl.collect_all(plans, engine="streaming"), strict=True))


def touched_keys(plan: Scd2Plan, level: str) -> list[str]:
    """Entity keys of ``level`` of every record of a batch (see ``Scd2Plan.touched``)."""
    return sorted(entity_rows(plan.touched, level)["entity_key"].unique().to_list())


def stamp(recomputed: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Keep the stored ``updated_at`` of rows whose stats did not change (nothing for gold-sync to push)."""
    joined = recomputed.join(
        existing.select(
            "entity_key", "agency", *(pl.col(c).alias(f"_old_{c}") for c in (*STAT_COLUMNS, "updated_at"))
        ),
        on=["entity_key", "agency"],
        how="left",
    )
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"_old_{c}")) for c in STAT_COLUMNS)
    return joined.with_columns(
        updated_at=pl.when(same & pl.col("_old_updated_at").is_not_null())
        .then(pl.col("_old_updated_at"))
        .otherwise(pl.col("updated_at"))
    ).select(GOLD_POLARS.names())


# Table I/O ---------------------------------------------------------------------------------------


@dataclass
class GoldChange:
    """What one batch did to one gold table."""

    level: str
    entities: int
    """Touched entities (recomputed)."""
    changed: int
    """(entity, agency) rows written with new stats."""
    removed: int
    """(entity, agency) rows that left gold (no current violation any more)."""


def read_frame(
    table: Table, row_filter: BooleanExpression, columns: tuple[str, ...] | None = None
) -> pl.DataFrame:
    scan = table.scan(row_filter=row_filter, selected_fields=columns or ("*",))
    return pl.from_arrow(scan.to_arrow())  # type: ignore[return-value]


def current_silver_of(
    violations: Table, slugs: list[str], states: list[str], columns: tuple[str, ...] = SILVER_COLUMNS
) -> pl.DataFrame:
    """Current silver rows of the given companies and states (cities lie inside their states)."""
    schema = violations_schema(columns)
    parts = [
        In(column, set(values)) for column, values in (("company_slug", slugs), ("state", states)) if values
    ]
    if not parts:
        return pl.DataFrame(schema=schema)
    match = parts[0] if len(parts) == 1 else Or(parts[0], parts[1])
    return read_frame(violations, And(EqualTo("is_current", True), match), columns).cast(schema)


def update_gold_tables(
    catalog: Catalog, violations: Table, plan: Scd2Plan, now: datetime
) -> list[GoldChange]:
    """Recompute the entities of a committed batch's records; one commit per gold table that changed.

    Records the batch left unchanged count too: their entities are already right, unless the run
    that changed them crashed before this step, which their re-run repairs here.
    """
    touched = plan.touched
    if touched.is_empty():
        return []
    silver = current_silver_of(
        violations,
        touched["company_slug"].drop_nulls().unique().to_list(),
        touched["state"].drop_nulls().unique().to_list(),
    )
    return refresh_gold(catalog, silver, {level: touched_keys(plan, level) for level in LEVELS}, now)


def rebuild_gold_tables(
    catalog: Catalog, violations: Table, now: datetime, storage_options: dict[str, str] | None = None
) -> list[GoldChange]:
    """Every entity recomputed from all current silver rows (a streamed scan of 8 columns): after a bulk
    load or swap of silver, or to repair a crash between a silver and its gold commit.

    ``storage_options`` are Polars' object-store options (``Storage.polars_storage_options``): Polars
    reads the data files itself and does not see pyiceberg's S3 endpoint.
    """
    # Plan with pyiceberg (what Polars falls back to anyway) without warning that the optional
    # polars_iceberg planner is not installed; an operator's choice wins.
    os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")
    silver = (
        pl.scan_iceberg(violations, storage_options=storage_options)
        .filter(pl.col("is_current"))
        .select(SILVER_COLUMNS)
    )
    return refresh_gold(catalog, silver, None, now)


def refresh_gold(
    catalog: Catalog, silver: pl.DataFrame | pl.LazyFrame, keys: dict[str, list[str]] | None, now: datetime
) -> list[GoldChange]:
    """Replace the gold rows of ``keys`` per level (``None``: all) by the aggregate of ``silver``.

    ``silver`` must hold every current row of those entities. Unchanged rows keep their ``updated_at``;
    a table whose rows did not change gets no commit.
    """
    results, writes, removals = [], [], []
    levels = [level for level in LEVELS if keys is None or keys[level]]
    for level, recomputed in aggregate_levels(silver, levels, now).items():
        table = gold_table(catalog, level)
        key_filter = AlwaysTrue() if keys is None else In("entity_key", set(keys[level]))
        existing = read_frame(table, key_filter).cast(GOLD_POLARS)
        if keys is not None:
            recomputed = recomputed.filter(pl.col("entity_key").is_in(keys[level]))
        recomputed = stamp(recomputed, existing)
        removed = existing.join(recomputed, on=["entity_key", "agency"], how="anti")
        new_stats = recomputed.filter(pl.col("updated_at") == now).height
        entities = len(keys[level]) if keys is not None else recomputed["entity_key"].n_unique()
        results.append(GoldChange(level, entities, new_stats, removed.height))
        if new_stats or not removed.is_empty():
            writes.append((table, None if existing.is_empty() else key_filter, recomputed))
            removals.append(
                removed.select(
                    "entity_key", "agency", removed_at=pl.lit(now, dtype=GOLD_POLARS["updated_at"])
                )
            )
    # Removals first: if a crash follows, the retried task finds the same removals again (gold not yet
    # committed) and records them once more; gold-sync deletes only pairs that really left gold.
    removed_rows = pl.concat(removals) if removals else pl.DataFrame(schema=REMOVALS_POLARS)
    if not removed_rows.is_empty():
        removals_table(catalog).append(to_arrow(removed_rows, REMOVALS_ARROW))
    for table, key_filter, recomputed in writes:
        with table.transaction() as txn:
            if key_filter is None:
                txn.append(to_arrow(recomputed, GOLD_ARROW))
            elif recomputed.is_empty():
                txn.delete(key_filter)
            else:
                txn.overwrite(to_arrow(recomputed, GOLD_ARROW), overwrite_filter=key_filter)
    return results


def read_gold(catalog: Catalog, level: str, since: datetime | None = None) -> pl.DataFrame:
    """Gold rows of ``level``, or only those updated after ``since`` (what gold-sync pushes)."""
    row_filter = GreaterThan("updated_at", since.isoformat()) if since else AlwaysTrue()
    return read_frame(gold_table(catalog, level), row_filter).cast(GOLD_POLARS)


def read_removals(catalog: Catalog, since: datetime | None = None) -> pl.DataFrame:
    row_filter = GreaterThan("removed_at", since.isoformat()) if since else AlwaysTrue()
    return read_frame(removals_table(catalog), row_filter).cast(REMOVALS_POLARS)


RANKINGS = {"count": "violation_count", "penalty": "penalty_total"}


def top_entities(
    catalog: Catalog, level: str, agency: str = ALL, by: str = "count", limit: int = 10
) -> pl.DataFrame:
    """Bad actors of one level ranked from gold: by violation count or penalty total, ties by key."""
    if by not in RANKINGS:
        raise ValueError(f"unknown ranking {by!r}; expected one of {', '.join(RANKINGS)}")
    first, second = RANKINGS[by], RANKINGS["penalty" if by == "count" else "count"]
    return (
        read_frame(gold_table(catalog, level), EqualTo("agency", agency))
        .cast(GOLD_POLARS)
        .sort([first, second, "entity_key"], descending=[True, True, False])
        .head(limit)
        .select(
            "entity_key",
            "entity_name",
            "agency",
            "violation_count",
            "penalty_total",
            "first_event_date",
            "last_event_date",
        )
    )
