"""What every flow does the same way: its run id and its clock, and the daily path's writes."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime

from prefect.runtime import flow_run

from tasks.gold import update_gold
from tasks.serving import update_live_feed
from tasks.silver import write_silver
from ventureos.batch import NormalizedBatch
from ventureos.report import RunReport, build_report


def run_id() -> str:
    """The Prefect flow-run id (lineage in silver), or a fresh id outside a flow run."""
    return str(flow_run.id or uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_day(value: str) -> str:
    """Validate a ``YYYY-MM-DD`` parameter early, with a message that names it."""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"date must be a calendar day as YYYY-MM-DD, got {value!r}") from None


class Stopwatch:
    """Seconds per step of a flow run and in all, for its report's timings."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.steps: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.steps[step] = self.steps.get(step, 0.0) + now - self.last
        self.last = now

    def timings(self) -> dict[str, float]:
        return self.steps | {"total": time.monotonic() - self.started}


def write_daily_path(
    flow: str, batches: list[NormalizedBatch], rid: str, now: datetime, day: str, watch: Stopwatch
) -> RunReport:
    """What daily-ingest and feed-poll do after normalizing: silver (quarantine and buffer included),
    gold, the live feed; then the run's report, with the timings of every step."""
    silver = write_silver(batches, rid, now, day)
    watch.lap("silver")
    update_gold(silver.plan)
    watch.lap("gold")
    update_live_feed(silver.plan)
    watch.lap("live_feed")
    report = build_report(flow, rid, batches, silver.plan, silver.written)
    report.timings = watch.timings()
    return report
