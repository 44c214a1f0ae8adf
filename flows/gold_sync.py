"""gold-sync: gold stats changed since the last sync -> the serving Entities table."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.serving import sync_entities


@flow(name="gold-sync")
def gold_sync() -> dict[str, Any]:
    """Push only the entities whose stats changed since the watermark; returns the counts."""
    return sync_entities()
