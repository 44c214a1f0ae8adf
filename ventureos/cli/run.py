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
