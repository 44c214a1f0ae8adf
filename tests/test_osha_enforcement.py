"""OSHA enforcement normalizer on rows built from the DOL data dictionary's own columns and codes.

``tests/data/osha_data_dictionary.csv`` is the DOL enforcement data catalog's dictionary, copied from
the shared samples (source: storydrivendatasets-pre-2022-archive/osha-enforcement-datastash,
data/stashed/osha_data_dictionary/, e6c4c3d), so the suite runs from a clone anywhere.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from normalizers import get_dataset, normalize
from normalizers.common import finalize
from normalizers.osha import enforcement
from ventureos.bronze import read_raw_batch
from ventureos.generate import generate_osha_enforcement
from ventureos.schemas import LINEAGE, ROW, SOURCE_URI

from .conftest import BUNDLED_SAMPLES

DICTIONARY = Path(__file__).parent / "data" / "osha_data_dictionary.csv"


def dictionary() -> pl.DataFrame:
    return pl.read_csv(DICTIONARY, infer_schema=False).select(
        table="table_name", column="column_name", definition="definition"
    )


def codes(table: str, column: str) -> dict[str, str]:
    """``S=Serious.W=Willful...`` -> {"S": "Serious", ...} as the dictionary defines them."""
    definition = dictionary().filter(table=table, column=column)["definition"].item()
    return dict(re.findall(r"([A-Z])=(\w+)", definition))


def columns(table: str) -> list[str]:
    return dictionary().filter(table=table)["column"].to_list()


def test_dictionary_codes_are_the_mapped_ones() -> None:
    viol_types = codes("osha_violation", "viol_type")
    assert viol_types == {"S": "Serious", "W": "Willful", "R": "Repeat", "O": "Other"}
    assert {k: v.lower() for k, v in viol_types.items()} == enforcement.VIOLATION_TYPES
    assert codes("osha_violation", "delete_flag") == {"D": "deleted"}
    # Every column the normalizer maps exists in the catalog's tables.
    assert set(enforcement.VIOLATION_MAPPED) <= set(columns("osha_violation"))
    assert set(enforcement.INSPECTION_MAPPED) <= set(columns("osha_inspection"))


def raw_violations(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    """All osha_violation columns of the dictionary as strings (blank when not given) + lineage."""
    names = columns("osha_violation")
    frame = pl.DataFrame(
        [{c: r.get(c, "") for c in names} for r in rows], schema=dict.fromkeys(names, pl.String)
    )
    return frame.with_row_index(ROW).with_columns(pl.lit("s3://lake/v.csv").alias(SOURCE_URI))


INSPECTIONS = pl.DataFrame(
    [
        {"activity_nr": "1553019", "estab_name": " KROGER CO (THE) ", "site_address": "12 MAIN ST",
         "site_city": "Memphis", "site_state": "TN", "site_zip": "38103", "naics_code": "445110",
         "open_date": "20160113", "insp_type": "B", "owner_type": "A"},
        {"activity_nr": "1553109", "estab_name": "0423-WAL-MART STORES, INC.", "site_address": "",
         "site_city": "NEWARK", "site_state": "nj", "site_zip": "7102", "naics_code": "452311.0",
         "open_date": "2015-06-30", "insp_type": "A", "owner_type": "A"},
        # A re-delivered inspection: the last version wins, no row explosion.
        {"activity_nr": "1553109", "estab_name": "WAL-MART STORES, INC.", "site_address": "1 RIVER RD",
         "site_city": "NEWARK", "site_state": "NJ", "site_zip": "7102", "naics_code": "452311",
         "open_date": "20150630", "insp_type": "A", "owner_type": "A"},
    ]
)  # fmt: skip


def test_normalizes_violations_joined_to_inspections() -> None:
    raw = raw_violations(
        [
            {"activity_nr": "1553019", "citation_id": "01001", "viol_type": "S", "issuance_date": "20160201",
             "current_penalty": "3500.00", "initial_penalty": "7000.00", "standard": "19100147 C04 I",
             "gravity": "05"},
            {"activity_nr": "1553019", "citation_id": "01002A", "viol_type": "W",
             "issuance_date": "2016-02-01", "current_penalty": "70000.00", "initial_penalty": "70000.00"},
            # No issuance date: the inspection's open date, flagged.
            {"activity_nr": "1553109", "citation_id": "02001", "viol_type": "R", "issuance_date": " ",
             "current_penalty": "", "initial_penalty": "1,250.50"},
            {"activity_nr": "1553109", "citation_id": "03001", "viol_type": "O", "issuance_date": "20150801",
             "delete_flag": "D", "current_penalty": "0.00", "initial_penalty": "0.00"},
            # An inspection not in the files: kept, flagged; an unknown type code: flagged.
            {"activity_nr": "999999999", "citation_id": "01001", "viol_type": "X",
             "issuance_date": "19890314"},
            {"activity_nr": "999999999", "citation_id": "01002", "viol_type": "S", "issuance_date": ""},
            # An amount no parser reads (NaN once failed the whole batch): null, flagged.
            # Unreadable mapped values are kept in violation_details under their source names.
            {"activity_nr": "1553019", "citation_id": "01004", "viol_type": "S", "issuance_date": "notadate",
             "current_penalty": "NaN", "initial_penalty": "N/A"},
            {"activity_nr": "1553019", "citation_id": "", "viol_type": "S", "issuance_date": "20160201"},
            {"activity_nr": "", "citation_id": "01003", "viol_type": "S", "issuance_date": "20160201"},
        ]
    )  # fmt: skip
    out = enforcement.normalize(raw, inspection=INSPECTIONS)
    expected = pl.DataFrame(
        {
            "source_id": ["1553019-01001", "1553019-01002A", "1553109-02001", "1553109-03001",
                          "999999999-01001", "999999999-01002", "1553019-01004", None, None],
            "event_date": [date(2016, 2, 1), date(2016, 2, 1), date(2015, 6, 30), date(2015, 8, 1),
                           date(1989, 3, 14), None, date(2016, 1, 13), date(2016, 2, 1), date(2016, 2, 1)],
            "company_name": ["KROGER CO (THE)", "KROGER CO (THE)", "WAL-MART STORES, INC.",
                             "WAL-MART STORES, INC.", None, None, "KROGER CO (THE)", "KROGER CO (THE)", None],
            "city": ["MEMPHIS", "MEMPHIS", "NEWARK", "NEWARK", None, None, "MEMPHIS", "MEMPHIS", None],
            "state": ["TN", "TN", "NJ", "NJ", None, None, "TN", "TN", None],
            "zip": ["38103", "38103", "07102", "07102", None, None, "38103", "38103", None],
            "naics_code": ["445110", "445110", "452311", "452311", None, None, "445110", "445110", None],
            "violation_type": ["serious", "willful", "repeat", "other", None, "serious", "serious", "serious",
                               "serious"],
            "penalty_amount": [Decimal("3500.00"), Decimal("70000.00"), None, Decimal("0.00"), None, None,
                               None, None, None],
            "initial_penalty": [Decimal("7000.00"), Decimal("70000.00"), Decimal("1250.50"),
                                Decimal("0.00"), None, None, None, None, None],
            "quality_issues": [[], [], ["event_date_fallback"], [],
                               ["missing_inspection", "unknown_violation_type"], ["missing_inspection"],
                               ["event_date_fallback", "invalid_penalty"], [], ["missing_inspection"]],
            "is_deleted": [False, False, False, True, False, False, False, False, False],
            "reject_reason": [None, None, None, None, None,
                              "missing event date (no readable issuance_date or inspection open_date)", None,
                              "missing citation_id", "missing activity_nr"],
        },
        schema_overrides={"penalty_amount": pl.Decimal(18, 2), "initial_penalty": pl.Decimal(18, 2)},
    )  # fmt: skip
    assert_frame_equal(out.select(expected.columns), expected)
    assert out["description"][0] == "19100147 C04 I"
    assert out[ROW].to_list() == list(range(9))
    details = out["violation_details"].str.json_decode(
        pl.Struct({"gravity": pl.String, "insp_type": pl.String, "open_date": pl.String})
    )
    assert details[0] == {"gravity": "05", "insp_type": "B", "open_date": "20160113"}
    unread = [json.loads(d) for d in out["violation_details"]]
    assert unread[4]["viol_type"] == "X" and "viol_type" not in unread[0]
    assert {k: unread[6][k] for k in ("issuance_date", "current_penalty", "initial_penalty")} == {
        "issuance_date": "notadate", "current_penalty": "NaN", "initial_penalty": "N/A",
    }  # fmt: skip


def test_registry_entry_finalizes_with_ids_and_hash() -> None:
    spec = get_dataset("osha", "enforcement")
    assert spec.lookups == {"inspection": "activity_nr"} and spec.id_columns == ("activity_nr", "citation_id")
    assert spec.lookup_of("bronze/historical/osha/enforcement/osha_inspection_001.csv") == "inspection"
    assert spec.lookup_of("osha_violation_001.csv") is None
    raw = raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "viol_type": "S",
                           "issuance_date": "20160201", "current_penalty": "3500.00"}])  # fmt: skip
    first = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS})
    assert first["violation_id"].to_list() == ["osha:enforcement:1553019-01001"]
    assert first["company_slug"].item() == "kroger"
    changed = raw.with_columns(current_penalty=pl.lit("1750.00"))
    second = normalize(changed, "osha", "enforcement", {"inspection": INSPECTIONS})
    assert first["record_hash"].item() != second["record_hash"].item()


@pytest.mark.parametrize("inspection", [None, INSPECTIONS.head(0)])
def test_without_inspection_rows_every_violation_is_flagged(inspection: pl.DataFrame | None) -> None:
    raw = raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "20160201"}])
    out = enforcement.normalize(raw, inspection=inspection)
    assert out["quality_issues"].to_list() == [["missing_inspection", "unknown_violation_type"]]
    assert out["reject_reason"].to_list() == [None]


def test_a_zero_penalty_is_no_penalty() -> None:
    """DESIGN: penalty_amount and initial_penalty are null when none; the catalog writes none as 0.00."""
    raw = raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "20160201",
                           "current_penalty": "0.00", "initial_penalty": "1250.00"}])  # fmt: skip
    out = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS})
    assert out.select("penalty_amount", "initial_penalty").row(0) == (None, Decimal("1250.00"))


def test_an_unreadable_inspection_site_stays_in_details() -> None:
    inspection = INSPECTIONS.head(1).with_columns(site_state=pl.lit("XX"), site_zip=pl.lit("ABC"))
    raw = raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "20160201"}])
    out = enforcement.normalize(raw, inspection=inspection)
    assert out.select("state", "zip").row(0) == (None, None)
    details = json.loads(out["violation_details"].item())
    assert (details["site_state"], details["site_zip"]) == ("XX", "ABC")


def test_a_year_0_or_future_issuance_date_falls_back_flagged_with_its_text_kept() -> None:
    """``00000101`` failed the day's commit (no Python date for year 0 in the Iceberg statistics)."""
    raw = raw_violations([
        {"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "00000101", "current_penalty": "-500", "viol_type": "S"},
        {"activity_nr": "1553019", "citation_id": "01002", "issuance_date": "99991231", "current_penalty": "2e15", "viol_type": "S"},
        {"activity_nr": "1553019", "citation_id": "01003", "issuance_date": "20160201", "current_penalty": "700", "viol_type": "S"},
    ])  # fmt: skip
    out = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS})
    assert out.select("source_id", "event_date", "penalty_amount", "quality_issues", "reject_reason").rows() == [
        ("1553019-01001", date(2016, 1, 13), None, ["event_date_fallback", "invalid_penalty", "invalid_date"], None),
        ("1553019-01002", date(2016, 1, 13), None, ["event_date_fallback", "invalid_penalty", "future_date"], None),
        ("1553019-01003", date(2016, 2, 1), Decimal("700.00"), [], None),
    ]  # fmt: skip
    details = [json.loads(d) for d in out["violation_details"]]
    assert [(d["issuance_date"], d["current_penalty"]) for d in details[:2]] == [
        ("00000101", "-500"),
        ("99991231", "2e15"),
    ]


