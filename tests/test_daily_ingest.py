"""daily-ingest end to end: real sample rows as bronze JSON/CSV, embedded and on S3 (moto)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from flows.daily_ingest import daily_ingest
from ventureos.lakehouse import current_lakehouse
from ventureos.storage import Storage

from .conftest import BUNDLED_SAMPLES

DAY = "2024-03-05"
PREFIX = f"bronze/daily/osha/severe_injury/{DAY}"


def sample_reports() -> pl.DataFrame:
    return pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)


def stage(storage: Storage, reports: pl.DataFrame, json_rows: int, malformed: dict[str, bytes]) -> None:
    """``json_rows`` reports as one JSON file each, the rest as one cp1252 CSV, plus malformed files."""
    for record in reports.head(json_rows).to_dicts():
        storage.write_bytes(f"{PREFIX}/{record['ID']}.json", json.dumps(record).encode())
    csv = reports.slice(json_rows).write_csv()
    storage.write_bytes(f"{PREFIX}/rest.csv", csv.encode("cp1252", errors="replace"))
    for name, data in malformed.items():
        storage.write_bytes(f"{PREFIX}/{name}", data)


MALFORMED = {
    "broken.json": b'{"ID": "1", "EventDate": ',
    "no-id.json": b'{"EventDate": "1/5/2015", "Employer": "Nobody Inc"}',
    "bad-date.json": b'{"ID": "2099000001", "EventDate": "31/31/2015", "Employer": "Acme"}',
    "garbage.csv": bytes(range(256)) * 8,
    "empty.json": b"",
}


def silver_rows() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().violations().scan().to_arrow())


def quarantine_rows() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow())


def run_and_check(storage: Storage) -> None:
    reports = sample_reports().head(120)
    stage(storage, reports, json_rows=20, malformed=MALFORMED)

    first = daily_ingest(DAY)
    assert first["totals"]["read"] == 120 + len(MALFORMED)  # each malformed file is one record
    assert first["totals"]["inserted"] == 120
    assert first["totals"]["quarantined"] == len(MALFORMED)
    assert first["reconciled"]
    steps = first["timings"]
    assert list(steps) == ["read_and_normalize", "silver", "gold", "live_feed", "total"]
    assert 0 < sum(v for k, v in steps.items() if k != "total") <= steps["total"]

    silver = silver_rows()
    assert silver.height == 120
    assert silver["violation_id"].n_unique() == 120
    assert set(silver["source_id"]) == set(reports["ID"])
    assert silver["is_current"].all() and (silver["change_type"] == "INSERT").all()

    reasons = dict(quarantine_rows().select("source_uri", "reason").iter_rows())
    by_name = {uri.rsplit("/", 1)[1]: reason for uri, reason in reasons.items()}
    assert by_name["broken.json"].startswith("unparseable JSON")
    assert by_name["no-id.json"] == "missing ID"
    assert by_name["bad-date.json"] == "unparseable event date"
    assert by_name["garbage.csv"].startswith("not a text file")
    assert by_name["empty.json"] == "empty file"

    buffers = storage.list(f"silver/violations/buffer/ingest_date={DAY}")
    assert len(buffers) == 1 and buffers[0].endswith(".parquet")
    buffered = storage.read_parquet(buffers[0])
    assert sorted(buffered["violation_id"]) == sorted(silver["violation_id"])

    second = daily_ingest(DAY)
    assert second["totals"]["inserted"] == 0 and second["totals"]["unchanged"] == 120
    assert silver_rows().height == 120
    assert quarantine_rows().height == len(MALFORMED)
    assert storage.list(f"silver/violations/buffer/ingest_date={DAY}") == buffers


@pytest.mark.usefixtures("prefect_harness")
def test_daily_ingest_embedded(home: Path) -> None:
    run_and_check(current_lakehouse().storage)
    otisville = silver_rows().filter(pl.col("source_id") == "2015010015").row(0, named=True)
    assert otisville["state"] == "NY" and otisville["zip"] == "10963"
    assert otisville["event_date"].isoformat() == "2015-01-01"
    # A date with no files (a typo, a skipped day) reconciles at zero but says so.
    empty = daily_ingest("2015-10-30")
    assert empty["reconciled"] and empty["totals"]["read"] == 0
    assert empty["warnings"] == [
        "no bronze files under bronze/daily/*/*/2015-10-30",
        "expected dataset osha/enforcement missing: no files under bronze/daily/osha/enforcement/2015-10-30",
    ]


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_daily_ingest_on_s3(aws_home: str) -> None:
    storage = current_lakehouse().storage
    assert storage.root == f"s3://{aws_home}"
    run_and_check(storage)
    data_files = current_lakehouse().violations().inspect.files()["file_path"].to_pylist()
    assert data_files and all(p.startswith(f"s3://{aws_home}/warehouse/") for p in data_files)


@pytest.mark.usefixtures("prefect_harness")
def test_hostile_files_load_their_good_records_and_quarantine_the_rest(home: Path) -> None:
    """Year-0 dates (which failed pyiceberg's statistics, so the whole day), impossible penalties,
    CR-only line ends, JSON saved as .csv, NUL bytes and lineage-named fields: one run commits."""
    storage = current_lakehouse().storage
    reports = sample_reports().select("ID", "EventDate", "Employer", "City", "State").head(4)
    mac = reports.with_columns(
        pl.when(pl.int_range(4) == 3).then(pl.lit("1/1/0000")).otherwise("EventDate").alias("EventDate")
    )
    storage.write_bytes(f"{PREFIX}/mac.csv", mac.write_csv().replace("\n", "\r").encode())
    storage.write_bytes(f"{PREFIX}/doc.csv", json.dumps(reports.row(0, named=True)).encode())
    nul = (
        sample_reports()
        .select("ID", "EventDate", "Employer")
        .slice(4, 2)
        .write_csv()
        .replace("\n2", "\n\x002", 1)
    )
    storage.write_bytes(f"{PREFIX}/nul.csv", nul.encode())
    storage.write_bytes(
        f"{PREFIX}/lineage.json", b'{"ID": "77", "EventDate": "1/2/2015", "__ventureos_row": "0"}'
    )
    faa = (
        "CASE NUMBER,NAME,ENTITY TYPE,DATE KNOWN,ACTION,SANCTION AMOUNT,SANCTION,CASE TYPE,CLOSED DATE\n"
        "2015CE100001,FEDEX,A/C OR COMM OPER,1/1/0000,ORD ASSESS CIVIL PENALTY,-5000,DOLLARS,OTHER,3/1/2016\n"
        "2015CE100002,FEDEX,A/C OR COMM OPER,0000-01-01,ORD ASSESS CIVIL PENALTY,1e30,DOLLARS,OTHER,\n"
        "2015CE100003,FEDEX,A/C OR COMM OPER,12/31/9999,ORD ASSESS CIVIL PENALTY,2500,DOLLARS,OTHER,\n"
    )
    storage.write_bytes(f"bronze/daily/faa/enforcement/{DAY}/faa.csv", faa.encode())
    echo = (
        "REGISTRY_ID,FAC_NAME,FAC_STATE,FAC_TOTAL_PENALTIES,FAC_DATE_LAST_PENALTY,FAC_LAST_PENALTY_AMT\n"
        "110000000001,NEGATIVE CO,TX,0,05/06/2020,-5000\n110000000002,NONE CO,TX,0,,\n"
    )
    storage.write_bytes(f"bronze/daily/epa/echo/{DAY}/ECHO_EXPORTER.csv", echo.encode())

    report = daily_ingest(DAY)
    # Severe injury: 3 + 1 rows load; year 0, the JSON document, the NUL row and the lineage field are
    # rejects. FAA: 3 violations. ECHO: 1 violation, 1 facility without a penalty.
    assert report["reconciled"]
    assert (report["totals"]["read"], report["totals"]["inserted"], report["totals"]["quarantined"]) == (
        13,
        8,
        5,
    )
    silver = silver_rows()
    faa_rows = silver.filter(pl.col("agency") == "faa").sort("source_id")
    assert faa_rows.select("event_date", "penalty_amount").rows() == [
        (date(2016, 3, 1), None),
        (None, None),
        (None, Decimal("2500.00")),
    ]
    assert [issues[:3] for issues in faa_rows["quality_issues"].to_list()] == [
        ["event_date_fallback", "invalid_penalty", "invalid_date"],
        ["missing_event_date", "invalid_penalty", "invalid_date"],
        ["missing_event_date", "future_date", "unknown_state"],
    ]
    assert silver.filter(pl.col("agency") == "epa")["quality_issues"].to_list()[0][0] == "invalid_penalty"
    reasons = {
        uri.rsplit("/", 1)[1]: reason
        for uri, reason in quarantine_rows().select("source_uri", "reason").iter_rows()
    }
    assert reasons == {
        "mac.csv": "event date before 1900-01-01",
        "doc.csv": "not CSV: the file holds a JSON document (a .json file is read as JSON)",
        "nul.csv#line=2": "CSV row has a NUL byte",
        "lineage.json": "source field __ventureos_row has the name of a lineage column",
        "ECHO_EXPORTER.csv": "no penalty: not a violation",
    }
