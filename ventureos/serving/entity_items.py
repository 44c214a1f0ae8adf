"""The Entities items of one entity, built from its gold rows (pure: frames in, items out).

Per entity: ``METADATA``; per agency of its stats (``all`` included) ``STATS#{agency}`` with the
severity split, ``SERIES#{agency}`` (per event year) and, for cities and states,
``TOP#{by}#{agency}`` (its top companies); and its ``SEARCH#`` index items. Every item of an
(entity, agency) exists exactly while its gold stats row does, so the stats removals say which to delete.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from ventureos.entities import company_key, curated_parents
from ventureos.gold import ALL
from ventureos.search import STOP_WORDS, fold, search_tokens, shard
from ventureos.serving.base import Item, Key
from ventureos.severity import SEVERITIES

METADATA = "METADATA"
TOP_SIZE = 10
RANKINGS = ("penalty", "count")
MEASURES = {"penalty": "penalty_total", "count": "violation_count"}
PLACE_TYPES = ("city", "state")
_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def _compact(rows: Iterable[Item]) -> list[Item]:
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def ranked(frame: pl.DataFrame, by: str, group: list[str], limit: int, key: str) -> pl.DataFrame:
    """The first ``limit`` rows per ``group`` by ``by``'s measure desc, the other measure desc, then ``key``."""
    first = MEASURES[by]
    second = MEASURES["count" if by == "penalty" else "penalty"]
    ordered = frame.sort(
        [*group, first, second, key], descending=[*(False for _ in group), True, True, False]
    )
    return ordered.group_by(group, maintain_order=True).head(limit)


def severity_maps(years: pl.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, object]]]:
    """``{(entity_key, agency): {severity: {"count", "penalty"}}}`` with all four classes, from year stats."""
    totals = years.group_by("entity_key", "agency", "severity").agg(
        pl.col("violation_count", "penalty_total").sum()
    )
    maps: dict[tuple[str, str], dict[str, dict[str, object]]] = {}
    for key, agency, severity, count, penalty in totals.iter_rows():
        maps.setdefault((key, agency), {})[severity] = {"count": count, "penalty": penalty}
    zero = {"count": 0, "penalty": pl.Series([0], dtype=years.schema["penalty_total"]).item()}
    return {pair: {s: split.get(s, zero) for s in SEVERITIES} for pair, split in maps.items()}


def series(years: pl.DataFrame) -> dict[tuple[str, str], list[dict[str, object]]]:
    """``{(entity_key, agency): [{"year", "count", "penalty"}, …]}`` ascending by year; undated rows left out."""
    per_year = (
        years.filter(pl.col("year").is_not_null())
        .group_by("entity_key", "agency", "year")
        .agg(pl.col("violation_count", "penalty_total").sum())
        .sort("entity_key", "agency", "year")
    )
    out: dict[tuple[str, str], list[dict[str, object]]] = {}
    for key, agency, year, count, penalty in per_year.iter_rows():
        out.setdefault((key, agency), []).append({"year": year, "count": count, "penalty": penalty})
    return out


def top_companies(places: pl.DataFrame) -> dict[tuple[str, str, str], list[dict[str, object]]]:
    """``{(place_key, by, agency): [{"key", "name", "count", "penalty"}, …]}``: up to ``TOP_SIZE`` each."""
    out: dict[tuple[str, str, str], list[dict[str, object]]] = {}
    for by in RANKINGS:
        top = ranked(places, by, ["place_key", "agency"], TOP_SIZE, "company_key")
        for place, agency, key, name, count, penalty in top.select(
            "place_key", "agency", "company_key", "company_name", "violation_count", "penalty_total"
        ).iter_rows():
            entry = {"key": key, "name": name, "count": count, "penalty": penalty}
            out.setdefault((place, by, agency), []).append({k: v for k, v in entry.items() if v is not None})
    return out


def parents() -> dict[str, str]:
    """Curated parent name per company key."""
    frame = curated_parents().select(company_key(pl.col("slug")), "name")
    return dict(frame.iter_rows())


