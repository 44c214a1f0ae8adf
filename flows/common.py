"""What every flow does the same way: its run id and its clock."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime

from prefect.runtime import flow_run


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
        raise ValueError(f"date must be YYYY-MM-DD, got {value!r}") from None


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
