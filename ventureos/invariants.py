"""The lakehouse's invariants, checked on the whole of it (tests, fault injection, an operator's audit).

``check_invariants`` returns one line per broken rule, empty when all hold:

1. at most one current version per ``violation_id`` in ``silver.violations``;
2. every gold table (stats, year stats, place companies) is exactly the aggregate of current silver
   (``gold.aggregate_tables``; ``updated_at`` aside), and the stored partial aggregates gold rolls up
   from (``gold_state``) are exactly current silver's when their marker names its snapshot;
3. the versions in the buffer, the archive and the late area are exactly silver's versions
   (``archive.VERSION_KEY``): none silver never held, none missing;
4. the serving Entities items (METADATA, STATS, SERIES, TOP, SEARCH, leaderboards) are exactly those
   built from gold (after a gold-sync);
5. the live feed holds exactly the latest ``FEED_SIZE`` live violations per entity and agency;
6. no version replaced a newer one: per ``violation_id``, in ingest order (``valid_from``), the as-of of
   the versions (``layout.source_as_of``, none is the oldest) never goes back.

It reads every table and file whole: meant for test- and demo-sized lakehouses. ``check_gold_at_scale``
checks rules 1 and 2 on a lake of any size (a streamed scan of current silver's gold columns).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from ventureos.archive import VERSION_KEY
from ventureos.gold import LEVELS, SPECS, aggregate_tables, partials_of, read_table
from ventureos.gold_state import SILVER_COLUMNS, STATE, current_silver, stored_state
from ventureos.lakehouse import Lakehouse
from ventureos.layout import ARCHIVE_PREFIX, BUFFER_PREFIX, LATE_PREFIX, source_as_of
from ventureos.serving.base import ENTITIES, LIVE_FEED, ServingStore, from_wire, item_key, to_wire
from ventureos.serving.entity_items import entity_items, main_states
from ventureos.serving.leaderboards import leaderboard_items
from ventureos.serving.live_feed import FEED_SIZE, feed_frame, live
from ventureos.serving.sync import SOURCES, SYNC_PK
from ventureos.silver import OLDEST

SHOWN = 3
"""Examples named per broken rule."""


def read_silver(lakehouse: Lakehouse) -> pl.DataFrame:
    return pl.DataFrame(pl.from_arrow(lakehouse.violations().scan().to_arrow()))


def expected_feed(silver: pl.DataFrame) -> list[tuple[str, str]]:
    """``(PK, SK)`` of the latest ``FEED_SIZE`` live violations per entity and agency (event date, then id)."""
    items = feed_frame(live(silver)).sort("PK", "agency", "SK", descending=[False, False, True])
    return sorted(
        items.group_by("PK", "agency", maintain_order=True).head(FEED_SIZE).select("PK", "SK").rows()
    )


def stored_feed(store: ServingStore) -> list[tuple[str, str]]:
    return sorted((i["PK"], i["SK"]) for i in store.scan(LIVE_FEED))


def stored_versions(lakehouse: Lakehouse) -> pl.DataFrame:
    """``VERSION_KEY`` of every row in the buffer, archive and late files."""
    storage = lakehouse.storage
    keys = [
        key
        for prefix in (BUFFER_PREFIX, ARCHIVE_PREFIX, LATE_PREFIX)
        for key in storage.list(prefix)
        if key.endswith(".parquet")
    ]
    frames = [storage.read_parquet(key).select(VERSION_KEY) for key in keys]
    return pl.concat(frames) if frames else pl.DataFrame(schema=dict.fromkeys(VERSION_KEY, pl.String))


def _examples(values: list[Any]) -> str:
    shown = ", ".join(map(str, values[:SHOWN]))
    return shown + (f" (+{len(values) - SHOWN} more)" if len(values) > SHOWN else "")


def _diff(name: str, expected: set[Any], found: set[Any]) -> list[str]:
    problems = []
    if missing := sorted(expected - found, key=str):
        problems.append(f"{name}: {len(missing)} missing, e.g. {_examples(missing)}")
    if extra := sorted(found - expected, key=str):
        problems.append(f"{name}: {len(extra)} unexpected, e.g. {_examples(extra)}")
    return problems


def one_current_version(silver: pl.DataFrame) -> list[str]:
    ids = silver.filter("is_current")["violation_id"]
    doubled = sorted(ids.filter(ids.is_duplicated()).unique())
    return [f"silver: {len(doubled)} id(s) with several current versions, e.g. {_examples(doubled)}"] * bool(
        doubled
    )


def gold_is_current_silver(lakehouse: Lakehouse, current: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Rule 2 for gold's tables; ``current``: the current silver rows (``SILVER_COLUMNS`` at least)."""
    aggregates = aggregate_tables(current.lazy().select(SILVER_COLUMNS), SPECS, datetime.now(UTC))
    problems = []
    for spec in SPECS:
        found = read_table(lakehouse.catalog, spec).drop("updated_at")
        expected = aggregates[spec.identifier].select(found.columns).cast(dict(found.schema))
        # Lists (aliases) compare as joined text: set members must be hashable.
        rows = [
            pl.col(c).list.join("\x1f") if t == pl.List(pl.String) else pl.col(c)
            for c, t in found.schema.items()
        ]
        problems += _diff(spec.identifier, set(expected.select(rows).rows()), set(found.select(rows).rows()))
    return problems


