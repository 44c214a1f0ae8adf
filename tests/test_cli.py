"""The ``ventureos`` command: demo, run, query, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ventureos.demo import DEMO_DATE

from .conftest import run_cli


def test_demo_refuses_a_home_it_did_not_create(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bronze = home / "lake" / "bronze" / "daily" / "x.csv"
    bronze.parent.mkdir(parents=True)
    bronze.write_text("ID\n1\n")
    assert run_cli("demo") == 1
    assert capsys.readouterr().err.startswith(
        f"error: {home} holds a lakehouse the demo did not create (lake)"
    )
    assert bronze.read_text() == "ID\n1\n"


@pytest.mark.usefixtures("prefect_harness")
def test_run_daily_ingest_and_query(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ventureos.demo import stage_demo
    from ventureos.settings import load_settings

    stage_demo(load_settings())
    assert run_cli("run", "daily-ingest", "--date", DEMO_DATE, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    # 655 OSHA records (one truncated file) + 500 ECHO facilities, of which 20 have a penalty.
    assert report["totals"]["read"] == 1155 and report["totals"]["inserted"] == 674
    assert report["totals"]["quarantined"] == 481 and report["reconciled"] is True

    sql = (
        "select state, count(*) as n from silver_violations where is_current and agency = 'osha'"
        " group by state order by n desc limit 2"
    )
    assert run_cli("query", sql, "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"state": "TX", "n": 113}, {"state": "FL", "n": 74}]


def test_errors_are_one_line_and_non_zero(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("run", "daily-ingest", "--date", "2024-13-01") == 1
    err = capsys.readouterr().err
    assert err == "error: date must be a calendar day as YYYY-MM-DD, got '2024-13-01'\n"

    assert (
        run_cli("run", "daily-ingest", "--date", "2024-01-01", "--agency", "osha", "--dataset", "nope") == 1
    )
    assert capsys.readouterr().err.startswith("error: unknown dataset 'osha/nope'")
    assert run_cli("run", "daily-ingest", "--date", "2024-01-01", "--agency", "nope") == 1
    assert capsys.readouterr().err.startswith("error: unknown dataset 'nope/*'; known: epa/echo, ")
    assert run_cli("run", "daily-ingest", "--date", "2024-01-01", "--dataset", "echo") == 1
    assert capsys.readouterr().err == (
        "error: dataset needs agency (datasets are named per agency, e.g. --agency osha)\n"
    )

    os.environ["VENTUREOS_LAKEURI"] = "x"
    try:
        assert run_cli("query", "select 1") == 1
    finally:
        del os.environ["VENTUREOS_LAKEURI"]
    assert capsys.readouterr().err == "error: unknown setting(s): VENTUREOS_LAKEURI\n"


def test_usage_errors_name_the_option_and_exit_two(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Typer raises its own copy of click's exceptions: they were printed without the option's name."""
    args = ("run", "historical-load", "--agency", "osha", "--dataset", "enforcement", "--mode", "repalce")
    assert run_cli(*args) == 2
    assert "Invalid value for --mode: must be one of append, replace" in capsys.readouterr().err
    assert run_cli("top", "--agency", "xyz") == 2
    assert "unknown agency 'xyz'; one of epa, faa, osha or all" in capsys.readouterr().err
    assert run_cli("serving", "get", "walmart") == 2
    assert "'walmart' is not an entity key: COMPANY#<slug>" in capsys.readouterr().err
    # A fresh home: the serving tables do not exist yet, and the error says how to create them.
    assert run_cli("serving", "get", "company#Walmart") == 1
    assert "create it with `ventureos serving init`" in capsys.readouterr().err
    assert run_cli("serving", "init") == 0
    capsys.readouterr()
    assert run_cli("serving", "get", "company#Walmart") == 2  # normalized to COMPANY#walmart
    assert "no serving items for COMPANY#walmart" in capsys.readouterr().err


def test_every_core_table_is_queryable_before_any_run(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "select (select count(*) from silver_violations_quarantine) as rejects, count(*) as n from gold_company_stats"
    assert run_cli("query", sql, "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"rejects": 0, "n": 0}]


@pytest.mark.slow  # the console script starts its own Prefect API
def test_demo_console_script_exits_zero_with_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENTUREOS_", "PREFECT_"))}
    env |= {"VENTUREOS_HOME": str(tmp_path / "demo"), "PREFECT_HOME": str(tmp_path / "prefect")}
    script = Path(sys.executable).parent / "ventureos"
    result = subprocess.run([str(script), "demo"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "silver.violations: 674 rows (674 violations); quarantined: 481" in result.stdout
    assert "Top 10 companies by violation count (serving layer)" in result.stdout
    assert "reconciled" in result.stdout