def test_a_float_activity_nr_is_the_same_violation_and_finds_its_inspection() -> None:
    raw = raw_violations([{"activity_nr": "1553019.0", "citation_id": "01001", "issuance_date": "20160201"}])
    inspection = INSPECTIONS.head(1).with_columns(activity_nr=pl.lit("1553019.00"))
    out = normalize(raw, "osha", "enforcement", {"inspection": inspection})
    assert out.select("violation_id", "company_slug", "city").row(0) == (
        "osha:enforcement:1553019-01001", "kroger", "MEMPHIS",
    )  # fmt: skip


def test_no_coordinates_flag_where_the_source_has_no_coordinates() -> None:
    """The enforcement catalog has no coordinates: its rows carry no ``missing_coordinates``; severe
    injury reports have them, so a report without them is still flagged."""
    raw = raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "20160201",
                           "current_penalty": "700", "viol_type": "S"}])  # fmt: skip
    out = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS})
    assert out.select("quality_issues", "quality_score").row(0) == ([], 1.0)
    no_site = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS.head(0)})
    assert "missing_coordinates" not in no_site["quality_issues"].item()
    assert "unknown_state" in no_site["quality_issues"].item()  # the catalog has states

    reports = (
        pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)
        .head(2)
        .with_columns(Latitude=pl.Series(["", "41.5"]), Longitude=pl.Series(["", "-87.6"]))
    )
    raw = read_raw_batch(
        [("s3://lake/bronze/daily/osha/severe_injury/2015-01-01/a.csv", reports.write_csv().encode())]
    )
    injuries = normalize(raw.frame, "osha", "severe_injury")
    assert ["missing_coordinates" in issues for issues in injuries["quality_issues"]] == [True, False]


