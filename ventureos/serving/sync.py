"""gold-sync: gold rows that changed since the last sync -> the Entities table.

One watermark per source (each gold table and the removals log): the newest ``updated_at`` /
``removed_at`` already pushed. Each gold table is committed atomically and stamped inside the task
that commits it (a conflicting concurrent commit fails and the retry stamps again), so within one
table nothing newer can appear below its watermark; a single watermark across the tables could
skip rows of a table read just before a batch committed it. The watermarks live in the Entities table
itself (PK ``SYNC#gold-sync``), next to what they describe: a fresh serving store gets a full sync.
They advance with conditional writes, so overlapping syncs never move them backwards.

An entity with any changed gold row (stats, year stats, or as a place or a company in
``place_companies``) gets all its items rebuilt from its gold rows (``entity_items``); the items of
(entity, agency) pairs that left gold are deleted, and so are the search items of an old name
(read from the stored METADATA before it is replaced). Leaderboards are recomputed from the whole gold
tables when anything changed (``leaderboards``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue, In

from ventureos.gold import (
    ALL,
    LEVELS,
    PLACE_SPEC,
    STATS_SPECS,
    YEAR_SPECS,
    GoldSpec,
    gold_table,
    read_frame,
    read_removals,
    read_table,
)
from ventureos.serving.base import ENTITIES, Item, Key, ServingStore
from ventureos.serving.entity_items import (
    METADATA,
    PLACE_TYPES,
    entity_items,
    level_of,
    main_states,
    pair_keys,
    search_keys,
)
from ventureos.serving.leaderboards import leaderboard_items, write_leaderboards

SYNC_PK = "SYNC#gold-sync"
WATERMARK = "WATERMARK#"
REMOVALS_SOURCE = "removals"
SOURCES: dict[str, GoldSpec] = {
    **{spec.stats_level or "": spec for spec in STATS_SPECS},
    **{f"{level}_year": spec for level, spec in zip(LEVELS, YEAR_SPECS, strict=True)},
    "place_companies": PLACE_SPEC,
}
"""Watermark name of each gold table."""


@dataclass
class SyncResult:
    changed_rows: int
    """Rows of the gold tables newer than their table's watermark."""
    written: int
    """Entities items put (entity items of changed entities, changed leaderboard items)."""
    deleted: int
    """Entities items deleted (of entities/agencies that left gold, old names, vanished leaderboard filters)."""
    watermarks: dict[str, str] = field(default_factory=dict)
    """Per source (``SOURCES``, removals): the newest change pushed."""

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


def settle_removals(
    catalog: Catalog, removals: pl.DataFrame
) -> tuple[list[tuple[str, str]], datetime | None]:
    """(entity, agency) pairs that left gold for logged removals, and how far the removals watermark may advance.

    A removal is logged just before its gold commit. A pair absent from gold is gone (delete its
    items); present with a newer ``updated_at`` it came back (its entity's items are rebuilt); present and
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
    gone = sorted(
        joined.filter(pl.col("updated_at").is_null()).select("entity_key", "agency").unique().rows()
    )
    if pending.is_empty():
        return gone, removals["removed_at"].max()
    return gone, pending["removed_at"].min() - timedelta(microseconds=1)


def changed_entities(changed: dict[str, pl.DataFrame]) -> dict[str, list[str]]:
    """Entity keys per level with a changed row in any gold table (a place's companies change the place
    and, through its main state, the company)."""
    keys: set[str] = set()
    for source, frame in changed.items():
        columns = ("place_key", "company_key") if source == "place_companies" else ("entity_key",)
        keys.update(k for c in columns for k in frame[c].unique())
    return {level: sorted(k for k in keys if level_of(k) == level) for level in LEVELS}


def level_items(catalog: Catalog, level: str, keys: list[str] | None) -> list[Item]:
    """Every item of the given entities of one level (``None``: all, a full sync), from all their gold rows."""
    index = LEVELS.index(level)
    places = read_table(catalog, PLACE_SPEC, keys if level in PLACE_TYPES else [])
    states = {}
    if level == "company":
        of_companies = PLACE_SPEC.table(catalog)
        row_filter = AlwaysTrue() if keys is None else In("company_key", set(keys))
        states = main_states(read_frame(of_companies, row_filter).cast(PLACE_SPEC.polars))
    stats, years = read_table(catalog, STATS_SPECS[index], keys), read_table(catalog, YEAR_SPECS[index], keys)
    return entity_items(level, stats, years, places, states)


def stale_search_keys(store: ServingStore, keys: list[str], items: list[Item]) -> list[Key]:
    """Search items of the names stored in these entities' METADATA that the new items do not repeat."""
    fresh = {(i["PK"], i["SK"]) for i in items if i["PK"].startswith("SEARCH#")}
    stale: list[Key] = []
    for key in keys:
        stored = store.get_item(ENTITIES, key, METADATA)
        if stored:
            stale += [k for k in search_keys(key, stored.get("name"), level_of(key)) if k not in fresh]
    return stale


def nothing_to_sync(store_marks: dict[str, datetime], catalog: Catalog) -> bool:
    """True when no gold row and no removal is newer than its watermark (a sync would write nothing)."""
    if any(not read_table(catalog, spec, since=store_marks.get(s)).is_empty() for s, spec in SOURCES.items()):
        return False
    return read_removals(catalog, store_marks.get(REMOVALS_SOURCE)).is_empty()


def sync_entities(store: ServingStore, catalog: Catalog) -> SyncResult:
    """Push the items of changed entities, delete those of removed ones, refresh the leaderboards, then
    advance the watermarks (only forward).

    Order: stale items are deleted first and METADATA (whose stored name says which search items are
    stale) is written last, so a sync that dies midway leaves what the next one needs to finish.
    """
    marks = read_watermarks(store)
    changed = {source: read_table(catalog, spec, since=marks.get(source)) for source, spec in SOURCES.items()}
    removals = read_removals(catalog, marks.get(REMOVALS_SOURCE))
    gone, removals_mark = settle_removals(catalog, removals)
    keys = changed_entities(changed)
    # A level never synced (a fresh store) is read whole, not by a filter of every key, and has no
    # stored names to look up.
    fresh = {level for level in LEVELS if level not in marks}
    items = [
        item
        for level in LEVELS
        if keys[level]
        for item in level_items(catalog, level, None if level in fresh else keys[level])
    ]
    renamed = {
        key
        for level in LEVELS
        if level not in fresh
        for key in changed[level].filter(pl.col("agency") == ALL)["entity_key"]
    }
    gone_entities = sorted(key for key, agency in gone if agency == ALL)
    doomed = [k for key, agency in gone for k in pair_keys(key, agency, level_of(key))]
    doomed += stale_search_keys(store, sorted(renamed | set(gone_entities)), items)
    deleted = store.delete_items(ENTITIES, doomed)
    written = store.put_items(ENTITIES, [i for i in items if i["SK"] != METADATA])
    written += store.put_items(ENTITIES, [i for i in items if i["SK"] == METADATA])
    deleted += store.delete_items(ENTITIES, [(key, METADATA) for key in gone_entities])
    if items or doomed:
        whole = {source: read_table(catalog, spec) for source, spec in SOURCES.items()}
        boards = leaderboard_items(
            {level: whole[level] for level in LEVELS},
            {level: whole[f"{level}_year"] for level in LEVELS},
            whole["place_companies"],
        )
        board_writes, board_deletes = write_leaderboards(store, boards, SYNC_PK)
        written, deleted = written + board_writes, deleted + board_deletes
    advanced = {
        source: frame["updated_at"].max() for source, frame in changed.items() if not frame.is_empty()
    }
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
