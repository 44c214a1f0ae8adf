"""History reads (ventureos.history) on a real lake: real OSHA severe-injury and EPA ECHO rows through
daily-ingest, then entity pages compared with current silver, pages across a commit, a penalty change
shown as two versions, cursors, and the lookup layout of the files the writes produced."""

from __future__ import annotations

import io
import itertools
from datetime import date
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from flows.daily_ingest import daily_ingest
from flows.gold_sync import gold_sync
from ventureos import datafiles, lookup_layout
from ventureos.api.app import create_app
from ventureos.datafiles import encode_partitions
from ventureos.entities import slugify
from ventureos.history import (
    ECHO_FACILITY,
    MAX_LIMIT,
    OSHA_INSPECTION,
    PAGE_COLUMNS,
    decode_cursor,
    encode_cursor,
    entity_violations,
    violation_record,
)
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import VIOLATIONS_PARTITION, VIOLATIONS_POLARS, VIOLATIONS_SCHEMA
from ventureos.settings import load_settings

from .conftest import BUNDLED_SAMPLES
from .test_daily_ingest import sample_reports
from .test_gold import current_silver

API = "/api/v2"
DAY1, DAY2 = "2024-03-05", "2024-03-06"
ECHO_SAMPLE = BUNDLED_SAMPLES / "epa_echo" / "echo_exporter_sample.csv"
PJ_KEATING = "epa:echo:110001958935:20170824"
"""A real ECHO facility of the sample: last penalty $140,000 on 2017-08-24."""


def stage(day: str, reports: pl.DataFrame | None = None, echo: pl.DataFrame | None = None) -> None:
    storage = current_lakehouse().storage
    if reports is not None:
        storage.write_bytes(
            f"bronze/daily/osha/severe_injury/{day}/reports.csv", reports.write_csv().encode()
        )
    if echo is not None:
        storage.write_bytes(f"bronze/daily/epa/echo/{day}/echo_exporter.csv", echo.write_csv().encode())


def echo_rows() -> pl.DataFrame:
    return pl.read_csv(ECHO_SAMPLE, infer_schema=False)


def ingest(day: str) -> dict:
    report = daily_ingest(day)
    assert report["reconciled"]
    return report


def walk(level: str, key: str, limit: int, **filters: object) -> list[str]:
    """Ids of every page of an entity, in page order."""
    ids, cursor = [], None
    while True:
        page = entity_violations(current_lakehouse(), level, key, cursor=cursor, limit=limit, **filters)
        assert page.rows.height <= limit
        ids += page.rows["violation_id"].to_list()
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


ORDER = ["event_date", "violation_id"]


def expected(rows: pl.DataFrame) -> list[str]:
    """Ids in the page order: newest event date first, then id descending, no date last."""
    ordered = rows.sort(ORDER, descending=True, nulls_last=True)
    return ordered["violation_id"].to_list()


def city_slug(frame: pl.DataFrame) -> pl.Series:
    return slugify(pl.col("city")) + "-" + pl.col("state").str.to_lowercase()


