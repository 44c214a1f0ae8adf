"""FAA enforcement normalizer on rows in the real report shape (shared/samples/faa/README.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from normalizers import normalize
from normalizers.common import read_date
from normalizers.faa.enforcement import repair_words
from ventureos.batch import normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.schemas import ROW, SOURCE_URI

HEADER = (
    "CASE NUMBER,NAME,ENTITY TYPE,DATE KNOWN,ACTION,SANCTION AMOUNT,SANCTION,CASE TYPE,CLOSED DATE,MASTER #\n"
)
ROWS = (
    "2006WP700166,MESA AIRLINES INC,A/C or COMM OPER,2006-06-19,ORD ASSESS CP HMT,55000.0,DOLLARS,HAZ MAT,2010-01-05,\n"
    "2009NM070066,SCENIC AVIATION INC,A/C or COMM OPER,2009-03-23,CONSENT ORDER,10000,SANCTION WAIVED,,,\n"
    '2013AL030112,"LEPPING, KURT M",A/C or COMM OPER,,ORD ASSESS CIVIL PENALTY,5000,DOLLARS,OTHER,2015-08-12,\n'
    "2012EA700034,ROYAL AIR MAROC,FOREIGN AIR CA,,,,,,,\n"
    '2011SW050012,"AMERICAN EAGLE AIRLINES, INC",A/C OR COMM OPER,6/7/2011,ORD ASSESS CVIIL PENALTY,"$25,000",DOLLARS,MAINTENANCE,3/1/2012,M-17\n'
    "2011SW050012,AMERICAN EAGLE AIRLINES INC,A/C OR COMM OPER,6/7/2011,CERTIFICATE SUSPENSION,30,DAYS,MAINTENANCE,,\n"
    "2011SW050012,AMERICAN EAGLE AIRLINES INC,A/C OR COMM OPER,6/7/2011,CERTIFICATE REVOCATIO N,,REVOCATIO N OTHER,RECORDS/RPT S,,\n"
    '2010GL990001,"SMITH, JOHN R",AIRMAN,2010-02-01,CERTIFICATE REVOCATION,,CONSOLIDATE D CASE,TRNG-FLT CREW,,\n'
)


def _batch(text: str, name: str = "faa-2011q3.csv"):
    return normalize_raw_batch(
        read_raw_batch([(f"s3://lake/bronze/daily/faa/enforcement/{name}", text.encode())]),
        "faa",
        "enforcement",
    )


def test_rows_normalize_to_violations_with_penalties_only_in_dollars():
    batch = _batch(HEADER + ROWS)
    assert batch.records_read == 8
    got = batch.valid.select(
        "violation_id", "event_date", "company_name", "company_slug", "violation_type", "penalty_amount", "description"
    )  # fmt: skip
    expected = pl.DataFrame(
        [
            ("faa:enforcement:2006WP700166:ord-assess-cp-hmt:dollars", date(2006, 6, 19), "MESA AIRLINES INC",
             "mesa-air", "hazmat_civil_penalty", Decimal("55000.00"), "ORD ASSESS CP HMT; HAZ MAT; DOLLARS"),
            ("faa:enforcement:2009NM070066:consent-order:sanction-waived", date(2009, 3, 23), "SCENIC AVIATION INC",
             "scenic-aviation", "consent_order", None, "CONSENT ORDER; SANCTION WAIVED"),
            ("faa:enforcement:2013AL030112:ord-assess-civil-penalty:dollars", date(2015, 8, 12), "LEPPING, KURT M",
             None, "civil_penalty", Decimal("5000.00"), "ORD ASSESS CIVIL PENALTY; OTHER; DOLLARS"),
            ("faa:enforcement:2011SW050012:ord-assess-civil-penalty:dollars", date(2011, 6, 7),
             "AMERICAN EAGLE AIRLINES, INC", "american-eagle-airlines", "civil_penalty", Decimal("25000.00"),
             "ORD ASSESS CIVIL PENALTY; MAINTENANCE; DOLLARS"),
            ("faa:enforcement:2011SW050012:certificate-suspension:days", date(2011, 6, 7),
             "AMERICAN EAGLE AIRLINES INC", "american-eagle-airlines", "certificate_suspension", None,
             "CERTIFICATE SUSPENSION; MAINTENANCE; DAYS"),
            ("faa:enforcement:2011SW050012:certificate-revocation:revocation-other", date(2011, 6, 7),
             "AMERICAN EAGLE AIRLINES INC", "american-eagle-airlines", "certificate_revocation", None,
             "CERTIFICATE REVOCATION; RECORDS/RPTS; REVOCATION OTHER"),
            ("faa:enforcement:2010GL990001:certificate-revocation:consolidated-case", date(2010, 2, 1),
             "SMITH, JOHN R", None, "certificate_revocation", None,
             "CERTIFICATE REVOCATION; TRNG-FLT CREW; CONSOLIDATED CASE"),
        ],
        schema=got.schema,
        orient="row",
    )  # fmt: skip
    assert_frame_equal(got, expected)
    assert batch.valid["violation_id"].is_unique().all()


def test_nearly_empty_rows_are_quarantined_with_a_reason():
    batch = _batch(HEADER + ROWS)
    assert batch.rejects.select("reason").to_series().to_list() == [
        "nearly empty row: no action, sanction, case type or dates"
    ]
    assert json.loads(batch.rejects["raw_payload"][0])["NAME"] == "ROYAL AIR MAROC"


def test_individuals_flagged_and_details_keep_source_fields():
    valid = _batch(HEADER + ROWS).valid
    lepping = valid.filter(pl.col("company_name") == "LEPPING, KURT M").row(0, named=True)
    assert "individual" in lepping["quality_issues"] and "event_date_fallback" in lepping["quality_issues"]
    details = json.loads(lepping["violation_details"])
    assert details["SANCTION AMOUNT"] == "5000" and "MASTER #" not in details  # blank fields are left out
    assert details["entity"]["method"] == "individual"
    airman = valid.filter(pl.col("company_name") == "SMITH, JOHN R").row(0, named=True)
    assert airman["company_slug"] is None and "individual" in airman["quality_issues"]


def test_ids_are_deterministic_and_exact_repeats_get_an_ordinal():
    row = "2011SW050012,AMERICAN EAGLE AIRLINES INC,A/C OR COMM OPER,6/7/2011,CONSENT ORDER,100,DOLLARS,OTHER,,\n"
    first = _batch(HEADER + row + row).valid["violation_id"].to_list()
    assert first == [
        "faa:enforcement:2011SW050012:consent-order:dollars",
        "faa:enforcement:2011SW050012:consent-order:dollars:2",
    ]
    assert _batch(HEADER + row + row, "again.csv").valid["violation_id"].to_list() == first


def test_repair_words_rejoins_pdf_splits_and_fixes_typos():
    values = pl.Series(
        [
            "CONSOLIDA TED CASE",
            "INDEFINIT E DURATION",
            "RECORDS/RPT S",
            "CERTIFICATE SHCOOL",
            "APPROVD RPR STN",
            None,
        ]
    )
    assert pl.select(repair_words(pl.lit(values))).to_series().to_list() == [
        "CONSOLIDATED CASE", "INDEFINITE DURATION", "RECORDS/RPTS", "CERTIFICATE SCHOOL", "APPROVED REPAIR STA", None,
    ]  # fmt: skip


def test_missing_columns_do_not_fail():
    raw = pl.DataFrame({"CASE NUMBER": ["2020XX1"], "NAME": ["AVANTAIR INC"], "ACTION": ["CIVIL PENALTY"]})
    out = normalize(
        raw.with_row_index(ROW).with_columns(pl.lit("x.json").alias(SOURCE_URI)), "faa", "enforcement"
    )
    assert out.select("company_slug", "violation_type", "event_date", "reject_reason").row(0) == (
        "avantair", "civil_penalty", None, None,
    )  # fmt: skip


def test_dates_with_two_digit_years_and_timestamps():
    values = pl.Series(["19-JUN-06", "2006-06-19 00:00:00", "6/19/2006 0:00", "6/19/06", " 1/2/99 ", None])
    assert pl.select(read_date(pl.lit(values))).to_series().to_list() == [
        date(2006, 6, 19), date(2006, 6, 19), date(2006, 6, 19), date(2006, 6, 19), date(1999, 1, 2), None,
    ]  # fmt: skip


def test_column_names_in_other_case_or_separators_are_recognized():
    raw = pl.DataFrame(
        {"Case_Number": ["2015CE100001"], "Name": ["FEDEX"], "Action": ["CIVIL PENALTY"], "Sanction Amount": ["$1,500"],
         "sanction": ["Dollars"], "Date Known": ["1/2/2015"]}
    )  # fmt: skip
    out = normalize(
        raw.with_row_index(ROW).with_columns(pl.lit("x.csv").alias(SOURCE_URI)), "faa", "enforcement"
    )
    assert out.select("source_id", "company_slug", "penalty_amount", "event_date").row(0) == (
        "2015CE100001:civil-penalty:dollars", "fedex", Decimal("1500.00"), date(2015, 1, 2),
    )  # fmt: skip


def test_an_unreadable_dollar_amount_is_flagged_not_fatal():
    """A ``NaN`` amount once failed the whole batch's cast to decimal; days are not money at all."""
    rows = (
        "2015CE100001,FEDEX,A/C OR COMM OPER,05-OCT-2015,ORD ASSESS CIVIL PENALTY,NaN,DOLLARS,OTHER,,\n"
        "2015CE100002,FEDEX,A/C OR COMM OPER,05-OCT-2015,CERTIFICATE SUSPENSION,thirty,DAYS,OTHER,,\n"
    )
    got = _batch(HEADER + rows).valid.select(
        "event_date", "penalty_amount", pl.col("quality_issues").list.contains("invalid_penalty")
    )
    assert got.rows() == [(date(2015, 10, 5), None, True), (date(2015, 10, 5), None, False)]


