"""The API's read helpers over items gold-sync wrote from real OSHA and EPA rows, on both serving backends."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from flows.daily_ingest import daily_ingest
from flows.gold_sync import gold_sync
from ventureos.lakehouse import current_lakehouse
from ventureos.search import STOP_WORDS, fold
from ventureos.serving import ServingStore, open_store
from ventureos.serving.reads import entity_profile, leaderboard, search
from ventureos.settings import load_settings
from ventureos.severity import SEVERITIES

from .conftest import BUNDLED_SAMPLES
from .test_gold import current_silver

DAY = "2024-03-05"
ZERO = Decimal("0")


def ingest_and_sync() -> ServingStore:
    """100 OSHA severe-injury reports and the EPA ECHO sample through daily-ingest, then gold-sync."""
    storage = current_lakehouse().storage
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    )
    storage.write_bytes(
        f"bronze/daily/osha/severe_injury/{DAY}/r.csv", reports.head(100).write_csv().encode()
    )
    echo = BUNDLED_SAMPLES / "epa_echo" / "echo_exporter_sample.csv"
    storage.write_bytes(f"bronze/daily/epa/echo/{DAY}/echo.csv", echo.read_bytes())
    assert daily_ingest(DAY)["totals"]["inserted"] == 120
    assert gold_sync()["written"] > 0
    return open_store(load_settings())


def per_entity(silver: pl.DataFrame, key: pl.Expr) -> dict[str, tuple[int, Decimal, int]]:
    """``{key: (count, penalty total, dated count)}`` of current silver rows."""
    grouped = silver.with_columns(key.alias("key")).drop_nulls("key").group_by("key")
    totals = grouped.agg(pl.len(), pl.col("penalty_amount").sum(), pl.col("event_date").is_not_null().sum())
    return {k: (n, p or ZERO, d) for k, n, p, d in totals.iter_rows()}


def check_profiles(store: ServingStore, silver: pl.DataFrame) -> None:
    companies = per_entity(silver, pl.lit("COMPANY#") + pl.col("company_slug"))
    states = per_entity(silver, pl.lit("STATE#") + pl.col("state").str.to_lowercase())
    assert len(companies) > 50
    for key, (count, penalty, dated) in (companies | states).items():
        profile = entity_profile(store, key)
        assert profile is not None, key
        total = profile["stats"]["all"]
        assert (total["total_violations"], total["total_penalties"]) == (count, penalty), key
        severity = total["severity"]
        assert list(severity) == list(SEVERITIES)
        assert sum(s["count"] for s in severity.values()) == count
        assert sum(s["penalty"] for s in severity.values()) == penalty
        assert sum(y["count"] for y in profile["series"]["all"]) == dated
        years = [y["year"] for y in profile["series"]["all"]]
        assert years == sorted(years)
    assert entity_profile(store, "COMPANY#no-such-company") is None

    # EPA ECHO penalties are formal enforcement: serious.
    epa = silver.filter(pl.col("agency") == "epa")
    key = "COMPANY#" + epa["company_slug"].drop_nulls()[0]
    epa_stats = entity_profile(store, key)["stats"]["epa"]
    assert epa_stats["severity"]["serious"]["count"] == epa_stats["total_violations"] > 0
    assert epa_stats["severity"]["willful"] == {"count": 0, "penalty": 0}

    # A state's top companies: the largest count first, each one's count within the state.
    texas = silver.filter(pl.col("state") == "TX")
    in_texas = per_entity(texas, pl.lit("COMPANY#") + pl.col("company_slug"))
    top = entity_profile(store, "STATE#tx")["top"]["count"]["all"]
    assert 0 < len(top) <= 10
    assert [(c["count"], c["penalty"]) for c in top] == [in_texas[c["key"]][:2] for c in top]
    assert top[0]["count"] == max(n for n, _, _ in in_texas.values())


def check_search(store: ServingStore, companies: int | None) -> None:
    """Each company (the first ``companies`` by key; None: all) is found by each indexed word of its
    name, and by its whole name."""
    silver = current_silver()
    keys = sorted(("COMPANY#" + silver["company_slug"].drop_nulls()).unique())
    for key in keys[:companies]:
        name = entity_profile(store, key)["metadata"]["name"]
        words = [w for w in fold(name).split() if w not in STOP_WORDS and len(w) >= 2]
        for query in [*words, name]:
            assert key in [r["key"] for r in search(store, query, limit=10_000)], (key, query)
        exact = search(store, name, limit=10_000)
        assert fold(exact[0]["name"]) == fold(name)
    walmart = search(store, "wal mart", limit=5)
    assert walmart[0]["key"] == "COMPANY#walmart" and walmart[0]["name"] == "Walmart"
    assert search(store, "WAL-MART") == search(store, "walmart")
    assert search(store, "w") == [] and search(store, "!!") == []
    assert search(store, "zzzzqqq") == []
    texas = search(store, "tx")
    assert texas[0] == {**texas[0], "key": "STATE#tx", "entity_type": "state", "state": "TX"}


def check_leaderboards(store: ServingStore, silver: pl.DataFrame) -> None:
    companies = per_entity(silver, pl.lit("COMPANY#") + pl.col("company_slug"))
    ranked = sorted(companies.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    board = leaderboard(store, "company", "penalty", "all")
    assert [e["key"] for e in board] == [k for k, _ in ranked][:100]
    assert [(e["count"], e["penalty"]) for e in board] == [v[:2] for _, v in ranked][:100]

    cities = leaderboard(store, "city", "count", "all", "STATE#TX")
    assert cities and {e["state"] for e in cities} == {"TX"}
    assert [e["count"] for e in cities] == sorted((e["count"] for e in cities), reverse=True)

    latest = silver["event_date"].max().year
    recent = silver.filter(pl.col("event_date").dt.year() >= latest)
    since = per_entity(recent, pl.lit("COMPANY#") + pl.col("company_slug"))
    by_count = sorted(since.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:100]
    board = leaderboard(store, "company", "count", "all", f"SINCE#{latest}")
    assert [(e["key"], e["count"]) for e in board] == [(k, v[0]) for k, v in by_count]
    assert leaderboard(store, "company", "count", "all", f"SINCE#{latest - 10}") == []
    assert leaderboard(store, "state", "count", "nope") == []
    with pytest.raises(ValueError, match="unknown level"):
        leaderboard(store, "planet", "count", "all")


def check_reads(store: ServingStore, companies_searched: int | None = None) -> None:
    silver = current_silver()
    check_profiles(store, silver)
    check_search(store, companies_searched)
    check_leaderboards(store, silver)


@pytest.mark.usefixtures("prefect_harness")
def test_reads_on_sqlite(home: Path) -> None:
    check_reads(ingest_and_sync())


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_reads_on_dynamodb(aws_home: str) -> None:
    # Every company is searched on SQLite; here a sample keeps the HTTP round trips to moto few.
    check_reads(ingest_and_sync(), companies_searched=15)