def test_a_column_declared_absent_must_be_null() -> None:
    frame = enforcement.normalize(
        raw_violations([{"activity_nr": "1553019", "citation_id": "01001", "issuance_date": "20160201"}]),
        inspection=INSPECTIONS,
    ).with_columns(latitude=pl.lit(41.5))
    with pytest.raises(ValueError, match="declares latitude absent but has values"):
        finalize(frame, "osha", "enforcement", enforcement.ABSENT)


def test_a_violation_normalized_with_its_recalled_inspection_is_the_same_record(tmp_path: Path) -> None:
    """``Recall``: the inspection rebuilt from a violation's silver version gives, normalized again,
    exactly the record its real inspection gave (hash included), over the generator's quirks (blank
    states, ZIPs that lost a zero, padded and title-cased names, blank NAICS, ISO and missing issuance
    dates) and the fixture's (a lowercase state, ``452311.0``, an unreadable state and ZIP)."""
    spec = get_dataset("osha", "enforcement")
    generated = generate_osha_enforcement(3000, tmp_path, seed=11)
    files = [(str(p), p.read_bytes()) for p in (*generated.inspection_files, *generated.violation_files)]
    raw = read_raw_batch(files, spec.lookup_of)
    unreadable_site = INSPECTIONS.head(1).with_columns(
        activity_nr=pl.lit("77"), site_state=pl.lit("XX"), site_zip=pl.lit("ABC")
    )
    fixture = raw_violations(
        [{"activity_nr": nr, "citation_id": "01001", "issuance_date": "20160201", "current_penalty": "10"}
         for nr in ("1553019", "1553109", "77")]
    )  # fmt: skip
    assert raw.frame.height == 3000
    cases = [
        (raw.frame, raw.lookups["inspection"]),
        (fixture, pl.concat([INSPECTIONS, unreadable_site], how="diagonal")),
    ]
    for violations, inspections in cases:
        first = normalize(violations, "osha", "enforcement", {"inspection": inspections})
        had = first.filter(~pl.col("quality_issues").list.contains(enforcement.MISSING_INSPECTION))
        assert spec.recall is not None and spec.recall.flag == enforcement.MISSING_INSPECTION
        versions = had.with_columns(valid_from=pl.lit(datetime(2024, 3, 1, tzinfo=UTC)))
        again = normalize(violations, "osha", "enforcement", {"inspection": spec.recall.rows(versions)})
        assert_frame_equal(again.join(had.select(LINEAGE), on=list(LINEAGE), how="semi"), had)
    assert had.height == 3 and had["state"].to_list() == ["TN", "NJ", None]


def test_violations_of_one_inspection_that_disagree_recall_the_newest_version() -> None:
    """The inspection was re-delivered with one of its violations only: both get the newest site."""
    raw = raw_violations(
        [
            {"activity_nr": "1553019", "citation_id": c, "issuance_date": "20160201"}
            for c in ("01001", "01002")
        ]
    )
    first = normalize(raw, "osha", "enforcement", {"inspection": INSPECTIONS})
    newest, older = datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    current = first.with_columns(
        company_name=pl.Series(["KROGER CO", "KROGER CO (THE)"]), valid_from=pl.Series([newest, older])
    )
    for frame in (current, current.reverse()):
        again = normalize(raw, "osha", "enforcement", {"inspection": enforcement.recalled_inspections(frame)})
        assert again["company_name"].to_list() == ["KROGER CO", "KROGER CO"]
