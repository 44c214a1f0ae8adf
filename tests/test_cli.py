"""The ``ventureos`` command: demo, run, query, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ventureos.cli.query import QueryNotAllowed, check_query
from ventureos.demo import DEMO_DATE

from .conftest import latest_artifacts, run_cli


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
    """Bad arguments are usage errors (exit 2) naming their option, raised before any flow starts."""
    assert run_cli("run", "daily-ingest", "--date", "2024-13-01") == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "Error: Invalid value for --date: must be a calendar day as YYYY-MM-DD, got '2024-13-01'\n"
    )

    assert (
        run_cli("run", "daily-ingest", "--date", "2024-01-01", "--agency", "osha", "--dataset", "nope") == 2
    )
    assert "Invalid value for --dataset: unknown dataset 'osha/nope'" in capsys.readouterr().err
    assert run_cli("run", "daily-ingest", "--date", "2024-01-01", "--agency", "nope") == 2
    assert (
        "Invalid value for --agency: unknown dataset 'nope/*'; known: epa/echo, " in capsys.readouterr().err
    )
    assert run_cli("run", "daily-ingest", "--date", "2024-01-01", "--dataset", "echo") == 2
    assert capsys.readouterr().err.endswith(
        "Invalid value for --dataset: dataset needs agency (datasets are named per agency, e.g. --agency osha)\n"
    )
    assert run_cli("run", "monthly-consolidate", "--month", "2024-13") == 2
    assert "Invalid value for --month: month must be YYYY-MM, got '2024-13'" in capsys.readouterr().err
    assert run_cli("run", "yearly-consolidate", "--year", "24") == 2
    assert "Invalid value for --year: year must be YYYY, got '24'" in capsys.readouterr().err
    assert run_cli("run", "historical-load", "--agency", "osha", "--dataset", "nope") == 2
    assert "Invalid value for --agency/--dataset: unknown dataset 'osha/nope'" in capsys.readouterr().err

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
        "Serving store: 632 companies, 539 cities, 41 states (12,559 items",
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


# Start-up: checks before Prefect, commands that run no flow never import it --------------------------

_PROBE = """
import sys, time
from ventureos.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
print(f"PROBE prefect_imported={'prefect' in sys.modules} code={code}", file=sys.stderr)
"""


def cli_process(
    home: Path, *args: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``ventureos ARGS`` as its own process on ``home``; the result and its wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENTUREOS_", "PREFECT_"))}
    env |= {"VENTUREOS_HOME": str(home), "PREFECT_HOME": str(home.parent / "prefect"), "COLUMNS": "200"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    return done, time.monotonic() - started


def probe(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("PROBE ")]
    assert lines, done.stderr
    return lines[-1]


def test_a_bad_date_fails_fast_without_prefect(home: Path) -> None:
    done, seconds = cli_process(home, "run", "daily-ingest", "--date", "2024-13-45")
    assert probe(done) == "PROBE prefect_imported=False code=2"
    assert "Invalid value for --date: must be a calendar day as YYYY-MM-DD, got '2024-13-45'" in done.stderr
    # The bound is 2 s (bench-cli measures it); here a loose bound on a shared machine, while the
    # deterministic guarantee is the probe above: no Prefect import before the date is refused.
    assert seconds < 10


def test_a_missing_source_fails_before_the_flow(home: Path, tmp_path: Path) -> None:
    args = ("run", "historical-load", "--agency", "osha", "--dataset", "enforcement")
    done, _ = cli_process(home, *args, "--source", str(tmp_path / "nowhere"))
    assert probe(done) == "PROBE prefect_imported=False code=2"
    assert f"Invalid value for --source: no files under '{tmp_path / 'nowhere'}'" in done.stderr
    assert "0/?" not in done.stdout + done.stderr  # no progress bar for a load that cannot start
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x")
    done, _ = cli_process(home, *args, "--source", str(tmp_path / "notes"))
    assert "Invalid value for --source: historical loads read CSV files only" in done.stderr
    # The default source (bronze/historical/osha/enforcement) of an empty home.
    done, _ = cli_process(home, *args, "--mode", "replace")
    assert probe(done) == "PROBE prefect_imported=False code=2"
    assert "no files under 'bronze/historical/osha/enforcement'" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("run", "--help"),
        ("run", "historical-load", "--help"),
        ("query", "select 1 as one", "--json"),
        ("top", "--json"),
        ("feed", "status", "--json"),
        ("entity", "explain", "Wal-Mart Stores, Inc."),
        ("serving", "get", "COMPANY#walmart"),
        ("quarantine", "list", "--json"),
        ("status", "--json"),
    ],
)
def test_commands_that_run_no_flow_never_import_prefect(home: Path, args: tuple[str, ...]) -> None:
    done, _ = cli_process(home, *args)
    assert "prefect_imported=False" in probe(done), done.stderr


def test_listed_help_is_each_commands_own() -> None:
    """``--help`` lists commands without importing them: its text must match the real commands'."""
    from typer.core import TyperCommand

    from ventureos.cli import LAZY_COMMANDS, short_help

    for name, lazy in LAZY_COMMANDS.items():
        assert short_help(TyperCommand(name, help=lazy.help)) == short_help(lazy.load(name)), name


