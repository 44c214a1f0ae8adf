"""``ventureos run FLOW ...``: run a flow in-process (Prefect's ephemeral API, no server needed).

Every argument and source is checked before Prefect is imported (``flows`` import it): a bad one fails
in well under a second as a usage error (exit 2) naming its option. A gold-sync with nothing to sync
returns without starting a flow.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from normalizers import Dataset

app = typer.Typer(no_args_is_help=True, help="Run a flow in-process and print its reconciliation.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="List every file written, not only the first few.")
]


# Checks before any flow starts -------------------------------------------------------------------


def check_day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise typer.BadParameter(
            f"must be a calendar day as YYYY-MM-DD, got {value!r}", param_hint="--date"
        ) from None


def check_month(value: str | None) -> str | None:
    from ventureos.archive import parse_month

    try:
        return parse_month(value) if value else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None


def check_year(value: str | None) -> str | None:
    from ventureos.archive import parse_year

    try:
        return parse_year(value) if value else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--year") from None


def check_selection(agency: str | None, dataset: str | None) -> None:
    """Filters name registered datasets: a typo fails, it does not load nothing."""
    import normalizers

    try:
        normalizers.check_selection(agency, dataset)
    except (KeyError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--dataset" if dataset else "--agency") from None


def check_dataset(agency: str, dataset: str) -> Dataset:
    import normalizers

    try:
        return normalizers.get_dataset(agency, dataset)
    except KeyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--agency/--dataset") from None


def check_mode(mode: str) -> str:
    from ventureos.historical import MODES

    if mode not in MODES:
        raise typer.BadParameter(f"must be one of {', '.join(MODES)}", param_hint="--mode")
    return mode


def check_source(source: str, entry: Dataset) -> None:
    """The source holds loadable files (listing only; the flow reads them)."""
    from ventureos.historical import HistoricalSourceError, find_source_files
    from ventureos.lakehouse import current_lakehouse

    try:
        find_source_files(current_lakehouse().storage, source, entry)
    except HistoricalSourceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--source") from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot list {source!r}: {exc}", param_hint="--source") from None


def gold_sync_noop() -> dict[str, Any] | None:
    """The result a gold-sync would return when no gold row or removal is newer than its watermark
    (nothing to write or delete), else None. Read-only: watermarks and a filtered scan per gold table."""
    from botocore.exceptions import ClientError

    from ventureos.lakehouse import current_lakehouse
    from ventureos.serving import open_store
    from ventureos.serving.base import MissingServingTable
    from ventureos.serving.sync import iso, nothing_to_sync, read_watermarks

    lakehouse = current_lakehouse()
    try:
        marks = read_watermarks(open_store(lakehouse.settings))
    except MissingServingTable:
        return None  # the flow creates the serving tables
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None  # DynamoDB's missing table: the flow creates it
        raise
    if not nothing_to_sync(marks, lakehouse.catalog):
        return None
    return {
        "changed_rows": 0,
        "written": 0,
        "deleted": 0,
        "watermarks": {source: iso(mark) for source, mark in marks.items()},
    }


# Commands ----------------------------------------------------------------------------------------


@app.command("daily-ingest")
def daily_ingest(
    date: Annotated[str, typer.Option(help="Bronze date folder, YYYY-MM-DD.")],
    agency: Annotated[str | None, typer.Option(help="Only this agency.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ingest one bronze date folder: normalize, quarantine, SCD2 into silver, gold, live feed."""
    day = check_day(date)
    check_selection(agency, dataset)
    from flows.daily_ingest import daily_ingest as flow
    from ventureos.cli.output import print_json, print_report

    report = flow(date=day, agency=agency, dataset=dataset)
    print_json(report) if as_json else print_report(report, verbose=verbose)
    if not report["reconciled"]:
        raise typer.Exit(1)
    if report.get("missing_datasets"):  # loaded what arrived; an expected dataset did not (warned above)
        raise typer.Exit(3)


