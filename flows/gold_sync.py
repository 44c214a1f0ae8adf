"""gold-sync: gold stats changed since the last sync -> the serving Entities table."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import utc_now
from tasks.serving import sync_entities


def _run_name() -> str:
    return f"gold-sync-{utc_now():%Y-%m-%dT%H%M}"


@flow(name="gold-sync", flow_run_name=_run_name)
def gold_sync() -> dict[str, Any]:
    """Push only the entities whose stats changed since the watermark; returns the counts."""
    return sync_entities()
