"""``ventureos maintain``: compact small files, expire old snapshots and remove orphan files of every
silver/gold table, and the printing shared with ``ventureos run monthly-consolidate`` / ``yearly-consolidate``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import polars as pl
import typer

from ventureos.cli.output import console, print_frame, print_json, print_written


def print_maintenance(rows: list[dict[str, Any]]) -> None:
    if rows:
        print_frame(pl.DataFrame(rows), title="Iceberg maintenance")
    else:
        console.print("no silver or gold tables to maintain")


def print_consolidation(report: dict[str, Any], verbose: bool = False) -> None:
    status = "[green]reconciled[/green]" if report["reconciled"] else "[red]NOT RECONCILED[/red]"
    console.print(
        f"{report['flow']} {report['scope']}: rows in {report['rows_in']} = added {report['rows_added']}"
        f" + duplicates {report['duplicates']} ({status}); rows out {report['rows_out']}"
        f" in {len(report['written'])} file(s); late rows {report['late_rows']};"
        f" files removed {report['files_removed']}"
    )
    print_written(report["written"], "files written", verbose)
    print_maintenance(report["maintenance"])


def maintain(
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-table results as JSON.")] = False,
) -> None:
    """Compact partitions with many small data files, expire snapshots past the retention, remove orphan files."""
    # The task the consolidation flows run: same commit slots, retries and logs (run in-process).
    from tasks.maintenance import maintain_tables

    rows = maintain_tables(datetime.now(UTC))
    print_json(rows) if as_json else print_maintenance(rows)
