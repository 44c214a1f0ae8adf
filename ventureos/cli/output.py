"""Printing helpers shared by the command groups."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from ventureos.money import money_columns
from ventureos.summary import summarize_names

console = Console()


MONEY_COLUMNS = ("penalty_amount", "initial_penalty", "penalty_total", "total_penalties")
"""Columns printed as money (``ventureos.money``), whatever the frame: one format everywhere."""


def print_frame(frame: pl.DataFrame, title: str | None = None, max_rows: int = 50) -> None:
    frame = money_columns(frame, *(c for c in MONEY_COLUMNS if c in frame.columns))
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    if frame.height > max_rows:
        console.print(f"… {frame.height - max_rows} more rows")


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def print_written(names: list[str], label: str, verbose: bool = False) -> None:
    """One line: how many, and the first few names; ``verbose`` lists every name below it."""
    if not names:
        return
    console.print(
        f"{label}: {len(names)}" + ("" if verbose else f" ({summarize_names(names)})"), soft_wrap=True
    )
    if verbose:
        for name in names:
            console.print(f"  {name}", soft_wrap=True, highlight=False)


def print_report(report: dict[str, Any], verbose: bool = False) -> None:
    counts = pl.DataFrame(report["datasets"]) if report["datasets"] else pl.DataFrame()
    if not counts.is_empty():
        print_frame(counts, title=f"{report['flow']} {report['run_id']}")
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    t = report["totals"]
    status = "[green]reconciled[/green]" if report["reconciled"] else "[red]NOT RECONCILED[/red]"
    console.print(
        f"read {t['read']} = inserted {t['inserted']} + updated {t['updated']} + deleted {t['deleted']}"
        f" + unchanged {t['unchanged']} + stale {t.get('stale', 0)} + duplicates {t['duplicates']}"
        f" + quarantined {t['quarantined']}: {status}"
    )
    print_written(report.get("written", []), "files written", verbose)
