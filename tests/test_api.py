"""The read API (/api/v2) over real HTTP (fastapi's TestClient), on both serving backends.

The populated store comes from the real pipeline, once per module and backend: the demo's real OSHA
severe-injury reports and EPA ECHO facilities through daily-ingest and gold-sync. Expected values are
computed here from current silver, independently of gold.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient

from ventureos.api import entities
from ventureos.api.app import create_app
from ventureos.api.common import AnswerCache, etag_of
from ventureos.demo import DEMO_DATE, stage_demo
from ventureos.gold import ALL, entity_rows
from ventureos.invariants import read_silver
from ventureos.lakehouse import Lakehouse
from ventureos.search import STOP_WORDS, fold
from ventureos.serving import ENTITIES, open_store
from ventureos.serving.projects import load_projects
from ventureos.settings import Settings, load_settings

API = "/api/v2"
PROBLEM = "application/problem+json"


@dataclass
class Served:
    client: TestClient
    settings: Settings
    silver: pl.DataFrame
    """Current silver rows after the pipeline ran."""
    run_id: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def served(
    request: pytest.FixtureRequest, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """daily-ingest of the demo's bronze files, gold-sync and the brand configs, then an app over them."""
    from flows.daily_ingest import daily_ingest
    from flows.gold_sync import gold_sync

    home = tmp_path_factory.mktemp(f"api-{request.param}")
    with pytest.MonkeyPatch.context() as env:
        for key in [k for k in os.environ if k.startswith("VENTUREOS_")]:
            env.delenv(key)
        env.setenv("VENTUREOS_HOME", str(home))
        if request.param == "dynamodb":
            endpoint = request.getfixturevalue("moto_endpoint")
            env.setenv("VENTUREOS_SERVING_BACKEND", "dynamodb")
            env.setenv("VENTUREOS_SERVING_PREFIX", f"api-{_free_port()}")
            env.setenv("VENTUREOS_AWS_ENDPOINT_URL", endpoint)
            env.setenv("VENTUREOS_AWS_ACCESS_KEY_ID", "testing")
            env.setenv("VENTUREOS_AWS_SECRET_ACCESS_KEY", "testing")
        settings = load_settings()
        stage_demo(settings)
        report = daily_ingest(DEMO_DATE)
        gold_sync()
        load_projects(open_store(settings))
        silver = read_silver(Lakehouse(settings)).filter("is_current")
        with TestClient(create_app(settings)) as client:
            yield Served(client, settings, silver, report["run_id"])


def money(value: Any) -> str:
    return str(Decimal(str(value or 0)).quantize(Decimal("0.01")))


