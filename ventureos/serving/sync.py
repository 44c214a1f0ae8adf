"""gold-sync: gold stats that changed since the last sync -> the Entities table.

The watermark (the newest ``updated_at``/``removed_at`` already pushed) lives in the Entities table
itself, next to what it describes: a fresh serving store has no watermark and gets a full sync. It is
advanced with a conditional write, so two overlapping syncs never move it backwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import In

from ventureos.gold import ALL, LEVELS, gold_table, read_frame, read_gold, read_removals
from ventureos.serving.base import ENTITIES, Item, Key, ServingStore

WATERMARK_KEY = ("SYNC#gold-sync", "WATERMARK")
METADATA = "METADATA"


@dataclass
class SyncResult:
    changed_rows: int
    """Gold (entity, agency) rows newer than the watermark."""
    written: int
    """Entities items put (STATS and METADATA)."""
    deleted: int
    """Entities items deleted (stats of entities/agencies that left gold)."""
    watermark: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def read_watermark(store: ServingStore) -> datetime | None:
    item = store.get_item(ENTITIES, *WATERMARK_KEY)
    return datetime.fromisoformat(item["watermark"]) if item else None


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


def removed_keys(catalog: Catalog, removals: pl.DataFrame) -> list[Key]:
    """Entities keys of removed (entity, agency) pairs that are still absent from gold."""
    removed = removals.select("entity_key", "agency").unique()
    if removed.is_empty():
        return []
    keys = set(removed["entity_key"])
    present = pl.concat(
        [
            read_frame(gold_table(catalog, level), In("entity_key", keys), ("entity_key", "agency"))
            for level in LEVELS
        ]
    )
    gone = removed.join(present, on=["entity_key", "agency"], how="anti")
    stats = gone.select("entity_key", pl.lit("STATS#") + pl.col("agency"))
    metadata = gone.filter(pl.col("agency") == ALL).select("entity_key", pl.lit(METADATA))
    return sorted(tuple(row) for row in (*stats.iter_rows(), *metadata.iter_rows()))


def iso(ts: datetime) -> str:
    """Fixed-width UTC timestamps: their string order is their time order (conditional writes compare strings)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sync_entities(store: ServingStore, catalog: Catalog) -> SyncResult:
    """Push changed gold rows, delete removed ones, then advance the watermark (only forward)."""
    since = read_watermark(store)
    changed = {level: read_gold(catalog, level, since) for level in LEVELS}
    removals = read_removals(catalog, since)
    items = [item for level, frame in changed.items() for item in stats_items(frame, level)]
    written = store.put_items(ENTITIES, items)
    deleted = store.delete_items(ENTITIES, removed_keys(catalog, removals))
    stamps = [frame["updated_at"].max() for frame in changed.values() if not frame.is_empty()]
    stamps += [removals["removed_at"].max()] if not removals.is_empty() else []
    watermark = max(stamps, default=since)
    if watermark is not None and watermark != since:
        store.put_if_newer(
            ENTITIES,
            {"PK": WATERMARK_KEY[0], "SK": WATERMARK_KEY[1], "watermark": iso(watermark)},
            "watermark",
        )
    return SyncResult(
        changed_rows=sum(frame.height for frame in changed.values()),
        written=written,
        deleted=deleted,
        watermark=iso(watermark) if watermark else None,
    )