@pytest.mark.usefixtures("prefect_harness", "home")
def test_entity_pages_are_exactly_current_silver_and_survive_a_commit_between_pages() -> None:
    # Every other report on day 1, the others on day 2: the new ones fall on both sides of a cursor.
    reports = sample_reports()
    stage(DAY1, reports.gather_every(2), echo_rows())
    ingest(DAY1)
    before = current_silver()
    texas = before.filter(pl.col("state") == "TX")
    assert texas.height > 60

    # Page 1 of Texas, then a daily-ingest commits new Texas reports on both sides of the cursor and
    # changes one already shown, then the remaining pages.
    first = entity_violations(current_lakehouse(), "state", "tx", limit=25)
    assert first.rows["violation_id"].to_list() == expected(texas)[:25]
    # The same through HTTP (the API process keeps its view of silver up to a second: whichever
    # snapshot a later page reads, no row is repeated or skipped).
    client = TestClient(create_app(load_settings()))
    http_first = client.get(f"{API}/state/TX/violations", params={"limit": 25}).json()
    assert [row["violation_id"] for row in http_first["violations"]] == expected(texas)[:25]
    shown = first.rows["violation_id"][3]
    changed = reports.filter(pl.col("ID") == shown.rsplit(":", 1)[1]).with_columns(
        Employer=pl.lit("Renamed Co")
    )
    stage(DAY2, pl.concat([reports.gather_every(2, offset=1), changed]))
    assert ingest(DAY2)["totals"]["updated"] == 1
    after = current_silver().filter(pl.col("state") == "TX")
    new = set(after["violation_id"]) - set(texas["violation_id"])
    cursor_date = first.rows["event_date"][-1]
    assert any(d > cursor_date for d in after.filter(pl.col("violation_id").is_in(new))["event_date"])
    assert any(d < cursor_date for d in after.filter(pl.col("violation_id").is_in(new))["event_date"])

    rest, cursor = [], first.next_cursor
    while cursor is not None:
        page = entity_violations(current_lakehouse(), "state", "tx", cursor=cursor, limit=25)
        rest += page.rows["violation_id"].to_list()
        cursor = page.next_cursor
    seen = first.rows["violation_id"].to_list() + rest
    assert len(seen) == len(set(seen))  # nothing repeated
    assert set(texas["violation_id"]) <= set(seen)  # nothing that was there throughout is skipped
    http_seen, cursor = [row["violation_id"] for row in http_first["violations"]], http_first["next_cursor"]
    while cursor is not None:
        page = client.get(f"{API}/state/TX/violations", params={"limit": 25, "cursor": cursor}).json()
        http_seen += [row["violation_id"] for row in page["violations"]]
        cursor = page["next_cursor"]
    assert len(http_seen) == len(set(http_seen)) and set(texas["violation_id"]) <= set(http_seen)
    # The later pages are exactly the rows after the cursor in the new snapshot, new ones included.
    order = expected(after)
    assert rest == order[order.index(seen[24]) + 1 :]

    # Every entity, every level: all pages = the entity's current silver rows, in page order.
    silver = current_silver()
    for state in silver["state"].drop_nulls().unique().to_list():
        assert walk("state", state.lower(), 20) == expected(silver.filter(pl.col("state") == state))
    keyed = silver.with_columns(city_key=city_slug(silver))
    for key in keyed["city_key"].drop_nulls().unique().sort().to_list()[:25]:
        assert walk("city", key, 3) == expected(keyed.filter(pl.col("city_key") == key))
    companies = silver.group_by("company_slug").len().sort("len", "company_slug", descending=True)
    assert companies["len"][0] >= 5
    for slug in companies["company_slug"].drop_nulls().head(10).to_list():
        assert walk("company", slug, 2) == expected(silver.filter(pl.col("company_slug") == slug))
    assert walk("company", "no-such-company", 10) == []

    # Agency and year narrow it.
    assert walk("state", "tx", 50, agency="epa") == expected(texas.filter(pl.col("agency") == "epa"))
    year_2015 = silver.filter((pl.col("state") == "TX") & (pl.col("event_date").dt.year() == 2015))
    assert walk("state", "tx", 50, year=2015) == expected(year_2015) != []
    assert walk("state", "tx", 50, year=1999) == []


@pytest.mark.usefixtures("prefect_harness", "home")
def test_a_changed_penalty_shows_both_versions_with_lineage_and_the_agency_page() -> None:
    echo = echo_rows()
    stage(DAY1, sample_reports().head(20), echo)
    ingest(DAY1)
    registry = pl.col("REGISTRY_ID") == "110001958935"
    stage(
        DAY2,
        echo=echo.with_columns(
            FAC_LAST_PENALTY_AMT=pl.when(registry).then(pl.lit("90000")).otherwise("FAC_LAST_PENALTY_AMT")
        ),
    )
    assert ingest(DAY2)["totals"]["updated"] == 1

    # The daily write and the commit that closed a version (pyiceberg's rewrite) kept the layout.
    assert_files_follow_the_layout()

    record = violation_record(current_lakehouse(), PJ_KEATING)
    assert record is not None and not record["deleted"]
    versions = record["versions"]
    assert [(v["change_type"], v["penalty_amount"], v["is_current"]) for v in versions] == [
        ("INSERT", Decimal("140000.00"), False),
        ("UPDATE", Decimal("90000.00"), True),
    ]
    assert (
        versions[0]["valid_to"] == versions[1]["valid_from"] is not None and versions[1]["valid_to"] is None
    )
    assert versions[0]["meta_source_uri"].endswith(f"/{DAY1}/echo_exporter.csv")
    shown = record["record"]
    assert (shown["company_name"], shown["state"], shown["event_date"], shown["penalty_amount"]) == (
        "PJ KEATING COMPANY", "MA", date(2017, 8, 24), Decimal("90000.00"),
    )  # fmt: skip
    assert shown["violation_details"]["FAC_COUNTY"] == "BRISTOL"
    assert shown["violation_details"]["FAC_TOTAL_PENALTIES"] == "140000"
    assert record["lineage"]["source_uri"].endswith(f"/{DAY2}/echo_exporter.csv")
    assert record["agency_url"] == ECHO_FACILITY.format("110001958935")

    # An OSHA severe-injury report links to the inspection it led to, when it names one.
    report = sample_reports().row(0, named=True)
    osha = violation_record(current_lakehouse(), f"osha:severe_injury:{report['ID']}")
    assert osha is not None and [v["change_type"] for v in osha["versions"]] == ["INSERT"]
    assert (
        osha["agency_url"]
        == OSHA_INSPECTION.format("1018519")
        == ("https://www.osha.gov/ords/imis/establishment.inspection_detail?id=1018519")
    )
    assert violation_record(current_lakehouse(), "osha:severe_injury:0") is None