def test_lazy_groups_keep_their_subcommands(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A one-command group (``entity explain``) stays a group when loaded lazily."""
    assert run_cli("entity", "explain", "Wal-Mart Stores, Inc.", "--json") == 0
    assert json.loads(capsys.readouterr().out)["slug"] == "walmart"
    assert run_cli("quer", "select 1") == 2
    assert "No such command 'quer'. Did you mean 'query'?" in capsys.readouterr().err


def test_a_gold_sync_with_nothing_to_sync_starts_no_flow(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.gold_sync
    from ventureos.cli.run import gold_sync_noop
    from ventureos.lakehouse import current_lakehouse
    from ventureos.serving import open_store
    from ventureos.serving.sync import sync_entities

    from .test_gold import T1, T2, edit, real_rows
    from .test_gold import apply as apply_to_silver_and_gold

    assert gold_sync_noop() is None  # no serving tables yet: the flow creates them
    rows = real_rows(20)
    apply_to_silver_and_gold(rows, T1)
    lakehouse = current_lakehouse()
    store = open_store(lakehouse.settings)
    store.create_tables()
    assert gold_sync_noop() is None  # gold rows newer than the (absent) watermarks
    first = sync_entities(store, lakehouse.catalog)
    assert first.written > 0

    def no_flow(**_: object) -> None:
        raise AssertionError("the gold-sync flow started for a no-op")

    monkeypatch.setattr(flows.gold_sync, "gold_sync", no_flow)
    assert run_cli("run", "gold-sync", "--json") == 0
    expected = {"changed_rows": 0, "written": 0, "deleted": 0, "watermarks": first.watermarks}
    assert json.loads(capsys.readouterr().out) == expected
    assert run_cli("run", "gold-sync") == 0
    assert capsys.readouterr().out.startswith("gold-sync: 0 changed gold rows; 0 items written, 0 deleted;")

    apply_to_silver_and_gold(edit(rows, rows["source_id"][0], city="ELSEWHERE"), T2)
    assert gold_sync_noop() is None
    assert run_cli("run", "gold-sync") == 1  # the flow runs (here: the stand-in that refuses)


# Noise: summaries by default, every name with --verbose ----------------------------------------------


def _consolidation(files: int) -> dict[str, Any]:
    return {
        "flow": "monthly-consolidate",
        "scope": "2024-03",
        "rows_in": 200_000,
        "rows_added": 200_000,
        "duplicates": 0,
        "rows_out": 200_000,
        "late_rows": 0,
        "files_read": 900,
        "files_removed": 900,
        "written": [f"silver/violations/archive/month=2024-03/part-{i:04d}.parquet" for i in range(files)],
        "recovered": 0,
        "reconciled": True,
        "maintenance": [],
    }


def _historical(files: int) -> dict[str, Any]:
    written = [
        f"silver/violations/buffer/ingest_date=2024-03-05/osha-enforcement-{i:03d}.parquet"
        for i in range(files)
    ]
    return {
        "flow": "historical-load",
        "run_id": "r1",
        "totals": dict.fromkeys(
            ("read", "inserted", "updated", "deleted", "unchanged", "duplicates", "quarantined"), 0
        ),
        "reconciled": True,
        "datasets": [],
        "written": written,
        "skipped_batches": [],
    }


@pytest.mark.parametrize("build", [_consolidation, _historical])
def test_many_files_print_a_summary_and_verbose_lists_all(
    build: Callable[[int], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from ventureos.cli.maintain import print_consolidation
    from ventureos.cli.output import print_report

    show = print_consolidation if build is _consolidation else print_report
    report = build(641)
    names: list[str] = report["written"]
    show(report)
    out = capsys.readouterr().out
    assert "files written: 641 (" in out and "and 638 more" in out
    assert sum(name in out for name in names) == 3
    assert len(out.splitlines()) < 10
    show(report, verbose=True)
    out = capsys.readouterr().out
    assert "files written: 641" in out
    assert all(name in out for name in names)


def test_report_markdown_summarizes_written_files() -> None:
    from ventureos.report import RUN_COUNTS, RunReport
    from ventureos.summary import full_list_markdown

    counts = pl.DataFrame({"agency": ["osha"], "dataset": ["enforcement"]} | {c: [0] for c in RUN_COUNTS})
    names = [f"silver/violations/buffer/b-{i}.parquet" for i in range(108)]
    markdown = RunReport("historical-load", "r1", counts, written=names).markdown("x-written")
    assert "## Written (108)" in markdown
    assert sum(f"`{n}`" in markdown for n in names) == 3
    assert "and 105 more: every one in artifact `x-written`" in markdown
    few = RunReport("daily-ingest", "r1", counts, written=names[:2]).markdown("x-written")
    assert "x-written" not in few and all(f"`{n}`" in few for n in names[:2])
    full = full_list_markdown("historical-load files written", names)
    assert all(f"`{n}`" in full for n in names)


def test_consolidation_artifact_summarizes_written_files() -> None:
    from tasks.consolidate import consolidation_markdown
    from ventureos.archive import ConsolidationResult

    names = [f"silver/violations/archive/month=2024-03/part-{i:04d}.parquet" for i in range(641)]
    result = ConsolidationResult("monthly", "2024-03", rows_in=10, rows_added=10, written=names)
    markdown = consolidation_markdown(result, "monthly-consolidate-written")
    assert "rows out 0 in 641 file(s)" in markdown and "## Written (641)" in markdown
    assert sum(f"`{n}`" in markdown for n in names) == 3
    assert "and 638 more: every one in artifact `monthly-consolidate-written`" in markdown


def test_the_no_op_check_on_dynamodb(aws_home: str) -> None:
    """A missing DynamoDB table leaves the decision to the flow (which creates it)."""
    from ventureos.cli.run import gold_sync_noop
    from ventureos.lakehouse import current_lakehouse
    from ventureos.serving import open_store

    assert gold_sync_noop() is None
    open_store(current_lakehouse().settings).create_tables()
    assert gold_sync_noop() == {"changed_rows": 0, "written": 0, "deleted": 0, "watermarks": {}}


@pytest.mark.usefixtures("prefect_harness")
def test_report_artifacts_link_the_full_file_list() -> None:
    """The report artifact names the first files and the ``-written`` artifact that lists them all."""
    from prefect import flow

    from tasks.report import publish_report
    from ventureos.report import RUN_COUNTS, RunReport

    counts = pl.DataFrame({"agency": ["osha"], "dataset": ["enforcement"]} | {c: [0] for c in RUN_COUNTS})
    names = [f"silver/violations/buffer/b-{i:03d}.parquet" for i in range(108)]

    @flow(name="publish-many-files")
    def publish() -> None:
        publish_report(RunReport("historical-load", "r1", counts, written=names), key="cli-noise-test")

    publish()
    by_key = {
        k: str(a.data)
        for k, a in latest_artifacts(["cli-noise-test-report", "cli-noise-test-written"]).items()
    }
    assert sum(f"`{n}`" in by_key["cli-noise-test-report"] for n in names) == 3
    assert "every one in artifact `cli-noise-test-written`" in by_key["cli-noise-test-report"]
    assert all(f"`{n}`" in by_key["cli-noise-test-written"] for n in names)


@pytest.mark.usefixtures("prefect_harness")
def test_gold_sync_artifact_is_a_table_of_watermarks(home: Path) -> None:
    """One row per watermark and the counts in the description: no nested JSON in a table cell."""

    from flows.daily_ingest import daily_ingest
    from flows.gold_sync import gold_sync

    from .test_daily_ingest import sample_reports
    from .test_gold_sync import DAY1, stage_day

    stage_day(DAY1, sample_reports().head(5))
    daily_ingest(DAY1)
    result = gold_sync()
    artifact = latest_artifacts(["gold-sync"])["gold-sync"]
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert sorted(row["source"] for row in rows) == sorted(result["watermarks"])
    assert all(set(row) == {"source", "watermark"} for row in rows)
    assert artifact.description == (
        f"gold-sync: {result['changed_rows']} changed gold rows, {result['written']} items written, 0 deleted"
    )
