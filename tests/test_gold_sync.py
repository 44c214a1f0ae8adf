"""Live feed and gold-sync: daily ingests, a historical batch, updates and deletes, on both shapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pyiceberg.expressions import EqualTo

import flows.common
from flows.daily_ingest import daily_ingest
from flows.gold_sync import gold_sync
from flows.historical_load import historical_load
from ventureos.cli import main
from ventureos.gold import (
    ALL,
    REMOVALS_ARROW,
    current_silver_of,
    gold_table,
    read_gold,
    removals_table,
    year_table,
)
from ventureos.invariants import entities_are_gold, expected_entities, expected_feed, stored_feed
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import SOURCE_URI, to_arrow
from ventureos.serving import ENTITIES, LIVE_FEED, ServingStore, open_store
from ventureos.serving.base import Item
from ventureos.serving.live_feed import FEED_COLUMNS, FEED_SIZE, apply_to_feed
from ventureos.serving.reads import search as search_entities
from ventureos.serving.sync import SOURCES, iso, read_watermarks, sync_entities
from ventureos.settings import load_settings
from ventureos.silver import Scd2Plan, current_versions

from .conftest import run_cli
from .test_daily_ingest import sample_reports
from .test_gold import T1, T2, T3, assert_gold_equals_current_silver, current_silver, edit, real_rows
from .test_gold import apply as apply_to_silver_and_gold


def test_feed_keeps_latest_five_through_updates_deletes_and_history(home: Path) -> None:
    store = open_store(load_settings())
    store.create_tables()

    def feed(plan: Scd2Plan) -> tuple[int, int]:
        def read_silver(slugs: list[str], states: list[str], columns: tuple[str, ...]) -> pl.DataFrame:
            return current_silver_of(current_lakehouse().violations(), slugs, states, columns)

        unchanged = plan.unchanged["violation_id"].to_list()
        present = current_versions(current_lakehouse().violations(), unchanged, FEED_COLUMNS)
        change = apply_to_feed(store, plan.added, plan.touched, read_silver, present)
        return change.written, change.deleted

    rows = real_rows(12)
    ids = rows["source_id"].to_list()
    acme = {"company_slug": "acme", "company_name": "Acme", "state": "TX", "city": "AUSTIN"}
    for day, source_id in enumerate(ids[:8], start=1):
        rows = edit(rows, source_id, **acme, event_date=date(2015, 3, day), penalty_amount=Decimal(day))
    written, deleted = feed(apply_to_silver_and_gold(rows, T1))
    # One batch adds 8 violations for Acme: only the latest 5 are stored.
    acme_feed = store.query(LIVE_FEED, "COMPANY#acme", "AGENCY#osha#")
    assert [i["event_date"] for i in acme_feed] == [f"2015-03-0{d}" for d in range(4, 9)]
    assert acme_feed[-1]["SK"] == f"AGENCY#osha#DATE#2015-03-08#osha:severe_injury:{ids[7]}"
    assert acme_feed[-1]["penalty_amount"] == 8 and acme_feed[-1]["company_name"] == "Acme"
    assert stored_feed(store) == expected_feed(current_silver())
    assert deleted == 0 and written == len(stored_feed(store))

    # The two latest withdrawn, one penalty changed in place, one moved to an earlier date.
    second = edit(rows, ids[5], penalty_amount=Decimal("600.00"))
    second = edit(second, ids[4], event_date=date(2015, 2, 1))
    second = second.with_columns(is_deleted=pl.col("source_id").is_in([ids[6], ids[7]]))
    plan = apply_to_silver_and_gold(second, T2)
    written, deleted = feed(plan)
    acme_feed = store.query(LIVE_FEED, "COMPANY#acme", "AGENCY#osha#")
    assert [i["event_date"] for i in acme_feed] == [
        "2015-03-01",
        "2015-03-02",
        "2015-03-03",
        "2015-03-04",
        "2015-03-06",
    ]
    assert acme_feed[-1]["penalty_amount"] == Decimal("600.00")
    assert stored_feed(store) == expected_feed(current_silver())
    # Redelivering the same batch changes nothing and writes nothing.
    assert feed(apply_to_silver_and_gold(second, T3)) == (0, 0)

    # A historical version (bronze/historical lineage) never enters the feed, even when newest.
    history = edit(real_rows(14).slice(12), ids[0], company_slug="x")
    history = edit(history, history["source_id"][0], **acme, event_date=date(2015, 9, 9))
    history = history.with_columns(
        pl.lit("s3://lake/bronze/historical/osha/severe_injury/h.csv").alias(SOURCE_URI)
    )
    before = stored_feed(store)
    assert feed(apply_to_silver_and_gold(history, datetime(2024, 1, 4, tzinfo=UTC))) == (0, 0)
    assert stored_feed(store) == before


DAY1, DAY2 = "2024-03-05", "2024-03-06"
HISTORICAL = "bronze/historical/osha/severe_injury"


def stage_day(day: str, reports: pl.DataFrame) -> None:
    current_lakehouse().storage.write_bytes(
        f"bronze/daily/osha/severe_injury/{day}/reports.csv", reports.write_csv().encode()
    )


def historical_batch(reports: pl.DataFrame, mode: str = "append") -> dict[str, Any]:
    """The historical-load flow: silver (+ buffer) and gold; its versions never enter the live feed."""
    current_lakehouse().storage.write_bytes(f"{HISTORICAL}/part-1.csv", reports.write_csv().encode())
    return historical_load("osha", "severe_injury", mode=mode)


def gold_size() -> int:
    """Entities items built from the whole of gold (what a full sync writes)."""
    return len(expected_entities(current_lakehouse()))


def assert_serving_is_gold(store: ServingStore) -> None:
    assert entities_are_gold(current_lakehouse(), store) == []


def search_items_of(store: ServingStore, key: str) -> list[Item]:
    return [i for i in store.scan(ENTITIES) if i["PK"].startswith("SEARCH#") and i["key"] == key]


def run_days_history_and_syncs() -> pl.DataFrame:
    """Two days, a historical load between them and three gold-syncs; returns the historical reports."""
    store = open_store(load_settings())
    reports = sample_reports()
    day1 = reports.slice(0, 60)
    # Older reports, and an older spelling of a daily one: a historical load is the past, so the daily
    # version stays current and in the feed (docs/operations.md, "Replays never win over newer data").
    corrected = day1.slice(5, 1).with_columns(Employer=pl.lit("Historic Employer Inc"))
    history = pl.concat([reports.slice(300, 60), corrected])
    renamed = day1.head(1).with_columns(Employer=pl.lit("Renamed Employer LLC"))
    day2 = pl.concat([reports.slice(60, 40), renamed])

    stage_day(DAY1, day1)
    assert daily_ingest(DAY1)["totals"]["inserted"] == 60
    assert stored_feed(store) == expected_feed(current_silver())
    first = gold_sync()
    assert first["written"] == gold_size() > 100 and first["deleted"] == 0
    assert_serving_is_gold(store)
    marks = read_watermarks(store)
    assert sorted(marks) == sorted(SOURCES)  # nothing removed yet
    assert gold_sync() == {"changed_rows": 0, "written": 0, "deleted": 0, "watermarks": first["watermarks"]}

    loaded = historical_batch(history)
    totals = loaded["totals"]
    assert (totals["inserted"], totals["updated"], totals["stale"]) == (60, 0, 1)
    assert loaded["live_feed"]["entities"] == 0  # no live version changed
    feed_after_day1 = stored_feed(store)
    assert feed_after_day1 == expected_feed(current_silver())
    corrected_id = f"osha:severe_injury:{corrected['ID'].item()}"
    assert corrected_id in {i["violation_id"] for i in store.scan(LIVE_FEED)}
    assert current_silver().filter(pl.col("violation_id") == corrected_id)["company_name"].item() != (
        "Historic Employer Inc"
    )
    old_company = (
        "COMPANY#" + current_silver().filter(pl.col("source_id") == day1["ID"][0])["company_slug"].item()
    )

    stage_day(DAY2, day2)
    totals = daily_ingest(DAY2)["totals"]
    assert (totals["inserted"], totals["updated"]) == (40, 1)
    assert_gold_equals_current_silver()
    feed = stored_feed(store)
    assert feed == expected_feed(current_silver()) and feed != feed_after_day1
    history_ids = {f"osha:severe_injury:{i}" for i in history["ID"]}
    assert not (history_ids - {corrected_id}) & {i["violation_id"] for i in store.scan(LIVE_FEED)}
    silver = current_silver()
    assert silver.filter(pl.col("violation_id").is_in(list(history_ids))).height == 61

    # Only what changed since the first sync is pushed; the old company of the renamed report leaves:
    # its STATS and SERIES (osha, all), METADATA and search items.
    assert search_items_of(store, old_company)
    third = gold_sync()
    assert 0 < third["written"] < gold_size()
    assert third["deleted"] >= 5 + 2
    assert_serving_is_gold(store)
    assert store.query(ENTITIES, old_company) == [] and search_items_of(store, old_company) == []
    texas = read_gold(current_lakehouse().catalog, "state").filter(
        (pl.col("entity_key") == "STATE#tx") & (pl.col("agency") == ALL)
    )
    item = store.get_item(ENTITIES, "STATE#tx", "STATS#all")
    assert item["total_violations"] == texas["violation_count"].item() > 5
    assert item["last_violation_date"] == texas["last_event_date"].item().isoformat()
    assert store.get_item(ENTITIES, "STATE#tx", "METADATA")["name"] == "TX"
    walmart = store.get_item(ENTITIES, "COMPANY#walmart", "METADATA")
    walmart_rows = silver.filter(pl.col("company_slug") == "walmart").sort("event_date", "violation_id")
    assert walmart_rows.height >= 2
    assert walmart["entity_type"] == "company"
    assert walmart["industry"] == walmart_rows["naics_code"].drop_nulls()[-1]
    assert len(store.query(LIVE_FEED, "STATE#tx", "AGENCY#osha#")) == FEED_SIZE

    # Re-running a day writes nothing new anywhere.
    assert daily_ingest(DAY2)["totals"]["unchanged"] == 41
    assert stored_feed(store) == feed
    assert gold_sync()["written"] == 0
    return history


def replace_takes_daily_items_out_of_the_feed(history: pl.DataFrame) -> None:
    """A replace load swaps all the dataset's rows, daily ones included: their items leave the feed."""
    assert stored_feed(open_store(load_settings()))
    assert historical_batch(history, mode="replace")["totals"]["inserted"] == 61
    assert expected_feed(current_silver()) == [] and stored_feed(open_store(load_settings())) == []
    assert_gold_equals_current_silver()

    # A daily correction of a historical report enters the feed; the first (append) load run again,
    # which the replace swapped out, is older than that correction: it stays current and in the feed.
    stage_day("2024-03-07", history.head(1).with_columns(Employer=pl.lit("Daily Again Inc")))
    assert daily_ingest("2024-03-07")["totals"]["updated"] == 1
    feed = stored_feed(open_store(load_settings()))
    assert feed == expected_feed(current_silver()) != []
    again = historical_batch(history)
    assert again["skipped_batches"] == [] and (again["totals"]["updated"], again["totals"]["stale"]) == (0, 1)
    assert stored_feed(open_store(load_settings())) == feed == expected_feed(current_silver())


