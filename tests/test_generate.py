"""The synthetic OSHA enforcement generator: exact sizes, referential integrity, the real quirks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from ventureos.cli import app
from ventureos.generate import INSPECTION_COLUMNS, VIOLATION_COLUMNS, generate_osha_enforcement


def read(paths: list[Path]) -> pl.DataFrame:
    return pl.concat([pl.read_csv(p, infer_schema=False) for p in paths])


def test_generates_exact_rows_with_integrity_and_quirks(tmp_path: Path) -> None:
    out = generate_osha_enforcement(3000, tmp_path, files=3, seed=7)
    assert [p.name for p in out.violation_files] == [f"osha_violation_00{i}.csv" for i in (1, 2, 3)]
    violations, inspections = read(out.violation_files), read(out.inspection_files)
    assert violations.columns == list(VIOLATION_COLUMNS)
    assert inspections.columns == list(INSPECTION_COLUMNS)
    assert violations.height == out.violations == 3000
    assert (violations["delete_flag"] == "D").sum() == out.deleted
    assert 20 <= out.deleted <= 120  # about 2 %
    # One row per (activity_nr, citation_id); every violation's inspection exists, in the same file.
    assert violations.select("activity_nr", "citation_id").is_unique().all()
    assert inspections["activity_nr"].is_unique().all()
    assert 2.4 < violations.height / inspections.height < 2.9  # the catalog's ~2.6 per inspection
    assert violations.join(inspections, on="activity_nr", how="anti").is_empty()
    for v, i in zip(out.violation_files, out.inspection_files, strict=True):
        one = pl.read_csv(v, infer_schema=False).join(pl.read_csv(i, infer_schema=False), on="activity_nr")
        assert one.height == pl.read_csv(v, infer_schema=False).height
    # Quirks: ISO and yyyymmdd dates, blanks, ZIPs that lost their leading zero, name variants.
    issued = violations["issuance_date"]
    assert issued.str.contains(r"^\d{8}$").sum() > issued.str.contains(r"^\d{4}-\d{2}-\d{2}$").sum() > 0
    assert issued.null_count() > 0
    years = inspections["open_date"].str.slice(0, 4).cast(pl.Int32)
    assert years.min() < 1985 and years.max() > 2015
    assert inspections["site_zip"].str.len_chars().min() < 5  # "07102" exported as "7102"
    names = inspections["estab_name"]
    assert names.str.contains("#").any() and names.str.starts_with(" ").any()
    assert names.str.contains(r"[a-z]").any() and names.null_count() > 0
    penalties = violations["initial_penalty"].cast(pl.Float64)
    assert penalties.median() < penalties.mean() < penalties.max() / 10  # skewed, long tail


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = generate_osha_enforcement(500, tmp_path / "a", seed=3)
    b = generate_osha_enforcement(500, tmp_path / "b", seed=3)
    c = generate_osha_enforcement(500, tmp_path / "c", seed=4)
    assert a.violation_files[0].read_bytes() == b.violation_files[0].read_bytes()
    assert a.violation_files[0].read_bytes() != c.violation_files[0].read_bytes()


def test_cli_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "osha-enforcement", "--rows", "250", "--out", str(tmp_path), "--files", "2"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "osha_inspection_001.csv", "osha_inspection_002.csv",
        "osha_violation_001.csv", "osha_violation_002.csv",
    ]  # fmt: skip
    assert "250 violations" in result.output
