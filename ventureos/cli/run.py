"""``ventureos run FLOW ...``: run a flow in-process (Prefect's ephemeral API, no server needed)."""

from __future__ import annotations

from typing import Annotated

import typer

from normalizers import check_selection, get_dataset
from ventureos.cli.output import print_json, print_report

app = typer.Typer(no_args_is_help=True, help="Run a flow in-process and print its reconciliation.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")]


@app.command("daily-ingest")
def daily_ingest(
    date: Annotated[str, typer.Option(help="Bronze date folder, YYYY-MM-DD.")],
    agency: Annotated[str | None, typer.Option(help="Only this agency.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    as_json: JsonOption = False,
) -> None:
    from flows.common import parse_day
    from flows.daily_ingest import daily_ingest as flow

    check_selection(agency, dataset)
    report = flow(date=parse_day(date), agency=agency, dataset=dataset)
    print_json(report) if as_json else print_report(report)
    if not report["reconciled"]:
        raise typer.Exit(1)
    if report.get("missing_datasets"):  # loaded what arrived; an expected dataset did not (warned above)
        raise typer.Exit(3)


@app.command("monthly-consolidate")
def monthly_consolidate(
    month: Annotated[str | None, typer.Option(help="Ingest month YYYY-MM (default: previous month).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Buffer files of one ingest month -> archive month files (verified, then buffers deleted)."""
    from flows.monthly_consolidate import monthly_consolidate as flow
    from ventureos.archive import parse_month
    from ventureos.cli.maintain import print_consolidation

    report = flow(month=parse_month(month) if month else None)
    print_json(report) if as_json else print_consolidation(report)


@app.command("yearly-consolidate")
def yearly_consolidate(
    year: Annotated[str | None, typer.Option(help="Violation year YYYY (default: previous year).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Close the year before its July-1 grace.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A year's month files -> one immutable year file (after the July-1 grace unless --force)."""
    from flows.yearly_consolidate import yearly_consolidate as flow
    from ventureos.archive import parse_year
    from ventureos.cli.maintain import print_consolidation

    report = flow(year=parse_year(year) if year else None, force=force)
    print_json(report) if as_json else print_consolidation(report)


@app.command("gold-sync")
def gold_sync(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute all of gold from current silver first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Push the gold stats changed since the last sync to the serving Entities table."""
    from flows.gold_sync import gold_sync as flow
    from ventureos.cli.output import console

    result = flow(rebuild=rebuild)
    if as_json:
        print_json(result)
        return
    for change in result.get("rebuilt", []):
        console.print(
            f"rebuilt gold.{change['level']}_stats: {change['entities']} entities, {change['changed']} rows "
            f"changed, {change['removed']} removed"
        )
    console.print(
        f"gold-sync: {result['changed_rows']} changed gold rows; {result['written']} items written, "
        f"{result['deleted']} deleted; watermarks {result['watermarks']}"
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
) -> None:
    """One feed batch: receive, keep raw in bronze/feed, ingest like daily data, delete the messages."""
    from flows.feed_poll import feed_poll as flow

    report = flow(max_messages=max_messages, max_seconds=max_seconds)
    print_json(report) if as_json else print_report(report)
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
) -> None:
    """Bulk-load files into silver in batches of VENTUREOS_BATCH_ROWS; re-run to resume a failed load."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.historical_load import historical_load as flow
    from ventureos.cli.output import console
    from ventureos.historical import MODES, add_progress_listener

    get_dataset(agency, dataset)
    if mode not in MODES:
        raise typer.BadParameter(f"must be one of {', '.join(MODES)}", param_hint="--mode")
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
        print_report(report)
        if report["skipped_batches"]:
            console.print(
                f"skipped {len(report['skipped_batches'])} batches already committed by this load: "
                f"{report['skipped_batches']}"
            )
    if not report["reconciled"]:
        raise typer.Exit(1)
