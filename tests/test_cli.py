"""The ``ventureos`` command: demo, run, query, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from ventureos.cli.query import QueryNotAllowed, check_query
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
    # The demo has no OSHA enforcement files, a dataset expected daily: loaded, but exit 3.
    assert run_cli("run", "daily-ingest", "--date", DEMO_DATE, "--json") == 3
    report = json.loads(capsys.readouterr().out)
    assert report["missing_datasets"] == ["osha/enforcement"]
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


def test_query_reads_only_the_lakes_tables(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("query", "select * from read_csv('/etc/passwd')") == 1
    out, err = capsys.readouterr()
    assert err == (
        "error: read_csv() is not allowed: queries read only the lake's tables (silver_violations, "
        "silver_violations_quarantine, gold_company_stats, ...), not files or URLs\n"
    )
    assert out == ""
    sql = "select count(*) as n, 'read_csv(' as text from silver_violations where is_current -- read_json("
    assert run_cli("query", sql, "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0, "text": "read_csv("}]


@pytest.mark.parametrize(
    "sql",
    [
        "select * from {call}",
        "select * from t join {call} as r on true",
        "with x as (select * from {call}) select * from x",
        "select * from READ_CSV{args}",
        'select * from "read_csv"{args}',
        "select * from `read_csv`{args}",
        "select * from read_csv /* ( */ {args}",
        "select * from read_csv -- (\n {args}",
        "select $$'$$ as q, * from {call} -- '",  # a quote inside a dollar-quoted string
        "select $t$'$t$ as q, * from {call} -- '",
        "select /* /* */ ' */ * from {call} -- '",  # block comments nest
        "select '\\' as q, * from {call} -- '",  # a backslash escapes nothing in a plain string
        "select 'it''s' as q, * from {call}",
    ],
)
def test_table_functions_are_refused_however_written(sql: str, tmp_path: Path) -> None:
    """Each query reads the file when given to Polars SQL as is; the check refuses it first."""
    path = tmp_path / "secret.csv"
    path.write_text("col\nSECRET\n")
    args = f"('{path}')"
    query = sql.format(call=f"read_csv{args}", args=args)
    frames = pl.SQLContext({"t": pl.LazyFrame({"a": [1]})}).execute(query, eager=True)
    assert "SECRET" in str(frames.to_dicts())
    with pytest.raises(QueryNotAllowed, match=r"^read_csv\(\) is not allowed"):
        check_query(query)


@pytest.mark.parametrize("function", ["read_parquet", "read_json", "read_ndjson", "read_ipc"])
def test_every_table_function_is_refused(function: str) -> None:
    with pytest.raises(QueryNotAllowed, match=rf"^{function}\(\) is not allowed"):
        check_query(f"select * from {function}('https://example.com/x')")


@pytest.mark.parametrize(
    "sql",
    [
        "select * from silver_violations where description like '%read_csv(%'",
        "select 1 as x -- read_csv('/etc/passwd')",
        "select 1 /* read_csv( */ as x",
        "select $$read_csv('/etc/passwd')$$ as x",
        'select count(*) as read_count, 1 as "read_csv" from silver_violations',
    ],
)
def test_read_in_text_names_or_comments_is_not_a_call(sql: str) -> None:
    check_query(sql)


@pytest.mark.slow  # the console script starts its own Prefect API
def test_demo_says_what_it_loaded_and_why_in_80_columns(tmp_path: Path) -> None:
    """The console script as a new user runs it, in an 80-column terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENTUREOS_", "PREFECT_"))}
    env |= {"VENTUREOS_HOME": str(tmp_path / "demo"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env["COLUMNS"] = "80"
    script = Path(sys.executable).parent / "ventureos"
    result = subprocess.run([str(script), "demo"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    text = " ".join(" ".join(line.split()) for line in lines)
    for sentence in (
        "Read 1,155 records; 674 are violations:",
        "500 EPA ECHO facilities: 20 loaded as violations",
        "655 OSHA severe injury reports: 654 loaded as violations",
        "Set aside 481 of 1,155 records",
        "480 EPA ECHO facilities with no penalty are not violations",
        "1 OSHA severe injury report quarantined: unparseable JSON",
        "(a file the demo truncates on purpose)",
        "Serving store: 632 companies, 539 cities, 41 states (3,649 items",
        "Penalties: $380,765.00 over 20 EPA ECHO facilities. OSHA severe injury reports carry no penalties.",
        "Next, on this lakehouse:",
        "ventureos top --by penalty --entity state",
        "ventureos serving get COMPANY#walmart",
    ):
        assert sentence in text, sentence
    # The penalty leaderboard shows real penalties, formatted one way, and curated names.
    assert "│ 1  │ PJ KEATING COMPANY" in out and "│ $140,000.00 │" in out
    assert "│ 3  │ Trader Joe's" in out
    assert "│ 2 │ Walmart             │ 7          │ $0.00     │" in out
    assert "Entities items written" not in out
