"""EPA normalizers: the real ECHO exporter sample, ICIS FE&C conclusions joined to case facilities,
and a daily-ingest run of the ECHO sample."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.daily_ingest import daily_ingest
from normalizers import get_dataset
from normalizers.epa.echo import NO_PENALTY
from ventureos.batch import normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.lakehouse import current_lakehouse

from .conftest import BUNDLED_SAMPLES

ECHO_SAMPLE = BUNDLED_SAMPLES / "epa_echo" / "echo_exporter_sample.csv"


def echo_batch(text: bytes):
    return normalize_raw_batch(
        read_raw_batch([("bronze/daily/epa/echo/ECHO_EXPORTER.csv", text)]), "epa", "echo"
    )


def test_real_echo_rows_with_penalties_become_violations():
    batch = echo_batch(ECHO_SAMPLE.read_bytes())
    assert (batch.records_read, batch.valid.height, batch.rejects.height) == (500, 20, 480)
    columns = ["violation_id", "event_date", "company_name", "company_slug", "city", "state", "zip", "latitude",
               "longitude", "naics_code", "penalty_amount"]  # fmt: skip
    got = batch.valid.filter(
        pl.col("source_id").str.starts_with("110069438059")
        | pl.col("source_id").str.starts_with("110001958935")
        | pl.col("source_id").str.starts_with("110011005848")
        | pl.col("source_id").str.starts_with("110009565390")
    ).select(columns)
    expected = pl.DataFrame(
        [
            ("epa:echo:110011005848:19930430", date(1993, 4, 30), "RUSSELL ENTERPRISES INC", "russell-enterprises",
             None, "OR", None, 43.971523, -120.622627, None, Decimal("600.00")),
            ("epa:echo:110069438059:20161215", date(2016, 12, 15), "TRADER JOE'S COMPANY", "trader-joes",
             "GREENVILLE", "SC", "29607", 34.829849, -82.30714, None, Decimal("47461.00")),
            ("epa:echo:110009565390:20180202", date(2018, 2, 2), "TREND TECHNOLOGIES INC COLORADO DIV",
             "trend-technologies", "LONGMONT", "CO", "80501", 40.15874, -105.10882, "326199", Decimal("7107.00")),
            ("epa:echo:110001958935:20170824", date(2017, 8, 24), "PJ KEATING COMPANY", "pj-keating", "ACUSHNET",
             "MA", "02743", 41.67349, -70.90855, "324121", Decimal("140000.00")),
        ],
        schema=got.schema,
        orient="row",
    )  # fmt: skip
    assert_frame_equal(got, expected)


def test_facilities_without_penalty_are_quarantined_not_dropped():
    batch = echo_batch(ECHO_SAMPLE.read_bytes())
    assert batch.rejects["reason"].unique().to_list() == [NO_PENALTY]
    payload = json.loads(batch.rejects["raw_payload"][0])
    assert payload["FAC_NAME"] == "SMITHS RACING SERVICE" and payload["FAC_TOTAL_PENALTIES"] == "0"


def test_echo_penalty_fallbacks_and_rejects():
    header = "REGISTRY_ID,FAC_NAME,FAC_CITY,FAC_STATE,FAC_ZIP,FAC_TOTAL_PENALTIES,FAC_PENALTY_COUNT,FAC_DATE_LAST_PENALTY,FAC_LAST_PENALTY_AMT,FEC_LAST_CASE_DATE\n"
    rows = (
        '110000000001,ACME PLATING,Bangor,Maine,4401,"12,500",2,,,03/04/2019\n'
        ",NO ID WITH PENALTY,Austin,TX,78701,0,,05/06/2020,900,\n"
        "110000000003,NOTHING DUE,Austin,TX,78701,0,,,,\n"
    )
    batch = echo_batch((header + rows).encode())
    row = batch.valid.row(0, named=True)
    assert (row["source_id"], row["event_date"], row["penalty_amount"], row["zip"], row["state"], row["city"]) == (
        "110000000001:undated", date(2019, 3, 4), Decimal("12500.00"), "04401", "ME", "BANGOR",
    )  # fmt: skip
    assert "event_date_fallback" in row["quality_issues"]
    assert batch.rejects["reason"].to_list() == ["missing REGISTRY_ID", NO_PENALTY]


CONCLUSIONS = (
    "ACTIVITY_ID,CASE_NUMBER,ENF_CONCLUSION_ID,ENF_CONCLUSION_NMBR,ENF_CONCLUSION_ACTION_CODE,ENF_CONCLUSION_NAME,"
    "SETTLEMENT_LODGED_DATE,SETTLEMENT_ENTERED_DATE,SETTLEMENT_FY,PRIMARY_LAW,REGION_CODE,ACTIVITY_TYPE_CODE,"
    "FED_PENALTY_ASSESSED_AMT,STATE_LOCAL_PENALTY_AMT,SEP_AMT,COMPLIANCE_ACTION_COST,COST_RECOVERY_AWARDED_AMT\n"
    "3600212345,01-2017-2017,3601234567,1,CAFO,PJ KEATING COMPANY CAFO,,08/24/2017,2017,CAA,01,AFR,140000,,0,25000,\n"
    "3600299999,05-2008-2005,3602345678,1,JDC,US V. CITGO PETROLEUM,01/15/2008,,2008,CWA,05,JDC,100000,50000,,,\n"
    "3600200000,04-1998-0375,3603456789,1,AO,NO PENALTY ORDER,,07/17/1998,1998,RCRA,04,AFR,0,,,,\n"
)
FACILITIES = (
    "ACTIVITY_ID,CASE_NUMBER,REGISTRY_ID,FACILITY_NAME,LOCATION_ADDRESS,CITY,STATE_CODE,ZIP,PRIMARY_SIC_CODE,PRIMARY_NAICS_CODE\n"
    "3600212345,01-2017-2017,110001958935,PJ KEATING COMPANY,998 RESERVOIR AVE,ACUSHNET,MA,2743,2951,324121\n"
    "3600299999,05-2008-2005,110033193933,CITGO PETROLEUM CORP,2500 E CHICAGO AVE,EAST CHICAGO,IN,46312,2911,324110\n"
    "3600299999,05-2008-2005,110000000000,CITGO PETROLEUM CORP LEMONT,135TH ST,LEMONT,IL,60439-3659,2911,324110\n"
)


def test_icis_conclusions_join_their_case_facilities():
    dataset = get_dataset("epa", "icis_fec")
    files = [
        ("bronze/daily/epa/icis_fec/2024-03-05/CASE_ENFORCEMENT_CONCLUSIONS.csv", CONCLUSIONS.encode()),
        ("bronze/daily/epa/icis_fec/2024-03-05/CASE_FACILITIES.csv", FACILITIES.encode()),
    ]
    raw = read_raw_batch(files, dataset.lookup_of)
    assert raw.frame.height == 3 and raw.lookups["facilities"].height == 3
    batch = normalize_raw_batch(raw, "epa", "icis_fec")
    got = batch.valid.select(
        "violation_id", "event_date", "company_name", "company_slug", "city", "state", "zip", "naics_code",
        "violation_type", "penalty_amount", "description",
    )  # fmt: skip
    expected = pl.DataFrame(
        [
            ("epa:icis_fec:3601234567", date(2017, 8, 24), "PJ KEATING COMPANY", "pj-keating", "ACUSHNET", "MA",
             "02743", "324121", "caa_enforcement_case", Decimal("140000.00"), "PJ KEATING COMPANY CAFO"),
            ("epa:icis_fec:3602345678", date(2008, 1, 15), "CITGO PETROLEUM CORP LEMONT", "citgo-petroleum",
             "LEMONT", "IL", "60439", "324110", "cwa_enforcement_case", Decimal("150000.00"),
             "US V. CITGO PETROLEUM"),
            ("epa:icis_fec:3603456789", date(1998, 7, 17), None, None, None, None, None, None,
             "rcra_enforcement_case", None, "NO PENALTY ORDER"),
        ],
        schema=got.schema,
        orient="row",
    )  # fmt: skip
    assert_frame_equal(got, expected)
    citgo = batch.valid.row(1, named=True)
    details = json.loads(citgo["violation_details"])
    assert details["FACILITY_COUNT"] == 2 and details["CASE_REGISTRY_IDS"] == "110000000000 110033193933"
    assert "event_date_fallback" in citgo["quality_issues"]
    assert "missing_facility" in batch.valid.row(2, named=True)["quality_issues"]


@pytest.mark.usefixtures("prefect_harness", "home")
def test_daily_ingest_loads_the_real_echo_sample():
    lakehouse = current_lakehouse()
    day = "2024-03-05"
    lakehouse.storage.write_bytes(
        f"bronze/daily/epa/echo/{day}/echo_exporter_sample.csv", ECHO_SAMPLE.read_bytes()
    )
    report = daily_ingest(day, agency="epa", dataset="echo")
    assert report["reconciled"]
    assert (report["totals"]["read"], report["totals"]["inserted"], report["totals"]["quarantined"]) == (
        500,
        20,
        480,
    )
    silver = pl.from_arrow(lakehouse.violations().scan().to_arrow())
    assert silver.height == 20 and silver["penalty_amount"].sum() == Decimal("380765.00")
    quarantine = pl.from_arrow(lakehouse.quarantine().scan().to_arrow())
    assert quarantine.filter(pl.col("reason") == NO_PENALTY).height == 480


def test_an_unreadable_penalty_is_a_flagged_violation_not_no_penalty():
    """-5000, 1e30 and NaN were quarantined as "no penalty: not a violation"."""
    header = "REGISTRY_ID,FAC_NAME,FAC_STATE,FAC_TOTAL_PENALTIES,FAC_DATE_LAST_PENALTY,FAC_LAST_PENALTY_AMT\n"
    rows = (
        "110000000001,NEGATIVE CO,TX,0,05/06/2020,-5000\n"
        "110000000002,HUGE CO,TX,1e30,05/06/2020,\n"
        "110000000003,NAN CO,TX,0,05/06/2020,NaN\n"
        "110000000004,YEAR ZERO CO,TX,900,1/1/0000,900\n"
        "110000000005,NOTHING DUE,TX,0,,\n"
    )
    batch = echo_batch((header + rows).encode())
    assert (batch.records_read, batch.valid.height, batch.rejects.height) == (5, 4, 1)
    assert batch.rejects["reason"].to_list() == [NO_PENALTY]
    got = batch.valid.select(
        "source_id", "event_date", "penalty_amount", pl.col("quality_issues").list.set_intersection(
            ["invalid_penalty", "invalid_date", "missing_event_date"]
        ).list.sort()
    )  # fmt: skip
    assert got.rows() == [
        ("110000000001:20200506", date(2020, 5, 6), None, ["invalid_penalty"]),
        ("110000000002:20200506", date(2020, 5, 6), None, ["invalid_penalty"]),
        ("110000000003:20200506", date(2020, 5, 6), None, ["invalid_penalty"]),
        ("110000000004:undated", None, Decimal("900.00"), ["invalid_date", "missing_event_date"]),
    ]
    details = [json.loads(d) for d in batch.valid["violation_details"]]
    assert [details[0]["FAC_LAST_PENALTY_AMT"], details[1]["FAC_TOTAL_PENALTIES"], details[3]["FAC_DATE_LAST_PENALTY"]] == [
        "-5000", "1e30", "1/1/0000",
    ]  # fmt: skip


def test_a_float_registry_id_is_the_same_facility():
    header = "REGISTRY_ID,FAC_NAME,FAC_STATE,FAC_DATE_LAST_PENALTY,FAC_LAST_PENALTY_AMT\n"
    batch = echo_batch((header + "110000000001.0,ACME,TX,05/06/2020,900\n").encode())
    assert batch.valid["violation_id"].to_list() == ["epa:echo:110000000001:20200506"]


def test_an_icis_conclusion_with_an_impossible_penalty_or_date_is_flagged():
    header = CONCLUSIONS.split("\n", 1)[0]
    rows = (
        "3600212345,01-2017-2017,3601234567.0,1,CAFO,NEGATIVE,,1/1/0000,2017,CAA,01,AFR,-140000,5000,,,\n"
        "3600299999,05-2008-2005,3602345678,1,JDC,TOO BIG,01/15/2008,,2008,CWA,05,JDC,2e13,,,,\n"
    )
    batch = normalize_raw_batch(read_raw_batch([("c.csv", f"{header}\n{rows}".encode())]), "epa", "icis_fec")
    assert (batch.records_read, batch.valid.height, batch.rejects.height) == (2, 2, 0)
    flags = pl.col("quality_issues").list.set_intersection(["invalid_penalty", "invalid_date"]).list.sort()
    assert batch.valid.select("violation_id", "event_date", "penalty_amount", flags).rows() == [
        ("epa:icis_fec:3601234567", None, Decimal("5000.00"), ["invalid_date", "invalid_penalty"]),
        ("epa:icis_fec:3602345678", date(2008, 1, 15), None, ["invalid_penalty"]),
    ]
    details = json.loads(batch.valid["violation_details"][0])
    assert (details["SETTLEMENT_ENTERED_DATE"], details["FED_PENALTY_ASSESSED_AMT"]) == (
        "1/1/0000",
        "-140000",
    )