@app.command("monthly-consolidate")
def monthly_consolidate(
    month: Annotated[str | None, typer.Option(help="Ingest month YYYY-MM (default: previous month).")] = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Buffer files of one ingest month -> archive month files (verified, then buffers deleted)."""
    checked = check_month(month)
    from flows.monthly_consolidate import monthly_consolidate as flow
    from ventureos.cli.maintain import print_consolidation
    from ventureos.cli.output import print_json

    report = flow(month=checked)
    print_json(report) if as_json else print_consolidation(report, verbose=verbose)


@app.command("yearly-consolidate")
def yearly_consolidate(
    year: Annotated[str | None, typer.Option(help="Violation year YYYY (default: previous year).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Close the year before its July-1 grace.")] = False,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """A year's month files -> one immutable year file (after the July-1 grace unless --force)."""
    checked = check_year(year)
    from flows.yearly_consolidate import yearly_consolidate as flow
    from ventureos.cli.maintain import print_consolidation
    from ventureos.cli.output import print_json

    report = flow(year=checked, force=force)
    print_json(report) if as_json else print_consolidation(report, verbose=verbose)


@app.command("gold-sync")
def gold_sync(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute all of gold from current silver first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Push the gold stats changed since the last sync to the serving Entities table."""
    from ventureos.cli.output import console, print_json

    result = None if rebuild else gold_sync_noop()
    if result is None:
        from flows.gold_sync import gold_sync as flow

        result = flow(rebuild=rebuild)
    if as_json:
        print_json(result)
        return
    for change in result.get("rebuilt", []):
        console.print(
            f"rebuilt gold.{change['level']}_stats: {change['entities']} entities, {change['changed']} rows "
            f"changed, {change['removed']} removed"
        )
    marks = ", ".join(f"{source} {mark}" for source, mark in sorted(result["watermarks"].items()))
    console.print(
        f"gold-sync: {result['changed_rows']} changed gold rows; {result['written']} items written, "
        f"{result['deleted']} deleted; watermarks: {marks or 'none yet'}"
    )


@app.command("rebuild-gold")
def rebuild_gold(as_json: JsonOption = False) -> None:
    """Recompute every gold row from current silver, then sync (= gold-sync --rebuild)."""
    gold_sync(rebuild=True, as_json=as_json)


@app.command("feed-poll")
def feed_poll(
    max_messages: Annotated[int, typer.Option(min=1, help="Messages in the batch at most.")] = 100,
    max_seconds: Annotated[float, typer.Option(min=0.1, help="Stop receiving after this long.")] = 60.0,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """One feed batch: receive, keep raw in bronze/feed, ingest like daily data, delete the messages."""
    from flows.feed_poll import feed_poll as flow
    from ventureos.cli.output import print_json, print_report

    report = flow(max_messages=max_messages, max_seconds=max_seconds)
    print_json(report) if as_json else print_report(report, verbose=verbose)
    if not report["reconciled"]:
        raise typer.Exit(1)


@app.command("historical-load")
def historical_load(
    agency: Annotated[str, typer.Option(help="Agency, e.g. osha.")],
    dataset: Annotated[str, typer.Option(help="Dataset, e.g. enforcement.")],
    source: Annotated[
        str | None,
        typer.Option(
            help="File, folder or prefix: a lake key, a local path or an s3:// URI "
            "(default bronze/historical/AGENCY/DATASET)."
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="append (SCD2 merge) or replace (atomic kill-and-fill).")
    ] = "append",
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Bulk-load files into silver in batches of VENTUREOS_BATCH_ROWS; re-run to resume a failed load."""
    entry = check_dataset(agency, dataset)
    check_mode(mode)
    from ventureos.layout import historical_prefix

    check_source(source or historical_prefix(agency, dataset), entry)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.historical_load import historical_load as flow
    from ventureos.cli.output import console, print_json, print_report, print_written
    from ventureos.historical import add_progress_listener

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=as_json) as bar:
        batches = bar.add_task(f"{agency}/{dataset} {mode}: batches", total=None)
        remove = add_progress_listener(
            lambda done, total, _: bar.update(batches, completed=done, total=total)
        )
        try:
            report = flow(agency=agency, dataset=dataset, source=source, mode=mode)
        finally:
            remove()
    if as_json:
        print_json(report)
    else:
        print_report(report, verbose=verbose)
        if report["skipped_batches"]:
            print_written(
                [str(number) for number in report["skipped_batches"]],
                "skipped batches already committed by this load",
                verbose=verbose,
            )
    if not report["reconciled"]:
        raise typer.Exit(1)
