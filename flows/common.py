"""What every flow does the same way: its run id and its clock."""

from __future__ import annotations

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
