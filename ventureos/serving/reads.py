"""Reads of the Entities items gold-sync writes: what the API answers from (no web framework here).

Each helper is a few store calls: an entity profile is one query of its partition, a leaderboard one
get, a search at most two queries of prefix shards.
"""

from __future__ import annotations

from typing import Any

from ventureos.gold import LEVELS
from ventureos.search import MIN_QUERY, fold, shard
from ventureos.serving.base import ENTITIES, ServingStore
from ventureos.serving.entity_items import METADATA, RANKINGS


def entity_profile(store: ServingStore, key: str) -> dict[str, Any] | None:
    """An entity's items by kind, or None when it has no METADATA (unknown entity):
    ``{"key", "metadata": item, "stats": {agency: item}, "series": {agency: [{"year", "count",
    "penalty"}, …]}, "top": {by: {agency: [{"key", "name", "count", "penalty"}, …]}}}`` (``top`` is
    empty for companies)."""
    profile: dict[str, Any] = {"key": key, "metadata": None, "stats": {}, "series": {}, "top": {}}
    for item in store.query(ENTITIES, key):
        kind, _, rest = item["SK"].partition("#")
        if item["SK"] == METADATA:
            profile["metadata"] = item
        elif kind == "STATS":
            profile["stats"][rest] = item
        elif kind == "SERIES":
            profile["series"][rest] = item["years"]
        elif kind == "TOP":
            by, _, agency = rest.partition("#")
            profile["top"].setdefault(by, {})[agency] = item["companies"]
    return profile if profile["metadata"] is not None else None


def leaderboard(
    store: ServingStore, level: str, by: str, agency: str, filter_sk: str = "ALL"
) -> list[dict[str, Any]]:
    """Entries of ``TOP#{level}#{by}#{agency}`` / ``filter_sk`` (``ALL``, ``STATE#TX``, ``SECTOR#23``,
    ``SINCE#2020``), best first; empty when nothing qualifies."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if by not in RANKINGS:
        raise ValueError(f"unknown ranking {by!r}; expected one of {', '.join(RANKINGS)}")
    item = store.get_item(ENTITIES, f"TOP#{level}#{by}#{agency}", filter_sk)
    return list(item["entries"]) if item else []


def _matches(name: str, words: list[str]) -> bool:
    """Every query word starts some folded word of ``name``."""
    name_words = fold(name).split()
    return all(any(n.startswith(w) for n in name_words) for w in words)


def search(store: ServingStore, q: str, limit: int = 10) -> list[dict[str, Any]]:
    """Entities whose name matches ``q`` (see docs/serving.md, "Search"): ``{key, name, entity_type,
    count, penalty, state?}``, exact names first, then by penalty, count and key.

    Candidates: index items whose token starts with the query's words joined (``wal mart`` ->
    ``walmart…``), and items whose token starts with the first word and whose name has a word starting
    with each other query word.
    """
    words = fold(q).split()
    joined = "".join(words)
    if len(joined) < MIN_QUERY:
        return []
    found: dict[str, dict[str, Any]] = {}
    for item in store.query(ENTITIES, shard(joined), joined):
        found.setdefault(item["key"], item)
    if len(words) > 1:
        for item in store.query(ENTITIES, shard(words[0]), words[0]):
            if item["key"] not in found and _matches(item["name"], words[1:]):
                found[item["key"]] = item
    query = " ".join(words)
    ranked = sorted(
        found.values(), key=lambda i: (fold(i["name"]) != query, -i["penalty"], -i["count"], i["key"])
    )
    fields = ("key", "name", "entity_type", "count", "penalty", "state")
    return [{f: item[f] for f in fields if f in item} for item in ranked[:limit]]
