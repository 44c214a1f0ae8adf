"""Leaderboard items, recomputed from the whole gold tables (small next to silver) at each sync that saw
a change, and written only where they differ from what the store holds.

PK ``TOP#{level}#{by}#{agency}`` (agency ``all`` included), SK one filter: ``ALL``; ``STATE#{ST}``
(companies: their violations in that state; cities: the cities of that state); ``SECTOR#{NN}``
(companies whose NAICS code starts with those two digits); ``SINCE#{YYYY}`` (violations with an event
year from YYYY on, for each of the ten years up to the latest data year of the level). Attribute
``entries``: up to ``LEADERBOARD_SIZE`` entries ``{key, name, count, penalty, state?, industry?}``,
by the measure desc, the other measure desc, then key.
"""

from __future__ import annotations

import polars as pl

from ventureos.gold import ALL, LEVELS
from ventureos.serving.base import ENTITIES, Item, ServingStore, from_wire, item_key, to_wire
from ventureos.serving.entity_items import RANKINGS, main_states, ranked

LEADERBOARD_SIZE = 100
SINCE_YEARS = 10
PARTITIONS_SK = "LEADERBOARDS"
"""Item (under the sync's PK) listing the leaderboard partitions written, so a vanished agency's go too."""


def _named(stats: pl.DataFrame, level: str, states: dict[str, str]) -> pl.DataFrame:
    """key, name, state, industry of each entity (from its ``all`` row)."""
    named = stats.filter(pl.col("agency") == ALL).select(
        key="entity_key",
        name="entity_name",
        industry=pl.col("industry") if level == "company" else pl.lit(None, dtype=pl.String),
    )
    if level == "company":
        state = pl.col("key").replace_strict(states, default=None, return_dtype=pl.String)
    else:
        state = pl.col("key").str.split("#").list.last().str.split("-").list.last().str.to_uppercase()
    return named.with_columns(state=state)


def _boards(level: str, stats: pl.DataFrame, years: pl.DataFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Rows (SK, key, agency, violation_count, penalty_total) of every filter of one level."""
    measures = ["key", "agency", "violation_count", "penalty_total"]
    base = stats.select(pl.col("entity_key").alias("key"), *measures[1:])
    boards = [base.with_columns(SK=pl.lit("ALL"))]
    if level == "company":
        in_state = places.filter(pl.col("place_key").str.starts_with("STATE#")).select(
            pl.col("company_key").alias("key"), *measures[1:],
            SK=pl.lit("STATE#") + pl.col("place_key").str.strip_prefix("STATE#").str.to_uppercase(),
        )  # fmt: skip
        sector = stats.filter(pl.col("industry").str.len_chars() >= 2).select("entity_key", "industry")
        boards += [
            in_state,
            base.join(sector.rename({"entity_key": "key"}), on="key").select(
                *measures, SK=pl.lit("SECTOR#") + pl.col("industry").str.slice(0, 2)
            ),
        ]
    if level == "city":
        code = pl.col("key").str.split("-").list.last().str.to_uppercase()
        boards.append(base.with_columns(SK=pl.lit("STATE#") + code))
    dated = years.filter(pl.col("year").is_not_null())
    if not dated.is_empty():
        latest = dated["year"].max()
        since = pl.DataFrame(
            {"since": range(latest - SINCE_YEARS + 1, latest + 1)}, schema={"since": pl.Int32}
        )
        recent = (
            dated.filter(pl.col("year") > latest - SINCE_YEARS)
            .group_by("entity_key", "agency", "year")
            .agg(pl.col("violation_count", "penalty_total").sum())
        )
        windows = (
            recent.join(since, how="cross")
            .filter(pl.col("year") >= pl.col("since"))
            .group_by("entity_key", "agency", "since")
            .agg(pl.col("violation_count", "penalty_total").sum())
        )
        boards.append(
            windows.select(
                pl.col("entity_key").alias("key"),
                *measures[1:],
                SK=pl.lit("SINCE#") + pl.col("since").cast(pl.String),
            )
        )
    return pl.concat([b.select("SK", *measures) for b in boards])


def leaderboard_items(
    stats: dict[str, pl.DataFrame], years: dict[str, pl.DataFrame], places: pl.DataFrame
) -> list[Item]:
    """Every leaderboard item from whole gold tables: stats and year stats per level, place companies."""
    states = main_states(places)
    items: list[Item] = []
    for level in LEVELS:
        named = _named(stats[level], level, states)
        rows = _boards(level, stats[level], years[level], places).join(named, on="key", how="left")
        for by in RANKINGS:
            top = ranked(rows, by, ["agency", "SK"], LEADERBOARD_SIZE, "key")
            grouped = top.group_by("agency", "SK", maintain_order=True).agg(
                pl.struct(
                    "key", "name", count="violation_count", penalty="penalty_total", state="state",
                    industry="industry",
                ).alias("entries")
            )  # fmt: skip
            for agency, sk, entries in grouped.iter_rows():
                items.append({"PK": f"TOP#{level}#{by}#{agency}", "SK": sk, "entries": entries})
    return items


def _normalized(item: Item) -> Item:
    """An item as a store returns it (exact numbers, no null attributes)."""
    return from_wire(to_wire(item))


def write_leaderboards(store: ServingStore, items: list[Item], sync_pk: str) -> tuple[int, int]:
    """Put the items that differ from the stored ones and delete stored leaderboard items no longer
    computed (of this and of previously written partitions); returns (written, deleted)."""
    registry = store.get_item(ENTITIES, sync_pk, PARTITIONS_SK)
    old = set(registry["partitions"]) if registry else set()
    new: dict[str, dict[str, Item]] = {}
    for item in items:
        new.setdefault(item["PK"], {})[item["SK"]] = _normalized(item)
    puts, deletes = [], []
    for pk in sorted(old | set(new)):
        stored = {item["SK"]: item for item in store.query(ENTITIES, pk)}
        wanted = new.get(pk, {})
        puts += [item for sk, item in wanted.items() if stored.get(sk) != item]
        deletes += [item_key(item) for sk, item in stored.items() if sk not in wanted]
    written, deleted = store.put_items(ENTITIES, puts), store.delete_items(ENTITIES, deletes)
    if set(new) != old:
        store.put_items(ENTITIES, [{"PK": sync_pk, "SK": PARTITIONS_SK, "partitions": sorted(new)}])
    return written, deleted
