"""``ventureos run FLOW ...``: run a flow in-process (Prefect's ephemeral API, no server needed)."""

from __future__ import annotations

from typing import Annotated

import typer

from normalizers import get_dataset
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

    if agency and dataset:
        get_dataset(agency, dataset)
    report = flow(date=parse_day(date), agency=agency, dataset=dataset)
    print_json(report) if as_json else print_report(report)
    if not report["reconciled"]:
        raise typer.Exit(1)


@app.command("monthly-consolidate")
def monthly_consolidate(
    month: Annotated[str | None, typer.Option(help="Ingest month YYYY-MM (default: previous month).")] = None,
    as_json: JsonOption = False,
) -> None:
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
    from flows.yearly_consolidate import yearly_consolidate as flow
    from ventureos.archive import parse_year
    from ventureos.cli.maintain import print_consolidation

    report = flow(year=parse_year(year) if year else None, force=force)
    print_json(report) if as_json else print_consolidation(report)


@app.command("gold-sync")
def gold_sync(as_json: JsonOption = False) -> None:
    """Push the gold stats changed since the last sync to the serving Entities table."""
    from flows.gold_sync import gold_sync as flow
    from ventureos.cli.output import console

    result = flow()
    if as_json:
        print_json(result)
    else:
        console.print(
            f"gold-sync: {result['changed_rows']} changed gold rows; {result['written']} items written, "
            f"{result['deleted']} deleted; watermark {result['watermark']}"
        )