def aggregates(silver: pl.DataFrame, level: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(entity key, agency incl. all) -> count, penalties, first/last date: plain Polars over silver."""
    rows = entity_rows(silver, level)
    both = pl.concat([rows, rows.with_columns(agency=pl.lit(ALL))])
    frame = both.group_by("entity_key", "agency").agg(
        count=pl.len(),
        penalties=pl.col("penalty_amount").sum(),
        first_date=pl.col("event_date").min().dt.to_string("%Y-%m-%d"),
        last_date=pl.col("event_date").max().dt.to_string("%Y-%m-%d"),
    )
    return {
        (r["entity_key"], r["agency"]): {
            "count": r["count"],
            "penalties": money(r["penalties"]),
            "first_date": r["first_date"],
            "last_date": r["last_date"],
        }
        for r in frame.iter_rows(named=True)
    }


def path_of(key: str) -> str:
    kind, _, rest = key.partition("#")
    return f"{API}/{kind.lower()}/{rest}"


def answered_totals(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (answer["key"], agency): {k: t[k] for k in ("count", "penalties", "first_date", "last_date")}
        for agency, t in answer["totals"].items()
    }


MOTO_SAMPLE = 8
"""moto answers a DynamoDB query in 0.3-1 s over these tables: the DynamoDB runs check this many
entities (evenly spaced), the SQLite runs every one."""


def sample(served: Served, keys: list[str]) -> list[str]:
    if served.settings.serving_backend != "dynamodb" or len(keys) <= MOTO_SAMPLE:
        return keys
    return keys[:: len(keys) // MOTO_SAMPLE][:MOTO_SAMPLE]


# Happy paths over the real pipeline's store, both backends ---------------------------------------------


@pytest.mark.parametrize("level", ["company", "city", "state"])
def test_every_entity_answer_equals_the_aggregate_of_current_silver(served: Served, level: str) -> None:
    expected = aggregates(served.silver, level)
    keys = sorted({key for key, _ in expected})
    assert len(keys) > (100 if level == "company" else 5)
    keys = sample(served, keys)
    expected = {(key, agency): value for (key, agency), value in expected.items() if key in keys}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for key in keys:
        response = served.client.get(path_of(key))
        assert response.status_code == 200, key
        answer = response.json()
        assert answer["key"] == key and answer["type"] == level
        assert answer["agencies"] == sorted(a for k, a in expected if k == key and a != ALL)
        found |= answered_totals(answer)
    assert found == expected


def test_company_answer_shape_profile_and_live_feed(served: Served) -> None:
    silver = served.silver.filter(pl.col("company_slug").is_not_null())
    # The company with the most violations; its feed is its latest 5 per agency, newest first.
    slug = silver.group_by("company_slug").len().sort("len", "company_slug", descending=[True, False])[0, 0]
    answer = served.client.get(f"{API}/company/{slug}").json()
    rows = silver.filter(pl.col("company_slug") == slug)
    assert answer["profile"]["name"] in set(rows["company_name"])
    for agency, feed in answer["live_feed"].items():
        latest = (
            rows.filter(pl.col("agency") == agency, pl.col("event_date").is_not_null())
            .sort("event_date", "violation_id", descending=True)
            .head(5)
        )
        assert [f["violation_id"] for f in feed] == latest["violation_id"].to_list()
        assert [f["date"] for f in feed] == latest["event_date"].dt.to_string("%Y-%m-%d").to_list()
        assert [f["penalty"] for f in feed] == [
            None if p is None else money(p) for p in latest["penalty_amount"]
        ]
    assert set(answer["live_feed"]) == set(rows.filter(pl.col("event_date").is_not_null())["agency"])
    assert "top_companies" not in answer


def test_money_is_text_with_two_decimals_and_never_a_float(served: Served) -> None:
    epa = served.silver.filter(pl.col("agency") == "epa", pl.col("penalty_amount") > 0)
    state, penalties = (
        epa.group_by("state").agg(pl.col("penalty_amount").sum()).sort("penalty_amount").row(-1)
    )
    response = served.client.get(f"{API}/state/{state}")

    def no_float(text: str) -> None:
        raise AssertionError(f"a float in the answer: {text}")

    answer = json.loads(response.text, parse_float=no_float)
    assert answer["key"] == f"STATE#{state.lower()}"
    assert answer["totals"]["epa"]["penalties"] == money(penalties)
    assert f'"penalties":"{money(penalties)}"' in response.text


def test_state_code_is_case_insensitive_and_city_slugs_end_in_the_state(served: Served) -> None:
    state = served.silver["state"].drop_nulls().mode()[0]
    upper = served.client.get(f"{API}/state/{state.upper()}")
    lower = served.client.get(f"{API}/state/{state.lower()}")
    assert upper.status_code == lower.status_code == 200
    assert upper.json() == lower.json()
    city = entity_rows(served.silver, "city")["entity_key"].mode().sort()[0]
    assert city.endswith(f"-{city.rsplit('-', 1)[1]}") and len(city.rsplit("-", 1)[1]) == 2
    assert served.client.get(path_of(city)).status_code == 200


def test_etag_and_304(served: Served) -> None:
    slug = served.silver["company_slug"].drop_nulls().sort()[0]
    first = served.client.get(f"{API}/company/{slug}")
    assert first.headers["cache-control"] == "public, max-age=300"
    etag = first.headers["etag"]
    assert etag.startswith('"') and len(etag) == 34
    again = served.client.get(f"{API}/company/{slug}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = served.client.get(f"{API}/company/{slug}", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.json() == first.json()


def test_company_names_explain_the_resolution(served: Served) -> None:
    rows = served.silver.filter(pl.col("company_slug").is_not_null())
    # A company whose rows carry two or more spellings.
    spellings = rows.group_by("company_slug").agg(pl.col("company_name").unique().sort())
    merged = spellings.filter(pl.col("company_name").list.len() > 1).sort("company_slug")
    slug, names = (merged if not merged.is_empty() else spellings.sort("company_slug")).row(0)
    answer = served.client.get(f"{API}/company/{slug}/names").json()
    assert answer["key"] == f"COMPANY#{slug}"
    assert {n["name"] for n in answer["names"]} <= set(names)
    assert answer["names"], answer
    for name in answer["names"]:
        assert name["slug"] == slug
        assert name["method"] in ("alias", "prefix", "fuzzy", "canonical")
        assert set(name) >= {"canonical", "matched", "parent", "confidence"}


def test_walmart_names_carry_the_curated_evidence(served: Served) -> None:
    walmart = served.silver.filter(pl.col("company_slug") == "walmart")
    assert walmart.height > 0  # the demo's severe-injury reports name Walmart stores
    answer = served.client.get(f"{API}/company/walmart/names").json()
    assert {"alias": "Walmart", "match": "prefix", "key": "WALMART"} in answer["curated"]


def ranking(silver: pl.DataFrame, level: str, by: str) -> list[tuple[str, int, str]]:
    """(key, count, penalty) of every entity of ``level`` ranked by ``by``, then the other measure, then key."""
    totals = [(k, v["count"], v["penalties"]) for (k, a), v in aggregates(silver, level).items() if a == ALL]
    if by == "penalty":
        return sorted(totals, key=lambda t: (-Decimal(t[2]), -t[1], t[0]))
    return sorted(totals, key=lambda t: (-t[1], -Decimal(t[2]), t[0]))


@pytest.mark.parametrize(
    ("level", "by"), [("company", "penalty"), ("company", "count"), ("state", "penalty")]
)
def test_leaderboards_rank_the_aggregates_of_current_silver(served: Served, level: str, by: str) -> None:
    answer = served.client.get(f"{API}/top", params={"level": level, "by": by, "limit": 25}).json()
    assert (answer["level"], answer["by"], answer["agency"], answer["filter"]) == (level, by, "all", "ALL")
    expected = ranking(served.silver, level, by)[:25]
    assert [(e["key"], e["count"], e["penalty"]) for e in answer["entries"]] == expected
    assert [e["rank"] for e in answer["entries"]] == list(range(1, len(expected) + 1))


def test_leaderboard_filters_state_and_agency(served: Served) -> None:
    state = served.silver["state"].drop_nulls().mode().sort()[0]
    osha = served.silver.filter(pl.col("agency") == "osha", pl.col("state") == state)
    answer = served.client.get(
        f"{API}/top", params={"level": "company", "by": "count", "agency": "osha", "state": state.lower()}
    ).json()
    assert answer["filter"] == f"STATE#{state}"
    expected = ranking(osha, "company", "count")[:10]
    assert [(e["key"], e["count"], e["penalty"]) for e in answer["entries"]] == expected
    latest = served.silver["event_date"].max().year
    since = served.client.get(f"{API}/top", params={"level": "state", "since": latest}).json()
    recent = served.silver.filter(pl.col("event_date").dt.year() >= latest)
    assert [(e["key"], e["count"], e["penalty"]) for e in since["entries"]] == ranking(
        recent, "state", "penalty"
    )[:10]


def test_leaderboard_as_csv(served: Served) -> None:
    params = {"level": "company", "by": "penalty", "limit": 50}
    response = served.client.get(f"{API}/top", params=params | {"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="top-company-penalty-all-all.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["rank", "key", "name", "count", "penalty", "state", "industry"]
    entries = served.client.get(f"{API}/top", params=params).json()["entries"]
    assert len(rows) == len(entries) + 1 == 51
    for row, entry in zip(rows[1:], entries, strict=True):
        assert row == [str(entry["rank"]), entry["key"], entry["name"], str(entry["count"]), entry["penalty"],
                       entry.get("state", ""), entry.get("industry", "")]  # fmt: skip


def test_search_finds_every_company_by_each_word_of_its_name(served: Served) -> None:
    companies = served.client.get(
        f"{API}/top", params={"level": "company", "by": "count", "limit": 30}
    ).json()
    chosen = set(sample(served, [e["key"] for e in companies["entries"]]))
    checked = 0
    for entry in (e for e in companies["entries"] if e["key"] in chosen):
        words = [w for w in fold(entry["name"]).split() if len(w) >= 2 and w not in STOP_WORDS]
        for word in words:
            found = served.client.get(f"{API}/search", params={"q": word, "limit": 100}).json()
            keys = [r["key"] for r in found["results"]]
            # A common word may match more than 100 entities; the answer is then the best 100.
            assert entry["key"] in keys or len(keys) == 100, (word, entry["name"])
            checked += 1
    assert checked > len(chosen)
    walmart = served.client.get(f"{API}/search", params={"q": "wal mart"}).json()["results"]
    assert walmart[0]["key"] == "COMPANY#walmart" and walmart[0]["type"] == "company"


def test_series_and_severity_add_up_to_the_totals(served: Served) -> None:
    states = served.client.get(f"{API}/top", params={"level": "state", "limit": 5}).json()["entries"]
    for entry in states[:2] if served.settings.serving_backend == "dynamodb" else states:
        answer = served.client.get(path_of(entry["key"])).json()
        rows = entity_rows(served.silver, "state").filter(pl.col("entity_key") == entry["key"])
        for agency, total in answer["totals"].items():
            part = rows if agency == ALL else rows.filter(pl.col("agency") == agency)
            dated = part.filter(pl.col("event_date").is_not_null())
            years = dated.group_by(year=pl.col("event_date").dt.year()).agg(
                count=pl.len(), penalty=pl.col("penalty_amount").sum()
            )
            assert answer["series"][agency] == [
                {"year": y, "count": c, "penalty": money(p)} for y, c, p in years.sort("year").iter_rows()
            ]
            assert sum(s["count"] for s in total["severity"].values()) == total["count"]
            assert sum(Decimal(s["penalty"]) for s in total["severity"].values()) == Decimal(
                total["penalties"]
            )
        companies = (
            entity_rows(rows, "company")
            .group_by("entity_key")
            .agg(count=pl.len(), penalty=pl.col("penalty_amount").sum())
        )
        expected = sorted(companies.iter_rows(), key=lambda r: (-r[1], -(r[2] or 0), r[0]))[:10]
        assert [(c["key"], c["count"], c["penalty"]) for c in answer["top_companies"]["count"]["all"]] == [
            (k, c, money(p)) for k, c, p in expected
        ]


def test_config_answers_the_brand_item(served: Served) -> None:
    answer = served.client.get(f"{API}/config/oshatrail")
    assert answer.status_code == 200
    assert answer.json()["agencies"] == ["osha"] and answer.json()["theme"]["primary"] == "#B3261E"
    missing = served.client.get(f"{API}/config/nobrand")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_status_per_dataset_with_the_last_run(served: Served) -> None:
    answer = served.client.get(f"{API}/status").json()
    datasets = {d["dataset"]: d for d in answer["datasets"]}
    for key, rows in served.silver.group_by("agency", "dataset"):
        status = datasets["/".join(key)]
        assert status["current_rows"] == rows.height
        assert status["last_event_date"] == rows["event_date"].max().isoformat()
        assert status["last_delivery"] == DEMO_DATE
        assert status["last_run"]["run_id"] == served.run_id
    # The demo's truncated report file is quarantined by that run.
    quarantine = pl.from_arrow(Lakehouse(served.settings).quarantine().scan().to_arrow())
    assert isinstance(quarantine, pl.DataFrame)
    osha = quarantine.filter(pl.col("dataset") == "severe_injury", pl.col("run_id") == served.run_id)
    assert datasets["osha/severe_injury"]["last_run"]["quarantined"] == osha.height >= 1
    assert served.client.get(f"{API}/status").headers["cache-control"] == "public, max-age=60"


def test_unknown_entities_answer_404_problems(served: Served) -> None:
    for path in ("/company/no-such-company-xyz", "/city/nowhere-zz", "/state/ZZ", "/company/no-such-x/names"):
        response = served.client.get(API + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["status"] == 404 and body["title"] == "Not Found" and body["instance"] == API + path
        assert set(body) == {"type", "title", "status", "detail", "instance"}


# Edges that need no pipeline: an empty store, fast ------------------------------------------------------


@pytest.fixture
def empty_app(home: Path) -> TestClient:
    settings = load_settings()
    open_store(settings).create_tables()
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_ping_openapi_and_docs(empty_app: TestClient) -> None:
    assert empty_app.get(f"{API}/ping").json() == {"ok": True}
    spec = empty_app.get(f"{API}/openapi.json").json()
    for path in ("/company/{slug}", "/city/{slug}", "/state/{code}", "/company/{slug}/names", "/top"):
        assert f"{API}{path}" in spec["paths"], path
    for path in ("/search", "/config/{brand}", "/status", "/ping"):
        assert f"{API}{path}" in spec["paths"], path
    assert empty_app.get(f"{API}/docs").status_code == 200


@pytest.mark.parametrize(
    ("path", "parameter", "status"),
    [
        ("/company/Walmart", "slug", 422),
        ("/company/-walmart", "slug", 422),
        ("/company/" + "a" * 101, "slug", 422),
        ("/company/wal_mart/names", "slug", 422),
        ("/city/austin%20tx", "slug", 422),
        ("/state/TEX", "code", 422),
        ("/state/T1", "code", 422),
        ("/top?limit=0", "limit", 422),
        ("/top?limit=101", "limit", 422),
        ("/top?level=county", "level", 422),
        ("/top?by=fines", "by", 422),
        ("/top?industry=abc", "industry", 422),
        ("/top?since=nineteen", "since", 422),
        ("/top?format=xml", "format", 422),
        ("/top?state=TX&since=2020", "state", 400),
        ("/top?level=state&state=TX", "state", 400),
        ("/top?level=city&industry=44", "industry", 400),
        ("/search", "q", 422),
        ("/search?q=" + "a" * 101, "q", 422),
        ("/search?q=walmart&limit=500", "limit", 422),
        ("/config/Bad_Brand", "brand", 422),
    ],
)
def test_bad_parameters_are_named_and_rejected_before_any_store_call(
    empty_app: TestClient, path: str, parameter: str, status: int
) -> None:
    response = empty_app.get(API + path)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["parameter"] == parameter and body["status"] == status
    assert body["detail"] and "Traceback" not in response.text
    assert empty_app.app.state.store is None  # type: ignore[attr-defined]


def test_unknown_path_and_method_are_problems(empty_app: TestClient) -> None:
    missing = empty_app.get(f"{API}/companies/walmart")
    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    wrong = empty_app.delete(f"{API}/company/walmart")
    assert (wrong.status_code, wrong.headers["content-type"]) == (405, PROBLEM)
    assert wrong.json()["title"] == "Method Not Allowed"


def test_a_broken_store_answers_500_without_a_trace(home: Path) -> None:
    settings = load_settings()
    settings.serving_db.write_bytes(b"this is not a database file " * 100)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    response = client.get(f"{API}/company/walmart")
    assert response.status_code == 500 and response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal error; the request was logged",
        "instance": f"{API}/company/walmart",
    }
    for leak in ("Traceback", "sqlite", "database", str(home)):
        assert leak not in response.text


def test_uninitialised_store_answers_503(home: Path) -> None:
    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)
    response = client.get(f"{API}/company/walmart")
    assert response.status_code == 503 and response.json()["detail"] == "the serving store is not initialised"
    assert str(home) not in response.text


def test_cors_only_for_configured_origins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTUREOS_API_CORS_ORIGINS", "https://oshatrail.com, https://transporttrail.com")
    client = TestClient(create_app())
    allowed = client.get(f"{API}/ping", headers={"Origin": "https://oshatrail.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://oshatrail.com"
    denied = client.get(f"{API}/ping", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    preflight = client.options(
        f"{API}/company/walmart",
        headers={"Origin": "https://transporttrail.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://transporttrail.com"
    refused = client.options(
        f"{API}/company/walmart",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # Without the setting no origin is allowed.
    monkeypatch.delenv("VENTUREOS_API_CORS_ORIGINS")
    plain = TestClient(create_app()).get(f"{API}/ping", headers={"Origin": "https://oshatrail.com"})
    assert "access-control-allow-origin" not in plain.headers


def test_config_from_the_projects_table(empty_app: TestClient) -> None:
    load_projects(open_store(load_settings()))
    answer = empty_app.get(f"{API}/config/transporttrail")
    assert answer.status_code == 200 and answer.json()["id"] == "transporttrail"
    assert "PK" not in answer.json() and answer.headers["etag"]


def test_entity_answer_reads_the_contract_items(empty_app: TestClient) -> None:
    """Severity, series and top companies as gold-sync writes them (contract items put directly)."""
    store = open_store(load_settings())
    key = "CITY#austin-tx"
    severity = {
        "willful": {"count": 1, "penalty": Decimal("70000")},
        "repeat": {"count": 0, "penalty": Decimal("0")},
        "serious": {"count": 2, "penalty": Decimal("12500.5")},
        "other": {"count": 1, "penalty": Decimal("0")},
    }
    stats = {"total_violations": 4, "total_penalties": Decimal("82500.50"), "severity": severity}
    stats |= {"first_violation_date": "2019-02-01", "last_violation_date": "2021-06-30"}
    top = [{"key": "COMPANY#acme", "name": "Acme", "count": 3, "penalty": Decimal("82500.5")}]
    store.put_items(
        ENTITIES,
        [
            {"PK": key, "SK": "METADATA", "entity_type": "city", "name": "AUSTIN, TX"},
            {"PK": key, "SK": "STATS#all", "agency": "all", **stats},
            {"PK": key, "SK": "STATS#osha", "agency": "osha", **stats},
            {
                "PK": key,
                "SK": "SERIES#all",
                "agency": "all",
                "years": [{"year": 2019, "count": 1, "penalty": 0}],
            },
            {"PK": key, "SK": "TOP#penalty#all", "companies": top},
            {"PK": key, "SK": "TOP#count#osha", "companies": top},
        ],
    )
    answer = empty_app.get(f"{API}/city/austin-tx").json()
    assert answer["totals"]["osha"] == {
        "count": 4,
        "penalties": "82500.50",
        "first_date": "2019-02-01",
        "last_date": "2021-06-30",
        "severity": {
            "willful": {"count": 1, "penalty": "70000.00"},
            "repeat": {"count": 0, "penalty": "0.00"},
            "serious": {"count": 2, "penalty": "12500.50"},
            "other": {"count": 1, "penalty": "0.00"},
        },
    }
    assert answer["series"] == {"all": [{"year": 2019, "count": 1, "penalty": "0.00"}]}
    acme = {"key": "COMPANY#acme", "slug": "acme", "name": "Acme", "count": 3, "penalty": "82500.50"}
    assert answer["top_companies"] == {"penalty": {"all": [acme]}, "count": {"osha": [acme]}}
    assert answer["live_feed"] == {} and answer["agencies"] == ["osha"]


def test_entity_answers_are_kept_only_while_the_store_is_unchanged(
    empty_app: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(load_settings())
    reads: list[str] = []
    read_answer = entities.entity_answer
    monkeypatch.setattr(entities, "entity_answer", lambda s, key: reads.append(key) or read_answer(s, key))

    def put(count: int) -> None:
        stats = {"agency": "all", "total_violations": count, "total_penalties": Decimal("10")}
        store.put_items(ENTITIES, [{"PK": "COMPANY#acme", "SK": "METADATA", "name": "Acme"},
                                   {"PK": "COMPANY#acme", "SK": "STATS#all", **stats}])  # fmt: skip

    def count() -> int:
        response = empty_app.get(f"{API}/company/acme")
        assert response.status_code == 200
        return int(response.json()["totals"]["all"]["count"])

    put(3)
    assert count() == 3 and count() == 3
    assert reads == ["COMPANY#acme"]  # the second answer was the kept one
    put(4)
    assert count() == 4 and len(reads) == 2
    assert empty_app.get(f"{API}/company/nobody").status_code == 404
    assert empty_app.get(f"{API}/company/nobody").status_code == 404  # a 404 is not kept


def test_answer_cache_keeps_answers_of_the_same_token_within_its_bytes() -> None:
    cache = AnswerCache(max_bytes=10)
    etag = cache.put("COMPANY#a", 7, b"12345")
    assert cache.get("COMPANY#a", 7) == (b"12345", etag)
    assert cache.get("COMPANY#a", 8) is None  # the store changed since
    assert cache.get("COMPANY#a", None) is None  # a store without a token: never kept
    cache.put("COMPANY#b", 7, b"123456")  # 11 bytes in all: the least recently used goes
    assert cache.get("COMPANY#a", 7) is None and cache.get("COMPANY#b", 7) is not None
    cache.put("COMPANY#b", 8, b"1234")  # a new read of b replaces it
    assert cache.get("COMPANY#b", 8) == (b"1234", etag_of(b"1234"))
    cache.put("COMPANY#c", 8, b"12345678901")  # larger than the cache: not kept
    assert cache.get("COMPANY#c", 8) is None and cache.get("COMPANY#b", 8) is None


# ventureos serve as a real process ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ventureos_serve_answers_ping_then_stops(home: Path, workers: int) -> None:
    port = _free_port()
    command = [
        sys.executable, "-c", "from ventureos.cli import main; main()",
        "serve", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{API}/ping", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                assert time.monotonic() < deadline, "ventureos serve did not answer within 60 s"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json() == {"ok": True}
    finally:
        process.terminate()
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal as its exit status.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert process.stdout is not None
    log = process.stdout.read().decode()
    # Each worker process served and stopped.
    assert log.count("Started server process") == workers, log
    assert log.count("Finished server process") == workers, log


# The API's IAM policy (static) ---------------------------------------------------------------------------

POLICY = Path(__file__).resolve().parents[1] / "deployments" / "iam" / "api-task-role.json"


def test_api_role_reads_serving_and_silver_and_writes_only_summaries() -> None:
    statements = json.loads(POLICY.read_text())["Statement"]

    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else value

    actions = {a for s in statements for a in listed(s["Action"])}
    assert {a.split(":")[0] for a in actions} == {"dynamodb", "s3", "s3tables", "glue"}
    assert (
        actions & {"s3:PutObject", "s3:DeleteObject", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
        == set()
    )
    assert not [
        a for a in actions if a.startswith(("sqs:", "dynamodb:Create", "glue:Update", "s3tables:Put"))
    ]
    (writes,) = [s for s in statements if "dynamodb:PutItem" in listed(s["Action"])]
    assert listed(writes["Action"]) == ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert writes["Resource"].endswith(":table/${SERVING_PREFIX}-Entities")
    # Only the summary items (web's ventureos/summaries.py keys) may be written.
    assert writes["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["VIOLATION#*", "SUMMARY_BUDGET#*"]}
    }
    (reads,) = [s for s in statements if "dynamodb:Query" in listed(s["Action"])]
    assert sorted(r.rsplit("-", 1)[1] for r in listed(reads["Resource"])) == [
        "Entities",
        "Projects",
        "Violations",
    ]
    tables = [s for s in statements if s["Sid"] == "ReadSilverTablesInTheTableBucket"]
    assert tables[0]["Condition"] == {"StringEquals": {"s3tables:namespace": "silver"}}
    glue = next(s for s in statements if s["Sid"] == "ReadSilverTablesInTheGlueCatalog")
    assert all(r.endswith((":catalog", "database/silver", "table/silver/*")) for r in glue["Resource"])