def entity_state(key: str, level: str, main_states: dict[str, str]) -> str | None:
    """The state shown with an entity: a city's and a state's own, a company's main one (most violations)."""
    if level == "state":
        return key.removeprefix("STATE#").upper()
    if level == "city":
        return key.rsplit("-", 1)[1].upper()
    return main_states.get(key)


def main_states(places: pl.DataFrame) -> dict[str, str]:
    """Each company's state with the most violations (then penalties, then the state key), from
    ``place_companies`` rows."""
    states = places.filter(pl.col("place_key").str.starts_with("STATE#") & (pl.col("agency") == ALL))
    top = ranked(states, "count", ["company_key"], 1, "place_key")
    return {
        company: place.removeprefix("STATE#").upper()
        for company, place in top.select("company_key", "place_key").iter_rows()
    }


def search_names(name: str, level: str) -> list[str]:
    """Index tokens of an entity's display name. A city is indexed by its own words and its whole name
    (``AUSTIN, TX``: ``austin``, ``austintx``), not by its state's code: ``tx`` finds the state, not
    every city of it."""
    if level != "city" or ", " not in name:
        return search_tokens(name)
    city_words = [w for w in fold(name.rsplit(", ", 1)[0]).split() if w not in STOP_WORDS]
    return list(dict.fromkeys([*city_words, *search_tokens(name)[-1:]]))


def search_keys(key: str, name: str | None, level: str) -> list[Key]:
    return [(shard(token), f"{token}#{key}") for token in (search_names(name, level) if name else [])]


def entity_items(
    level: str, stats: pl.DataFrame, years: pl.DataFrame, places: pl.DataFrame, states: dict[str, str]
) -> list[Item]:
    """Every Entities item of the entities of ``stats`` (all their gold rows: stats, year stats, and
    for places their ``place_companies`` rows); ``states``: main state per company key."""
    splits, histories = severity_maps(years), series(years)
    tops = top_companies(places) if level in PLACE_TYPES else {}
    curated = parents() if level == "company" else {}
    items: list[Item] = []
    for row in stats.to_dicts():
        key, agency = row["entity_key"], row["agency"]
        updated = row["updated_at"].strftime(_TIMESTAMP)
        items.append({
            "PK": key, "SK": f"STATS#{agency}", "entity_type": level, "agency": agency,
            "total_violations": row["violation_count"], "total_penalties": row["penalty_total"],
            "first_violation_date": row["first_event_date"], "last_violation_date": row["last_event_date"],
            "last_updated": updated, "severity": splits.get((key, agency)),
        })  # fmt: skip
        items.append(
            {"PK": key, "SK": f"SERIES#{agency}", "agency": agency, "years": histories.get((key, agency), [])}
        )
        for by in RANKINGS if level in PLACE_TYPES else ():
            companies = tops.get((key, by, agency), [])
            items.append(
                {"PK": key, "SK": f"TOP#{by}#{agency}", "agency": agency, "by": by, "companies": companies}
            )
        if agency != ALL:
            continue
        name, state = row["entity_name"], entity_state(key, level, states)
        items.append({
            "PK": key, "SK": METADATA, "entity_type": level, "name": name,
            "industry": row["industry"] if level == "company" else None, "aliases": row["aliases"] or [],
            "parent": curated.get(key), "state": state, "last_updated": updated,
        })  # fmt: skip
        for pk, sk in search_keys(key, name, level):
            items.append({
                "PK": pk, "SK": sk, "key": key, "name": name, "entity_type": level,
                "count": row["violation_count"], "penalty": row["penalty_total"], "state": state,
            })  # fmt: skip
    return _compact(items)


def pair_keys(key: str, agency: str, level: str) -> list[Key]:
    """Keys of the items of one (entity, agency) pair (not METADATA nor SEARCH)."""
    tops = [(key, f"TOP#{by}#{agency}") for by in RANKINGS] if level in PLACE_TYPES else []
    return [(key, f"STATS#{agency}"), (key, f"SERIES#{agency}"), *tops]


def level_of(key: str) -> str:
    return {"COMPANY": "company", "CITY": "city", "STATE": "state"}[key.split("#", 1)[0]]