def crash_after_the_silver_commit(day: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """daily-ingest of ``day`` dies right after its silver commit, before gold and the live feed."""

    def die(plan: object) -> None:
        raise SystemExit("killed right after the silver commit")

    with monkeypatch.context() as patch:
        patch.setattr(flows.common, "update_gold", die)
        with pytest.raises(SystemExit):
            daily_ingest(day)


@pytest.mark.usefixtures("prefect_harness")
def test_rerun_after_a_crash_past_the_silver_commit_repairs_gold_and_the_feed(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(load_settings())
    reports = sample_reports().slice(0, 30)
    stage_day(DAY1, reports)
    daily_ingest(DAY1)
    renamed, retold = reports["ID"][0], reports["ID"][1]
    day2 = reports.head(2).with_columns(
        Employer=pl.when(pl.col("ID") == renamed)
        .then(pl.lit("Brand New Employer LLC"))
        .otherwise("Employer"),
        **{"Final Narrative": pl.when(pl.col("ID") == retold).then(pl.lit("A corrected narrative."))},
    )
    stage_day(DAY2, day2)

    crash_after_the_silver_commit(DAY2, monkeypatch)
    assert stored_feed(store) != expected_feed(current_silver())  # the old company still shows

    assert daily_ingest(DAY2)["totals"]["unchanged"] == 2
    assert_gold_equals_current_silver()
    assert stored_feed(store) == expected_feed(current_silver())
    items = [i for i in store.scan(LIVE_FEED) if i["violation_id"] == f"osha:severe_injury:{retold}"]
    assert items and {i["description"] for i in items} == {"A corrected narrative."}


@pytest.mark.usefixtures("prefect_harness")
def test_the_next_run_repairs_a_crash_between_silver_and_gold_and_rebuild_gold_agrees(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run dies between its silver and gold commits and another day runs before any re-run: that
    day's gold step applies silver's whole change since gold's groups, the crashed run's rename too;
    ``ventureos run rebuild-gold`` then finds nothing to change."""
    store = open_store(load_settings())
    reports = sample_reports()
    stage_day(DAY1, reports.slice(0, 30))
    daily_ingest(DAY1)
    stage_day(DAY2, reports.head(1).with_columns(Employer=pl.lit("Brand New Employer LLC")))

    crash_after_the_silver_commit(DAY2, monkeypatch)
    stage_day("2024-03-07", reports.slice(30, 5))
    assert daily_ingest("2024-03-07")["totals"]["inserted"] == 5
    renamed = current_silver().filter(pl.col("company_name") == "Brand New Employer LLC")
    key = f"COMPANY#{renamed['company_slug'].item()}"
    catalog = current_lakehouse().catalog
    assert read_gold(catalog, "company").filter(pl.col("entity_key") == key)["violation_count"].to_list() == [
        1,
        1,
    ]
    assert_gold_equals_current_silver()

    capsys.readouterr()
    assert run_cli("run", "rebuild-gold") == 0
    out = capsys.readouterr().out
    for level in ("company", "city", "state"):
        assert re.search(rf"rebuilt gold\.{level}_stats: [1-9]\d* entities, 0 rows changed, 0 removed", out)
    assert_gold_equals_current_silver()
    assert store.get_item(ENTITIES, key, "STATS#all")["total_violations"] == 1


@pytest.mark.usefixtures("prefect_harness")
def test_daily_history_and_gold_sync_embedded(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = run_days_history_and_syncs()
    assert (home / "serving.db").is_file()

    capsys.readouterr()
    main(["serving", "get", "STATE#tx", "--json"])
    got = json.loads(capsys.readouterr().out)
    assert {i["PK"] for i in got["items"]} == {"STATE#tx"}
    sks = [i["SK"] for i in got["items"]]
    entity_sks = ["METADATA", "SERIES#all", "SERIES#osha", "STATS#all", "STATS#osha"]
    entity_sks += ["TOP#count#all", "TOP#count#osha", "TOP#penalty#all", "TOP#penalty#osha"]
    n = len(entity_sks)
    assert sks[:n] == entity_sks
    assert len(sks) == n + FEED_SIZE and all(sk.startswith("AGENCY#osha#DATE#") for sk in sks[n:])
    assert sks[n:] == sorted(sks[n:], reverse=True)  # newest first
    stats_all = got["items"][3]
    assert stats_all["total_violations"] > 5 and stats_all["total_penalties"] == 0

    main(["top", "--entity", "state", "--by", "count", "--limit", "3", "--json"])
    ranked = json.loads(capsys.readouterr().out)
    counts = [r["violation_count"] for r in ranked]
    assert len(ranked) == 3 and counts == sorted(counts, reverse=True)
    assert ranked[0]["violation_count"] == max(
        read_gold(current_lakehouse().catalog, "state").filter(pl.col("agency") == ALL)["violation_count"]
    )
    main(["serving", "init"])
    assert capsys.readouterr().out.count(": exists") == 3
    replace_takes_daily_items_out_of_the_feed(history)


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_daily_history_and_gold_sync_on_dynamodb(aws_home: str) -> None:
    history = run_days_history_and_syncs()
    store = open_store(load_settings())
    assert (
        store.client.describe_table(TableName=f"{aws_home}-Violations")["Table"]["BillingModeSummary"][
            "BillingMode"
        ]
        == "PAY_PER_REQUEST"
    )
    replace_takes_daily_items_out_of_the_feed(history)


def test_sync_holds_a_removal_until_its_gold_commit_is_visible(home: Path) -> None:
    store = open_store(load_settings())
    store.create_tables()
    catalog = current_lakehouse().catalog
    rows = real_rows(6)
    apply_to_silver_and_gold(rows, T1)
    assert sync_entities(store, catalog).written == gold_size()
    assert_serving_is_gold(store)
    lone = f"COMPANY#{rows['company_slug'][0]}"
    lone_items = ["METADATA", "SERIES#all", "SERIES#osha", "STATS#all", "STATS#osha"]
    assert [i["SK"] for i in store.query(ENTITIES, lone)] == lone_items
    tokens = len(search_items_of(store, lone))
    assert tokens >= 2

    # update_gold logs a removal just before its gold commit; a sync in between must not lose it.
    logged = pl.DataFrame({"entity_key": [lone, lone], "agency": ["osha", "all"], "removed_at": [T2, T2]})
    removals_table(catalog).append(to_arrow(logged, REMOVALS_ARROW))
    waiting = sync_entities(store, catalog)
    assert (waiting.written, waiting.deleted) == (0, 0)
    assert waiting.watermarks["removals"] < iso(T2)
    assert len(store.query(ENTITIES, lone)) == 5

    for table in (gold_table(catalog, "company"), year_table(catalog, "company")):
        table.delete(EqualTo("entity_key", lone))  # the gold commit lands
    done = sync_entities(store, catalog)
    assert done.deleted >= len(lone_items) + tokens  # and leaderboard entries rewritten without it
    assert done.watermarks["removals"] == iso(T2)
    assert store.query(ENTITIES, lone) == [] and search_items_of(store, lone) == []
    assert (sync_entities(store, catalog).written, sync_entities(store, catalog).deleted) == (0, 0)


def test_sync_replaces_the_search_items_of_a_renamed_entity(home: Path) -> None:
    store = open_store(load_settings())
    store.create_tables()
    catalog = current_lakehouse().catalog
    rows = real_rows(8)
    ids = rows["source_id"].to_list()
    acme = {"company_slug": "acme", "state": "TX", "city": "AUSTIN"}
    rows = edit(rows, ids[0], **acme, company_name="Acme Tools", penalty_amount=Decimal("10.00"))
    apply_to_silver_and_gold(rows, T1)
    sync_entities(store, catalog)
    assert {i["SK"] for i in search_items_of(store, "COMPANY#acme")} == {
        "tools#COMPANY#acme",
        "acme#COMPANY#acme",
        "acmetools#COMPANY#acme",
    }

    renamed = edit(rows, ids[0], company_name="Acme Widgets Inc")
    apply_to_silver_and_gold(renamed, T2)
    result = sync_entities(store, catalog)
    assert {i["SK"] for i in search_items_of(store, "COMPANY#acme")} == {
        "acme#COMPANY#acme",
        "widgets#COMPANY#acme",
        "acmewidgetsinc#COMPANY#acme",
    }
    assert result.deleted >= 2  # tools, acmetools
    assert store.get_item(ENTITIES, "COMPANY#acme", "METADATA")["aliases"] == ["Acme Widgets Inc"]
    assert_serving_is_gold(store)
    found = [r["key"] for r in search_entities(store, "acme widg")]
    assert found == ["COMPANY#acme"] and search_entities(store, "acme tools") == []
