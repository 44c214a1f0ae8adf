"""``/company/{slug}``, ``/city/{slug}``, ``/state/{code}`` and ``/company/{slug}/names``.

An entity answer is two queries, never a lake scan: the entity's partition of the Entities table
(``METADATA``, ``STATS#*``, ``SERIES#*`` and, for places, ``TOP#*``, written by gold-sync) and its
partition of the live feed (``{prefix}-Violations``, the latest 5 live violations per agency).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ventureos.api.common import Slug, StateCode, cached_content, cached_json, json_bytes, money, store_of
from ventureos.api.problems import not_found
from ventureos.entities import known_entities, resolve_names
from ventureos.gold import ALL
from ventureos.serving.base import ENTITIES, LIVE_FEED, Item, ServingStore
from ventureos.serving.entity_items import METADATA
from ventureos.serving.reads import entity_profile
from ventureos.severity import SEVERITIES

router = APIRouter(tags=["entities"])

EVIDENCE = ("canonical", "method", "matched", "parent", "parent_slug", "confidence")


def company_key(slug: str) -> str:
    return f"COMPANY#{slug}"


def city_key(slug: str) -> str:
    return f"CITY#{slug}"


def state_key(code: str) -> str:
    # The same rule as ventureos.entities.state_key: state keys are lower-case (STATE#tx).
    return f"STATE#{code.lower()}"


def _date(value: Any) -> str | None:
    return str(value) if value else None


def totals(stats: Item) -> dict[str, Any]:
    """One ``STATS#{agency}`` item as the answer's totals; ``severity`` always has the four classes."""
    severity = stats.get("severity") or {}
    return {
        "count": int(stats.get("total_violations", 0)),
        "penalties": money(stats.get("total_penalties", 0)),
        "first_date": _date(stats.get("first_violation_date")),
        "last_date": _date(stats.get("last_violation_date")),
        "severity": {
            name: {
                "count": int(severity.get(name, {}).get("count", 0)),
                "penalty": money(severity.get(name, {}).get("penalty", 0)),
            }
            for name in SEVERITIES
        },
    }


def series(years: list[Item]) -> list[dict[str, Any]]:
    return [{"year": int(y["year"]), "count": int(y["count"]), "penalty": money(y["penalty"])} for y in years]


def company_ref(entry: Item) -> dict[str, Any]:
    key = str(entry["key"])
    ref = {
        "key": key,
        "slug": key.removeprefix("COMPANY#"),
        "name": entry.get("name"),
        "count": int(entry.get("count", 0)),
        "penalty": money(entry.get("penalty", 0)),
    }
    for optional in ("state", "industry"):
        if entry.get(optional):
            ref[optional] = entry[optional]
    return ref


def feed_entry(item: Item) -> dict[str, Any]:
    return {
        "violation_id": item["violation_id"],
        "dataset": item.get("dataset"),
        "date": item.get("event_date"),
        "company_name": item.get("company_name"),
        "city": item.get("city"),
        "state": item.get("state"),
        "violation_type": item.get("violation_type"),
        "penalty": money(item.get("penalty_amount")),
        "description": item.get("description"),
    }


def entity_answer(store: ServingStore, key: str) -> dict[str, Any] | None:
    """The whole answer of one entity from its serving items, or None when it has none."""
    profile = entity_profile(store, key)
    if profile is None:
        return None
    metadata, stats = profile["metadata"], profile["stats"]
    agencies = sorted(a for a in stats if a != ALL)
    feed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # SK order is (agency, date, id) ascending: newest first is the reverse.
    for item in reversed(store.query(LIVE_FEED, key)):
        feed[str(item["agency"])].append(feed_entry(item))
    entity_type = str(metadata.get("entity_type", key.split("#", 1)[0].lower()))
    answer: dict[str, Any] = {
        "key": key,
        "type": entity_type,
        "profile": {
            "name": metadata.get("name"),
            "industry": metadata.get("industry"),
            "aliases": list(metadata.get("aliases", [])),
            "parent": metadata.get("parent"),
        },
        "agencies": agencies,
        "totals": {agency: totals(stats[agency]) for agency in [ALL, *agencies] if agency in stats},
        "series": {agency: series(years) for agency, years in sorted(profile["series"].items())},
        "live_feed": {agency: feed[agency] for agency in sorted(feed)},
        "last_updated": metadata.get("last_updated"),
    }
    if entity_type != "company":
        answer["top_companies"] = {
            by: {agency: [company_ref(c) for c in companies] for agency, companies in sorted(tops.items())}
            for by, tops in sorted(profile["top"].items())
        }
    return answer


def _answer(request: Request, key: str, what: str) -> Response:
    store, answers = store_of(request), request.app.state.answers
    # The token is taken before the items are read: an answer kept under it is never older than it.
    token = store.change_token()
    kept = answers.get(key, token)
    if kept is None:
        answer = entity_answer(store, key)
        if answer is None:
            raise not_found(f"no {what} {key.split('#', 1)[1]!r} in the serving store")
        content = json_bytes(answer)
        kept = content, answers.put(key, token, content)
    return cached_content(request, *kept)


@router.get("/company/{slug}", summary="A company: profile, totals, series, live feed")
def company(request: Request, slug: Slug) -> Response:
    return _answer(request, company_key(slug), "company")


@router.get("/city/{slug}", summary="A city (slug-st): totals, series, live feed, top companies")
def city(request: Request, slug: Slug) -> Response:
    return _answer(request, city_key(slug), "city")


@router.get("/state/{code}", summary="A state: totals, series, live feed, top companies")
def state(request: Request, code: StateCode) -> Response:
    return _answer(request, state_key(code), "state")


@lru_cache(maxsize=4096)
def explain_names(names: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """Entity-resolution evidence of each spelling (pure: curated files and rules, no lake read)."""
    resolved = resolve_names(pl.Series(list(names), dtype=pl.String))
    by_name = {row["company_name"]: row for row in resolved.iter_rows(named=True)}
    return tuple(
        {"name": name, "slug": by_name[name]["company_slug"]} | {k: by_name[name][k] for k in EVIDENCE}
        for name in names
    )


@lru_cache(maxsize=4096)
def curated_aliases(slug: str) -> tuple[dict[str, str], ...]:
    """The known names that resolve to ``slug``: the curated parent's name and the spellings and brand
    prefixes of ``aliases.csv`` (``match`` exact or prefix, ``key`` the spacing-free match key)."""
    exact, prefix = known_entities()
    rows = pl.concat([exact.with_columns(match=pl.lit("exact")), prefix.with_columns(match=pl.lit("prefix"))])
    rows = rows.filter(pl.col("parent_slug") == slug).sort("match", "alias")
    return tuple(
        {"alias": r["alias"], "match": r["match"], "key": r["key"]} for r in rows.iter_rows(named=True)
    )


@router.get("/company/{slug}/names", summary="Name variants merged into a company, with the evidence")
def company_names(request: Request, slug: Slug) -> Response:
    key = company_key(slug)
    metadata = store_of(request).get_item(ENTITIES, key, METADATA)
    if metadata is None:
        raise not_found(f"no company {slug!r} in the serving store")
    # Spellings of this company's silver rows, most frequent first (gold-sync keeps up to 20).
    spellings = tuple(str(name) for name in metadata.get("aliases", []))
    return cached_json(
        request,
        {
            "key": key,
            "name": metadata.get("name"),
            "parent": metadata.get("parent"),
            "names": list(explain_names(spellings)),
            "curated": list(curated_aliases(slug)),
        },
    )
