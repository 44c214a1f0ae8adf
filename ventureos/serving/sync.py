"""gold-sync: gold stats that changed since the last sync -> the Entities table.

One watermark per source (each gold table and the removals log): the newest ``updated_at`` /
``removed_at`` already pushed. Each gold table is committed atomically and stamped inside the task
that commits it (a conflicting concurrent commit fails and the retry stamps again), so within one
table nothing newer can appear below its watermark; a single watermark across the three tables could
skip rows of a table read just before a batch committed it. The watermarks live in the Entities table
itself (PK ``SYNC#gold-sync``), next to what they describe: a fresh serving store gets a full sync.
They advance with conditional writes, so overlapping syncs never move them backwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import In

from ventureos.gold import ALL, LEVELS, gold_table, read_frame, read_gold, read_removals
from ventureos.serving.base import ENTITIES, Item, Key, ServingStore

SYNC_PK = "SYNC#gold-sync"
WATERMARK = "WATERMARK#"
REMOVALS_SOURCE = "removals"
METADATA = "METADATA"


@dataclass
class SyncResult:
    changed_rows: int
    """Gold (entity, agency) rows newer than their table's watermark."""
    written: int
    """Entities items put (STATS and METADATA)."""
    deleted: int
    """Entities items deleted (stats of entities/agencies that left gold)."""
    watermarks: dict[str, str] = field(default_factory=dict)
    """Per source (company, city, state, removals): the newest change pushed."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def iso(ts: datetime) -> str:
    """Fixed-width UTC timestamps: string order is time order (conditional writes compare strings)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_watermarks(store: ServingStore) -> dict[str, datetime]:
    return {
        item["SK"].removeprefix(WATERMARK): datetime.fromisoformat(item["watermark"])
        for item in store.query(ENTITIES, SYNC_PK, WATERMARK)
    }


def stats_items(gold: pl.DataFrame, level: str) -> list[Item]:
    """``STATS#{agency}`` items of gold rows, and ``METADATA`` from each entity's ``all`` row."""
    stats = gold.select(
        PK="entity_key",
        SK=pl.lit("STATS#") + pl.col("agency"),
        entity_type=pl.lit(level),
        agency="agency",
        total_violations="violation_count",
        total_penalties="penalty_total",
        first_violation_date=pl.col("first_event_date").dt.to_string("%Y-%m-%d"),
        last_violation_date=pl.col("last_event_date").dt.to_string("%Y-%m-%d"),
        last_updated=pl.col("updated_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
    )
    metadata = gold.filter(pl.col("agency") == ALL).select(
        PK="entity_key",
        SK=pl.lit(METADATA),
        entity_type=pl.lit(level),
        name="entity_name",
        industry=pl.col("industry") if level == "company" else pl.lit(None, dtype=pl.String),
        last_updated=pl.col("updated_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
    )
    return [
        {k: v for k, v in row.items() if v is not None}
        for row in pl.concat([stats, metadata], how="diagonal").to_dicts()
    ]


def settle_removals(catalog: Catalog, removals: pl.DataFrame) -> tuple[list[Key], datetime | None]:
    """Entities keys to delete for logged removals, and how far the removals watermark may advance.

    A removal is logged just before its gold commit. A pair absent from gold is gone (delete its
    items); present with a newer ``updated_at`` it came back (the STATS put covers it); present and
    older, its gold commit is not visible yet: the watermark stays below it, so the next sync looks again.
    """
    if removals.is_empty():
        return [], None
    keys = set(removals["entity_key"])
    present = pl.concat(
        [
            read_frame(
                gold_table(catalog, level), In("entity_key", keys), ("entity_key", "agency", "updated_at")
            )
            for level in LEVELS
        ]
    )
    joined = removals.join(present, on=["entity_key", "agency"], how="left")
    pending = joined.filter(pl.col("updated_at") <= pl.col("removed_at"))
    gone = joined.filter(pl.col("updated_at").is_null()).select("entity_key", "agency").unique()
    stats = gone.select("entity_key", pl.lit("STATS#") + pl.col("agency"))
    metadata = gone.filter(pl.col("agency") == ALL).select("entity_key", pl.lit(METADATA))
    doomed = sorted(tuple(row) for row in (*stats.iter_rows(), *metadata.iter_rows()))
    if pending.is_empty():
        return doomed, removals["removed_at"].max()
    return doomed, pending["removed_at"].min() - timedelta(microseconds=1)


def sync_entities(store: ServingStore, catalog: Catalog) -> SyncResult:
    """Push changed gold rows, delete removed ones, then advance the watermarks (only forward)."""
    marks = read_watermarks(store)
    changed = {level: read_gold(catalog, level, marks.get(level)) for level in LEVELS}
    removals = read_removals(catalog, marks.get(REMOVALS_SOURCE))
    items = [item for level, frame in changed.items() for item in stats_items(frame, level)]
    doomed, removals_mark = settle_removals(catalog, removals)
    written = store.put_items(ENTITIES, items)
    deleted = store.delete_items(ENTITIES, doomed)
    advanced = {level: frame["updated_at"].max() for level, frame in changed.items() if not frame.is_empty()}
    if removals_mark is not None:
        advanced[REMOVALS_SOURCE] = removals_mark
    for source, mark in advanced.items():
        if source not in marks or mark > marks[source]:
            item = {"PK": SYNC_PK, "SK": f"{WATERMARK}{source}", "watermark": iso(mark)}
            store.put_if_newer(ENTITIES, item, "watermark")
    return SyncResult(
        changed_rows=sum(frame.height for frame in changed.values()),
        written=written,
        deleted=deleted,
        watermarks={source: iso(mark) for source, mark in (marks | advanced).items()},
    )