def test_out_of_range_dates_and_impossible_amounts_are_flagged_not_fatal() -> None:
    rows = (
        "2015CE100001,FEDEX,A/C OR COMM OPER,1/1/0000,ORD ASSESS CIVIL PENALTY,-5000,DOLLARS,OTHER,3/1/2016,\n"
        "2015CE100002,FEDEX,A/C OR COMM OPER,12/31/2099,ORD ASSESS CIVIL PENALTY,1e30,DOLLARS,OTHER,,\n"
        "2015CE100003,FEDEX,A/C OR COMM OPER,05-OCT-2015,ORD ASSESS CIVIL PENALTY,1000000000001,DOLLARS,OTHER,,\n"
        '2015CE100004,FEDEX,A/C OR COMM OPER,05-OCT-2015,ORD ASSESS CIVIL PENALTY,"$2,500",DOLLARS,OTHER,,\n'
    )
    batch = _batch(HEADER + rows)
    assert (batch.records_read, batch.valid.height, batch.rejects.height) == (4, 4, 0)
    no_site = ["unknown_state", "missing_coordinates", "invalid_zip", "missing_city", "missing_naics"]
    issues = pl.col("quality_issues").list.eval(pl.element().filter(~pl.element().is_in(no_site)))
    got = batch.valid.sort("source_id").select("event_date", "penalty_amount", issues)
    assert got.rows() == [
        (date(2016, 3, 1), None, ["event_date_fallback", "invalid_penalty", "invalid_date"]),
        (None, None, ["missing_event_date", "invalid_penalty", "future_date"]),
        (date(2015, 10, 5), None, ["invalid_penalty"]),
        (date(2015, 10, 5), Decimal("2500.00"), []),
    ]
    details = [json.loads(d) for d in batch.valid.sort("source_id")["violation_details"]]
    assert [(d.get("DATE KNOWN"), d["SANCTION AMOUNT"]) for d in details[:3]] == [
        ("1/1/0000", "-5000"), ("12/31/2099", "1e30"), (None, "1000000000001"),
    ]  # fmt: skip