@pytest.mark.usefixtures("prefect_harness", "home")
def test_pages_and_records_read_the_right_row_groups_of_files_of_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Row groups of 4 rows: each file holds many, a company's run spans several and an id range
    # crosses companies, as in a large lake's files.
    monkeypatch.setattr(datafiles, "ROW_GROUP_ROWS", 4)
    echo = echo_rows()
    stage(DAY1, sample_reports(), echo)
    ingest(DAY1)
    registry = pl.col("REGISTRY_ID") == "110001958935"
    stage(DAY2, echo=echo.with_columns(FAC_LAST_PENALTY_AMT=pl.when(registry).then(pl.lit("90000"))
                                       .otherwise("FAC_LAST_PENALTY_AMT")))  # fmt: skip
    assert ingest(DAY2)["totals"]["updated"] == 1
    table = current_lakehouse().violations()
    groups = [pq.read_metadata(t.file.file_path.removeprefix("file://")).num_row_groups
              for t in table.scan().plan_files()]  # fmt: skip
    assert max(groups) >= 10

    silver = current_silver()
    companies = silver.group_by("company_slug").len().filter(pl.col("len") >= 2)["company_slug"]
    assert companies.len() >= 8
    for slug in companies.drop_nulls().sort().to_list():
        assert walk("company", slug, 2) == expected(silver.filter(pl.col("company_slug") == slug))
        # Every column of the page, those it spells from the id included.
        page = entity_violations(current_lakehouse(), "company", slug, limit=MAX_LIMIT)
        rows = silver.filter(pl.col("company_slug") == slug)
        assert page.rows.equals(rows.sort(ORDER, descending=True, nulls_last=True).select(PAGE_COLUMNS))
    every = current_lakehouse().violations().scan().to_polars()
    for violation_id in [PJ_KEATING, *silver["violation_id"].sort().gather_every(7).to_list()]:
        record = violation_record(current_lakehouse(), violation_id)
        versions = every.filter(pl.col("violation_id") == violation_id)
        assert record is not None and len(record["versions"]) == versions.height
    record = violation_record(current_lakehouse(), PJ_KEATING)
    assert record is not None
    assert [v["penalty_amount"] for v in record["versions"]] == [Decimal("140000.00"), Decimal("90000.00")]


def test_cursors_round_trip_and_anything_else_is_a_value_error() -> None:
    assert decode_cursor(encode_cursor(date(2015, 3, 1), "osha:x:1")) == (date(2015, 3, 1), "osha:x:1")
    assert decode_cursor(encode_cursor(None, "epa:echo:1:undated")) == (None, "epa:echo:1:undated")
    for bad in ("", "not a cursor!", "bm90IGpzb24", "WzEsMl0", "WyJub3RhZGF0ZSIsImlkIl0", "W251bGwsIiJd"):
        with pytest.raises(ValueError, match="invalid cursor"):
            decode_cursor(bad)


def test_silver_files_are_cut_by_company_range_and_ordered_by_company_then_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lookup_layout, "FILE_ROWS", 10)
    companies = [f"company-{c}" for c in "qwertyuiopasdfgh"]
    given = {
        "violation_id": [f"osha:enforcement:{(i * 7919) % 1000:04d}" for i in range(96)],
        "agency": ["osha"] * 96,
        "dataset": ["enforcement"] * 96,
        "source_id": [str(i) for i in range(96)],
        "event_date": [date(2020 + i % 2, 1, 1) for i in range(96)],
        "company_slug": [companies[i % len(companies)] for i in range(96)],
    }
    rows = pl.DataFrame(
        {c: given.get(c, [None] * 96) for c in VIOLATIONS_POLARS.names()}, schema=VIOLATIONS_POLARS
    )
    files = encode_partitions(VIOLATIONS_SCHEMA, VIOLATIONS_PARTITION, rows, extra_keys=("dataset",))
    by_year: dict[int, list[pl.DataFrame]] = {}
    for file in files:
        frame = pl.from_arrow(pq.read_table(io.BytesIO(file.content)))
        assert frame.columns == list(VIOLATIONS_POLARS.names())  # the split key is not stored
        assert frame.height <= 10 and in_layout_order(frame)
        by_year.setdefault(frame["event_date"].dt.year()[0], []).append(frame)
    assert sorted(by_year) == [2020, 2021] and sum(f.height for fs in by_year.values() for f in fs) == 96
    for frames in by_year.values():
        # Each file holds a range of companies of its own (a company may straddle two neighbours).
        ranges = sorted((f["company_slug"].min(), f["company_slug"].max()) for f in frames)
        assert len(ranges) == 5 and all(
            upper <= lower for (_, upper), (lower, _) in itertools.pairwise(ranges)
        )


