"""What a historical load's ``source`` can name, and the clear errors for sources it cannot load."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from normalizers import get_dataset
from ventureos.generate import generate_osha_enforcement
from ventureos.historical import (
    HistoricalSourceError,
    check_columns,
    count_rows,
    find_source_files,
    lookup_rows,
)
from ventureos.lakehouse import current_lakehouse

ENFORCEMENT = get_dataset("osha", "enforcement")


def names(keys: list[str]) -> list[str]:
    return [key.rsplit("/", 1)[-1] for key in keys]


def test_a_folder_a_file_and_a_name_prefix(home: Path, tmp_path: Path) -> None:
    generate_osha_enforcement(50, tmp_path / "in", files=2, seed=3)
    lake = current_lakehouse().storage
    folder = find_source_files(lake, str(tmp_path / "in"), ENFORCEMENT)
    assert names(folder.records) == ["osha_violation_001.csv", "osha_violation_002.csv"]
    assert {n: names(k) for n, k in folder.lookups.items()} == {
        "inspection": ["osha_inspection_001.csv", "osha_inspection_002.csv"]
    }
    prefix = find_source_files(lake, str(tmp_path / "in" / "osha_violation_"), ENFORCEMENT)
    assert (
        names(prefix.records) == ["osha_violation_001.csv", "osha_violation_002.csv"] and not prefix.lookups
    )
    one = find_source_files(lake, str(tmp_path / "in" / "osha_violation_002.csv"), ENFORCEMENT)
    assert names(one.records) == ["osha_violation_002.csv"]
    assert sum(count_rows(folder).values()) == 50

    # The same, as keys of the lake.
    for path in sorted((tmp_path / "in").iterdir()):
        lake.write_bytes(f"bronze/historical/osha/enforcement/{path.name}", path.read_bytes())
    in_lake = find_source_files(lake, "bronze/historical/osha/enforcement/osha_v", ENFORCEMENT)
    assert names(in_lake.records) == ["osha_violation_001.csv", "osha_violation_002.csv"]


@pytest.mark.aws
def test_a_name_prefix_on_s3(aws_home: str, tmp_path: Path) -> None:
    generate_osha_enforcement(30, tmp_path / "in", files=2, seed=4)
    lake = current_lakehouse().storage
    for path in sorted((tmp_path / "in").iterdir()):
        lake.write_bytes(f"dumps/2024-{path.name}", path.read_bytes())
    lake.write_bytes("dumps/2023-osha_violation_001.csv", b"activity_nr,citation_id\n1,01001\n")
    files = find_source_files(lake, f"s3://{aws_home}/dumps/2024-osha_", ENFORCEMENT)
    assert names(files.records) == ["2024-osha_violation_001.csv", "2024-osha_violation_002.csv"]
    assert names(files.lookups["inspection"]) == [
        "2024-osha_inspection_001.csv",
        "2024-osha_inspection_002.csv",
    ]
    check_columns(files, ENFORCEMENT)
    assert sum(count_rows(files).values()) == 30


def test_sources_that_cannot_be_loaded_say_why(home: Path, tmp_path: Path) -> None:
    lake = current_lakehouse().storage
    with pytest.raises(HistoricalSourceError, match=r"^no files under '.*/missing'$"):
        find_source_files(lake, str(tmp_path / "missing"), ENFORCEMENT)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "osha_violation.csv").write_text("activity_nr,citation_id\n1,01001\n")
    (tmp_path / "mixed" / "notes.txt").write_text("x")
    with pytest.raises(HistoricalSourceError, match=r"read CSV files only; not CSV: notes\.txt"):
        find_source_files(lake, str(tmp_path / "mixed"), ENFORCEMENT)
    (tmp_path / "lookups").mkdir()
    (tmp_path / "lookups" / "osha_inspection.csv").write_text("activity_nr\n1\n")
    with pytest.raises(HistoricalSourceError, match="no record files under"):
        find_source_files(lake, str(tmp_path / "lookups"), ENFORCEMENT)


def test_the_wrong_files_fail_the_plan_naming_them(home: Path, tmp_path: Path) -> None:
    lake, source = current_lakehouse().storage, tmp_path / "w"
    source.mkdir()
    (source / "osha_violation.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(
        HistoricalSourceError, match=r"needs its inspection file\(s\) .*the source holds none"
    ):
        check_columns(find_source_files(lake, str(source), ENFORCEMENT), ENFORCEMENT)
    (source / "osha_inspection.csv").write_text("activity_nr,estab_name\n1,ACME\n")
    with pytest.raises(
        HistoricalSourceError,
        match=r"osha_violation\.csv is not a file of osha/enforcement: no activity_nr, citation_id column \(columns: foo, bar\)",
    ):
        check_columns(find_source_files(lake, str(source), ENFORCEMENT), ENFORCEMENT)
    (source / "osha_violation.csv").write_text("activity_nr,citation_id\n1,01001\n")
    (source / "osha_inspection.csv").write_text("ACTIVITY,estab_name\n1,ACME\n")
    with pytest.raises(HistoricalSourceError, match=r"osha_inspection\.csv is not .*: no activity_nr column"):
        check_columns(find_source_files(lake, str(source), ENFORCEMENT), ENFORCEMENT)
    (source / "osha_inspection.csv").write_text("activity_nr,estab_name\n1,ACME\n")
    check_columns(find_source_files(lake, str(source), ENFORCEMENT), ENFORCEMENT)
    # A column named like a lineage column failed the first batch's row index; now the plan says why.
    (source / "osha_violation.csv").write_text("activity_nr,citation_id,__ventureos_row\n1,01001,5\n")
    with pytest.raises(
        HistoricalSourceError,
        match=r"osha_violation\.csv: column __ventureos_row has the name of a lineage column$",
    ):
        check_columns(find_source_files(lake, str(source), ENFORCEMENT), ENFORCEMENT)
    faa = get_dataset("faa", "enforcement")  # no id columns to miss: a CR-only file read as 0 rows
    (source / "faa.csv").write_bytes(b"CASE NUMBER,NAME\r2015CE100001,FEDEX\r")
    with pytest.raises(HistoricalSourceError, match=r"faa\.csv: lines end with a lone CR \(classic Mac\)"):
        check_columns(find_source_files(lake, str(source / "faa.csv"), faa), faa)


def test_a_quote_left_open_is_an_error_not_an_empty_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "osha_violation.csv").write_text(
        'activity_nr,citation_id,standard\n1,"01001,19100147\n2,01002,19100212\n3,01003,19260501\n'
    )
    files = find_source_files(current_lakehouse().storage, str(tmp_path / "q"), ENFORCEMENT)
    with pytest.raises(HistoricalSourceError, match="no row can be read although 3 lines follow the header"):
        count_rows(files)


def test_lookup_rows_join_on_the_datasets_key_only(home: Path, tmp_path: Path) -> None:
    """A column both files happen to share (here a load timestamp) must not be part of the join."""
    lake = current_lakehouse().storage
    uri = str(tmp_path / "inspection.parquet")
    inspections = pl.DataFrame(
        {"activity_nr": ["1", "2", "3"], "load_dt": ["x", "x", "x"], "estab_name": ["A", "B", "C"]}
    )
    inspections.write_parquet(uri)
    violations = pl.DataFrame({"activity_nr": ["2", "3", "9"], "load_dt": ["y", "y", "y"]})
    got = lookup_rows(uri, violations, lake, "activity_nr")
    assert sorted(got["estab_name"]) == ["B", "C"]
    with pytest.raises(
        HistoricalSourceError, match=r"cannot join .* on 'citation_id': the lookup table have"
    ):
        lookup_rows(uri, violations, lake, "citation_id")
