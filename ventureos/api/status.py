"""``/status``: how fresh each dataset is, so a page can say so.

Per dataset: last ingest, last event date, current rows and freshness (``ventureos.status``, what
``ventureos status`` prints), plus the last run that committed rows of it and how many of that run's
records of the dataset went to quarantine. A run that failed before committing left nothing in the lake
and is not visible here (the orchestrator's UI has it).

Both reads scan narrow columns of silver and the quarantine table, so the answer is computed at most
once per ``STATUS_TTL_SECONDS`` per process and served from memory in between (its ``computed_at``
says when; ``Cache-Control`` lets clients keep it as long).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ventureos.api.common import plain_json, settings_of
from ventureos.lakehouse import Lakehouse
from ventureos.status import check_freshness

router = APIRouter(tags=["status"])

STATUS_TTL_SECONDS = 60.0
RUN_COLUMNS = ("agency", "dataset", "meta_run_id", "meta_ingest_timestamp")


@dataclass
class StatusCache:
    """The last computed answer and when (monotonic seconds); one per app."""

    answer: dict[str, Any] | None = None
    computed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def last_runs(lakehouse: Lakehouse) -> dict[str, dict[str, Any]]:
    """``agency/dataset`` -> the run of its newest silver version and that run's quarantined records."""
    silver = pl.from_arrow(lakehouse.violations().scan(selected_fields=RUN_COLUMNS).to_arrow())
    assert isinstance(silver, pl.DataFrame)
    newest = (
        silver.filter(pl.col("meta_run_id").is_not_null())
        .sort("meta_ingest_timestamp")
        .group_by("agency", "dataset")
        .agg(run_id=pl.col("meta_run_id").last(), at=pl.col("meta_ingest_timestamp").last())
    )
    quarantine = pl.from_arrow(
        lakehouse.quarantine().scan(selected_fields=("agency", "dataset", "run_id")).to_arrow()
    )
    assert isinstance(quarantine, pl.DataFrame)
    quarantined = quarantine.group_by("agency", "dataset", "run_id").len("quarantined")
    rows = newest.join(quarantined, on=["agency", "dataset", "run_id"], how="left")
    return {
        f"{r['agency']}/{r['dataset']}": {
            "run_id": r["run_id"],
            "at": r["at"].isoformat() if r["at"] else None,
            "quarantined": int(r["quarantined"] or 0),
        }
        for r in rows.iter_rows(named=True)
    }


def compute_status(lakehouse: Lakehouse, now: datetime) -> dict[str, Any]:
    runs = last_runs(lakehouse)
    datasets = [
        {
            "dataset": s.key,
            "status": s.status,
            "cadence_days": s.cadence_days,
            "last_ingest": s.last_ingest.isoformat() if s.last_ingest else None,
            "last_event_date": s.last_event_date.isoformat() if s.last_event_date else None,
            "current_rows": s.current_rows,
            "last_delivery": s.last_delivery,
            "age_hours": s.age_hours,
            "last_run": runs.get(s.key),
        }
        for s in check_freshness(lakehouse, now)
    ]
    return {"computed_at": now.isoformat(), "max_age_seconds": int(STATUS_TTL_SECONDS), "datasets": datasets}


@router.get("/status", summary="Per dataset: last ingest, last event date, rows, last run, freshness")
def status(request: Request) -> Response:
    cache: StatusCache = request.app.state.status_cache
    with cache.lock:
        if cache.answer is None or time.monotonic() - cache.computed >= STATUS_TTL_SECONDS:
            cache.answer = compute_status(Lakehouse(settings_of(request)), datetime.now(UTC))
            cache.computed = time.monotonic()
        answer = cache.answer
    return plain_json(answer, {"Cache-Control": f"public, max-age={int(STATUS_TTL_SECONDS)}"})