def in_layout_order(frame: pl.DataFrame) -> bool:
    """Rows ordered by company (no company last), then id: a company's rows are one run."""
    return frame.select(lookup_layout.CLUSTER_COLUMNS).equals(
        frame.select(lookup_layout.CLUSTER_COLUMNS).sort(lookup_layout.CLUSTER_COLUMNS, nulls_last=True)
    )


def assert_files_follow_the_layout() -> None:
    """Every data file of silver: ordered by company then id, row groups within the layout's size."""
    table = current_lakehouse().violations()
    assert table.properties["write.metadata.metrics.column.company_slug"] == "full"
    assert table.properties["write.parquet.row-group-limit"] == str(lookup_layout.ROW_GROUP_ROWS)
    tasks = list(table.scan().plan_files())
    assert tasks
    for task in tasks:
        with table.io.new_input(task.file.file_path).open() as stream:
            parquet = pq.ParquetFile(stream)
            keys = pl.from_arrow(parquet.read(columns=list(lookup_layout.CLUSTER_COLUMNS)))
            assert isinstance(keys, pl.DataFrame) and in_layout_order(keys), task.file.file_path
            sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
            assert max(sizes) <= lookup_layout.ROW_GROUP_ROWS


@pytest.mark.usefixtures("prefect_harness", "home")
def test_http_history_pages_records_csv_and_problems() -> None:
    stage(DAY1, sample_reports().head(120), echo_rows())
    ingest(DAY1)
    gold_sync()
    silver = current_silver()
    texas = expected(silver.filter(pl.col("state") == "TX"))
    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)

    first = client.get(f"{API}/state/TX/violations", params={"limit": 7})
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    body = first.json()
    assert body["key"] == "STATE#tx" and [v["violation_id"] for v in body["violations"]] == texas[:7]
    second = client.get(f"{API}/state/tx/violations", params={"limit": 7, "cursor": body["next_cursor"]})
    assert [v["violation_id"] for v in second.json()["violations"]] == texas[7:14]
    echo = client.get(f"{API}/company/pj-keating/violations").json()["violations"]
    assert [(v["violation_id"], v["penalty_amount"], v["event_date"]) for v in echo] == [
        (PJ_KEATING, "140000.00", "2017-08-24")
    ]
    assert client.get(f"{API}/company/pj-keating/violations", params={"agency": "osha"}).json() == {
        "key": "COMPANY#pj-keating", "violations": [], "next_cursor": None,
    }  # fmt: skip

    csv = client.get(f"{API}/state/TX/violations", params={"limit": 5, "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8"
    lines = csv.text.splitlines()
    assert lines[0].split(",")[:3] == ["violation_id", "agency", "dataset"] and len(lines) == 6
    assert [line.split(",")[0] for line in lines[1:]] == texas[:5]
    assert csv.headers["X-Next-Cursor"]

    record = client.get(f"{API}/violations/{PJ_KEATING}")
    assert record.status_code == 200
    answer = record.json()
    assert (
        answer["record"]["penalty_amount"] == "140000.00" and answer["record"]["event_date"] == "2017-08-24"
    )
    assert [(v["change_type"], v["penalty_amount"]) for v in answer["versions"]] == [("INSERT", "140000.00")]
    assert answer["agency_url"] == "https://echo.epa.gov/detailed-facility-report?fid=110001958935"
    assert answer["record"]["violation_details"]["FAC_COUNTY"] == "BRISTOL"

    problems = {
        f"{API}/violations/osha:severe_injury:0": (404, None),
        f"{API}/company/no-such-company-xyz/violations": (404, None),
        f"{API}/state/TX/violations?cursor=bm90LWEtY3Vyc29y": (400, "cursor"),
        f"{API}/state/TX/violations?agency=nasa": (400, "agency"),
        f"{API}/city/austin/violations": (400, "slug"),
        f"{API}/state/TX/violations?year=1800": (422, "year"),
        f"{API}/state/TX/violations?limit=0": (422, "limit"),
        f"{API}/violations/not-an-id": (422, "violation_id"),
    }
    for path, (status, parameter) in problems.items():
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json().get("parameter") == parameter, path
