"""``ventureos status``: freshness of every dataset (no flow runs, no Prefect start-up)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer

from ventureos.cli.output import console, print_frame, print_json
from ventureos.lakehouse import current_lakehouse
from ventureos.status import check_freshness, describe_stale, parse_now, stale

STALE_EXIT = 3
"""Exit code when an expected dataset is stale (as daily-ingest's for a missing expected dataset)."""


def status(
    at: Annotated[
        str | None,
        typer.Option("--at", help="Judge freshness as of this ISO timestamp (default now, UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statuses as JSON.")] = False,
) -> None:
    """Per dataset: last ingest, last event date, current rows, age vs its cadence, OK/STALE.

    Exits 3 when an expected dataset is stale (cadences: VENTUREOS_DATASET_CADENCE_DAYS).
    """
    now = parse_now(at, datetime.now(UTC))
    statuses = check_freshness(current_lakehouse(), now)
    if as_json:
        print_json({"at": now.isoformat(), "datasets": [s.as_dict() for s in statuses]})
    else:
        rows = [s.as_dict() | {"dataset": s.key} for s in statuses]
        frame = pl.DataFrame(rows).drop("agency").select(
            "dataset", "status", "cadence_days", "last_ingest", "age_hours", "last_event_date",
            "current_rows", "last_delivery",
        )  # fmt: skip
        print_frame(frame, title=f"dataset freshness at {now.isoformat(timespec='minutes')}")
        console.print(describe_stale(statuses) or "every expected dataset is fresh")
    if stale(statuses):
        raise typer.Exit(STALE_EXIT)
