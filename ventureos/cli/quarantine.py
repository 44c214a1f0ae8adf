"""``ventureos quarantine list|replay``: what was set aside and why, and replaying it after a fix."""

from __future__ import annotations

from typing import Annotated, Any

import polars as pl
import typer

from ventureos.cli.output import console, print_frame, print_json, print_report

app = typer.Typer(no_args_is_help=True, help="Inspect and replay silver.violations_quarantine.")

AgencyOption = Annotated[str | None, typer.Option(help="Only this agency.")]
DatasetOption = Annotated[str | None, typer.Option(help="Only this dataset (needs --agency).")]
ReasonOption = Annotated[str | None, typer.Option(help="Only reasons containing this text.")]
SinceOption = Annotated[str | None, typer.Option(help="Only rows quarantined on or after YYYY-MM-DD.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _rows_json(rows: pl.DataFrame) -> list[dict[str, Any]]:
    return rows.with_columns(pl.col("quarantined_at").dt.to_string("%Y-%m-%dT%H:%M:%S%z")).to_dicts()


@app.command("list")
def list_rows(
    agency: AgencyOption = None,
    dataset: DatasetOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to show at most (counts cover all).")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Counts by reason per agency/dataset, then the newest rows (source, reason, time, payload excerpt)."""
    from ventureos.lakehouse import current_lakehouse
    from ventureos.quarantine import Selection, listing, parse_since, read_quarantine, reason_counts

    if dataset and not agency:
        raise typer.BadParameter("needs --agency (datasets are named per agency)", param_hint="--dataset")
    selection = Selection(agency, dataset, reason, parse_since(since))
    rows = read_quarantine(current_lakehouse().quarantine(), selection)
    counts, shown = reason_counts(rows), listing(rows, limit)
    if as_json:
        print_json({"total": rows.height, "counts": counts.to_dicts(), "rows": _rows_json(shown)})
        return
    if rows.is_empty():
        console.print("quarantine: no rows match")
        return
    print_frame(counts, title=f"quarantine: {rows.height} rows by reason")
    console.print(f"newest {shown.height} of {rows.height}:")
    for row in shown.iter_rows(named=True):
        when = row["quarantined_at"].strftime("%Y-%m-%d %H:%M") if row["quarantined_at"] else "?"
        console.print(
            f"{when}  {row['agency']}/{row['dataset']}  {row['reason']}\n  {row['source_uri']}\n  {row['payload']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command("replay")
def replay(
    agency: AgencyOption = None,
    dataset: DatasetOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-normalize quarantined records with today's normalizers; those that pass go to silver, gold and
    the live feed, then leave the quarantine. Runs the quarantine-replay flow in-process."""
    from normalizers import check_selection
    from ventureos.quarantine import parse_since

    check_selection(agency, dataset)
    parse_since(since)
    from flows.quarantine_replay import quarantine_replay as flow

    report = flow(agency=agency, dataset=dataset, reason=reason, since=since)
    if as_json:
        print_json(report)
    else:
        print_report(report)
        console.print(f"released from quarantine: {report['released']}")
        for why, count in report["not_replayable"].items():
            console.print(f"left in quarantine: {count} rows: {why}")
    if not report["reconciled"]:
        raise typer.Exit(1)
