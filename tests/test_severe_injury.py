"""The OSHA severe-injury normalizer on real rows from the agency's export."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from normalizers import normalize
from ventureos.bronze import read_raw_batch

from .conftest import BUNDLED_SAMPLES

SAMPLE = BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv"


def real_rows(*ids: str) -> pl.DataFrame:
    rows = pl.read_csv(SAMPLE, infer_schema=False).filter(pl.col("ID").is_in(ids))
    assert rows.height == len(ids)
    return rows


def normalized_csv(rows: pl.DataFrame) -> pl.DataFrame:
    raw = read_raw_batch([("s3://lake/day/reports.csv", rows.write_csv().encode())])
    return normalize(raw.frame, "osha", "severe_injury")


def test_real_rows_map_to_the_unified_columns() -> None:
    rows = real_rows("2015010022", "2015010033", "2015010243", "2015010269", "2015053315", "2015107656")
    got = normalized_csv(rows).select(
        "violation_id",
        "source_id",
        "event_date",
        "company_name",
        "city",
        "state",
        "zip",
        "latitude",
        "longitude",
        "naics_code",
        "violation_type",
        "penalty_amount",
        "quality_issues",
    )
    expected = pl.DataFrame(
        {
            "violation_id": [f"osha:severe_injury:{i}" for i in rows["ID"]],
            "source_id": rows["ID"].to_list(),
            "event_date": [
                dt.date(2015, 1, 1),
                dt.date(2015, 1, 2),
                dt.date(2015, 1, 7),
                dt.date(2015, 1, 8),
                dt.date(2015, 5, 31),
                dt.date(2015, 10, 14),
            ],
            # "Circle K " arrives with a trailing space.
            "company_name": [
                "Gopher Resource",
                "Circle K",
                "Starkist Samoa Inc.",
                "Arc Construction Services Inc.",
                "Whole Life Company Inc.",
                "U.S. Postal Service-Phoenix",
            ],
            "city": ["TAMPA", "SPRING HILL", "PAGO PAGO", "WASHINGTON", "SHELTON", None],
            "state": ["FL", "FL", "AS", "DC", "CT", "AZ"],
            "zip": ["33619", "34608", "96799", "20009", "06484", None],
            "latitude": [27.96, 28.46, 14.24, 38.90, 41.27, 33.39],
            "longitude": [-82.38, -82.54, -170.71, -77.03, -73.11, -112.04],
            "naics_code": ["331492", "447110", "311711", "238910", "623210", "491110"],
            "violation_type": [
                "amputation",
                "hospitalization",
                "hospitalization",
                "hospitalization",
                "hospitalization",
                "amputation",
            ],
            "penalty_amount": pl.Series([None] * 6, dtype=pl.Decimal(18, 2)),
            "quality_issues": [[], [], [], [], [], ["invalid_zip", "missing_city"]],
        }
    )
    assert_frame_equal(got, expected)


def test_unmapped_fields_survive_in_details_and_narrative_newlines_stay() -> None:
    got = normalized_csv(real_rows("2015010015")).row(0, named=True)
    details = json.loads(got["violation_details"])
    assert details["UPA"] == "931176"
    assert details["Hospitalized"] == "1.00" and details["Amputation"] == "0.00"
    assert details["Part of Body Title"] == "Lower leg(s)"
    assert "Employer" not in details and "ID" not in details
    assert got["description"].startswith("Three correctional facility guards")
    assert "use of force. \nTwo guards" in got["description"]
    assert (
        got["address"] == "Two Mile Drive"
        and got["company_slug"] == "fci-otisville-federal-correctional-institution"
    )


def test_blank_coordinates_become_null_with_a_flag_not_a_reject() -> None:
    rows = real_rows("2015010022").with_columns(
        Latitude=pl.lit(" "), Longitude=pl.lit(""), Zip=pl.lit("4401")
    )
    got = normalized_csv(rows).row(0, named=True)
    assert got["latitude"] is None and got["longitude"] is None
    assert got["quality_issues"] == ["missing_coordinates"]
    assert got["quality_score"] == 0.9
    assert got["zip"] == "04401"
    assert got["reject_reason"] is None


def test_json_and_csv_inputs_give_the_same_record_hash() -> None:
    rows = real_rows("2015010269")
    from_json = normalize(
        read_raw_batch([("a.json", json.dumps(rows.row(0, named=True)).encode())]).frame,
        "osha",
        "severe_injury",
    )
    from_csv = normalized_csv(rows)
    assert from_json["record_hash"].item() == from_csv["record_hash"].item()


def test_a_record_hashes_the_same_whatever_other_files_its_batch_holds() -> None:
    """A column only another file has (real: older exports have ``Loss of Eye``) is not part of the
    record: its details and hash stay the same, or every re-delivery would be an SCD2 update."""
    rows = real_rows("2015010026")
    other = real_rows("2015010269").with_columns(pl.lit("1").alias("Loss of Eye"))
    alone = normalized_csv(rows)
    mixed = normalize(
        read_raw_batch([("a.csv", rows.write_csv().encode()), ("b.csv", other.write_csv().encode())]).frame,
        "osha",
        "severe_injury",
    ).head(1)
    assert mixed["source_id"].item() == "2015010026"
    assert mixed["violation_details"].item() == alone["violation_details"].item()
    assert mixed["record_hash"].item() == alone["record_hash"].item()
    assert "Loss of Eye" not in json.loads(alone["violation_details"].item())


def test_cp1252_csv_is_decoded() -> None:
    rows = real_rows("2015010022").with_columns(
        pl.lit("Worker\u2019s hand \u2013 crushed").alias("Final Narrative")
    )
    raw = read_raw_batch([("r.csv", rows.write_csv().encode("cp1252"))])
    got = normalize(raw.frame, "osha", "severe_injury")
    assert got["description"].item() == "Worker\u2019s hand \u2013 crushed"


def test_records_that_cannot_be_violations_get_a_reason() -> None:
    rows = real_rows("2015010022", "2015010033", "2015010243").with_columns(
        ID=pl.Series(["", "2015010033", "2015010243"]),
        EventDate=pl.Series(["1/1/2015", "2015-13-45", ""]),
    )
    assert normalized_csv(rows)["reject_reason"].to_list() == [
        "missing ID",
        "unparseable event date",
        "missing event date",
    ]


def test_money_and_dates_parse_the_agencies_formats() -> None:
    from normalizers.common import money, read_date, unreadable

    frame = pl.DataFrame(
        {
            "v": ["$44,681", "55000.0", " 10000 ", "", None, "1.005", "NaN", "inf", "12345678901234567890", "N/A", "1.0050001"],
            "d": ["1/2/2015", "2015-01-02", "20150102", "x", None, "05-OCT-2009", "1/1/68", "12/31/69",
                  "6/19/06", "2015-01-02T10:00:00Z", "2015-01-02T"],
        }
    )  # fmt: skip
    got = frame.select(
        money(pl.col("v")), read_date(pl.col("d")), unreadable(pl.col("v"), money(pl.col("v"))).alias("bad")
    )
    # Decimal all the way: no float rounding of 1.005, and no amount that fails the batch's cast.
    assert got["v"].to_list() == [
        Decimal("44681.00"), Decimal("55000.00"), Decimal("10000.00"), None, None, Decimal("1.00"),
        None, None, None, None, Decimal("1.01"),  # rounded once: not to 1.005 first
    ]  # fmt: skip
    assert got["bad"].to_list() == [False] * 5 + [False, True, True, True, True, False]
    # The T of OCT is not an ISO time; two-digit years from 50 on are 19xx.
    assert got["d"].to_list() == [dt.date(2015, 1, 2)] * 3 + [None, None] + [
        dt.date(2009, 10, 5), dt.date(1968, 1, 1), dt.date(1969, 12, 31), dt.date(2006, 6, 19),
        dt.date(2015, 1, 2), dt.date(2015, 1, 2),
    ]  # fmt: skip


def test_zip5_keeps_five_digits_of_every_zip_shape() -> None:
    from normalizers.common import zip5

    values = ["02743", "2743", "7076.0", "12345-6789", "123456789", "12345678", "0", "1234567", "ABCDE", None]
    got = pl.select(zip5(pl.lit(pl.Series(values)))).to_series().to_list()
    assert got == ["02743", "02743", "07076", "12345", "12345", "01234", None, None, None, None]


def test_unreadable_mapped_values_survive_in_details() -> None:
    rows = real_rows("2015010022", "2015010033").with_columns(
        State=pl.Series(["ATLANTIS", "NEW YORK"]),
        Zip=pl.Series(["ABCDE", "10963"]),
        Latitude=pl.Series(["n/a", "41.4"]),
    )
    got = normalized_csv(rows)
    assert got.select("state", "zip").rows() == [(None, None), ("NY", "10963")]
    details = [json.loads(d) for d in got["violation_details"]]
    assert {k: details[0][k] for k in ("State", "Zip", "Latitude")} == {
        "State": "ATLANTIS",
        "Zip": "ABCDE",
        "Latitude": "n/a",
    }
    assert not {"State", "Zip", "Latitude"} & set(details[1])  # read fine: not repeated in the details


def test_an_event_date_out_of_range_rejects_its_record_with_the_reason() -> None:
    """The event date is required: year 0 (which failed the day's Iceberg statistics) and 9999 are rejects."""
    rows = real_rows("2015010022", "2015010033", "2015010243").select("ID", "EventDate", "Employer")
    rows = rows.with_columns(EventDate=pl.Series(["1/1/0000", "12/31/9999", "1/3/2015"]))
    out = normalized_csv(rows)
    assert out.select("source_id", "event_date", "reject_reason").rows() == [
        ("2015010022", None, "event date before 1900-01-01"),
        ("2015010033", None, "event date more than a year ahead"),
        ("2015010243", dt.date(2015, 1, 3), None),
    ]


def test_a_json_number_id_is_the_same_violation_as_the_csv_text_id() -> None:
    """``9000092.0`` (a JSON number, read as float text) was another violation than the CSV's ``9000092``."""
    record = real_rows("2015010022").select("ID", "EventDate", "Employer").to_dicts()[0]
    as_csv = pl.DataFrame([record]).write_csv().encode()
    as_json = json.dumps({**record, "ID": float(record["ID"])}).encode()
    raw = read_raw_batch([("day/r.csv", as_csv), ("day/r.json", as_json)])
    assert raw.frame["ID"].to_list() == ["2015010022", "2015010022.0"]
    out = normalize(raw.frame, "osha", "severe_injury")
    assert out["violation_id"].to_list() == ["osha:severe_injury:2015010022"] * 2
    assert out["record_hash"].n_unique() == 1