def partials_are_current_silver(lakehouse: Lakehouse, current: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Rule 2 for the stored partial aggregates; ``current``: current silver rows (``SILVER_COLUMNS`` at least)."""
    state, marker = stored_state(lakehouse.catalog)
    snapshot = lakehouse.violations().current_snapshot()
    if marker is None or snapshot is None or marker != snapshot.snapshot_id:
        return []  # not stored for this snapshot: the next gold step moves them
    expected = partials_of(current.lazy().select(SILVER_COLUMNS))
    problems = []
    for spec in SPECS:
        columns = [*spec.partial_key, *spec.partial_values]
        found = state.filter(pl.col("gold_table") == spec.identifier).select(columns)
        problems += _diff(
            f"{STATE} ({spec.identifier})",
            set(expected[spec.identifier].select(columns).rows()),
            set(found.rows()),
        )
    return problems


def stored_versions_are_silver(lakehouse: Lakehouse, silver: pl.DataFrame) -> list[str]:
    expected = set(silver.select(VERSION_KEY).rows())
    return _diff("buffer + archive versions vs silver", expected, set(stored_versions(lakehouse).rows()))


def expected_entities(lakehouse: Lakehouse) -> dict[tuple[str, str], dict[str, Any]]:
    """Every Entities item gold-sync builds from the whole gold tables, as the store returns it."""
    catalog = lakehouse.catalog
    whole = {source: read_table(catalog, spec) for source, spec in SOURCES.items()}
    places = whole["place_companies"]
    states = main_states(places)
    items = leaderboard_items(
        {level: whole[level] for level in LEVELS}, {level: whole[f"{level}_year"] for level in LEVELS}, places
    )
    for level in LEVELS:
        stats, years = whole[level], whole[f"{level}_year"]
        items += entity_items(
            level, stats, years, places.filter(pl.col("place_key").is_in(stats["entity_key"])), states
        )
    return {item_key(item): from_wire(to_wire(item)) for item in items}


def entities_are_gold(lakehouse: Lakehouse, store: ServingStore) -> list[str]:
    expected = expected_entities(lakehouse)
    found = {item_key(i): i for i in store.scan(ENTITIES) if not i["PK"].startswith(SYNC_PK)}
    problems = _diff("serving Entities items vs gold", set(expected), set(found))
    differing = sorted(key for key in set(expected) & set(found) if expected[key] != found[key])
    if differing:
        problems.append(
            f"serving Entities items vs gold: {len(differing)} differ, e.g. {_examples(differing)}"
        )
    return problems


def feed_is_latest(silver: pl.DataFrame, store: ServingStore) -> list[str]:
    return _diff("live feed", set(expected_feed(silver)), set(stored_feed(store)))


def versions_in_source_order(silver: pl.DataFrame) -> list[str]:
    as_of = pl.col("_as_of")
    behind = (
        silver.select("violation_id", "valid_from", _as_of=source_as_of().fill_null(OLDEST))
        .sort("violation_id", "valid_from")
        .filter(as_of < as_of.cum_max().over("violation_id"))
    )
    ids = sorted(behind["violation_id"].unique())
    return [
        f"silver: {len(ids)} id(s) with a version older than one it replaced, e.g. {_examples(ids)}"
    ] * bool(ids)


def check_gold_at_scale(lakehouse: Lakehouse) -> list[str]:
    """Rules 1 and 2 on a lake of any size: current silver is streamed, ``SILVER_COLUMNS`` only (a
    benchmark's multi-million-row lake; ``check_invariants`` reads every table whole)."""
    current = current_silver(lakehouse.violations(), lakehouse.storage.polars_storage_options)
    doubled = (
        current.group_by("violation_id")
        .len()
        .filter(pl.col("len") > 1)
        .select("violation_id")
        .collect(engine="streaming")["violation_id"]
        .sort()
        .to_list()
    )
    return [
        *[f"silver: {len(doubled)} id(s) with several current versions, e.g. {_examples(doubled)}"]
        * bool(doubled),
        *gold_is_current_silver(lakehouse, current),
        *partials_are_current_silver(lakehouse, current),
    ]


def check_invariants(lakehouse: Lakehouse, store: ServingStore) -> list[str]:
    """Every broken invariant, one line each (with up to ``SHOWN`` examples); empty when all hold."""
    silver = read_silver(lakehouse)
    return [
        *one_current_version(silver),
        *gold_is_current_silver(lakehouse, silver.filter("is_current")),
        *partials_are_current_silver(lakehouse, silver.filter("is_current")),
        *stored_versions_are_silver(lakehouse, silver),
        *entities_are_gold(lakehouse, store),
        *feed_is_latest(silver, store),
        *versions_in_source_order(silver),
    ]
