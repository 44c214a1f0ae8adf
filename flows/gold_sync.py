"""gold-sync: gold stats changed since the last sync -> the serving Entities table."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import utc_now
from tasks.gold import rebuild_gold
from tasks.serving import sync_entities


def _run_name() -> str:
    return f"gold-sync-{utc_now():%Y-%m-%dT%H%M}"


@flow(name="gold-sync", flow_run_name=_run_name)
def gold_sync(rebuild: bool = False) -> dict[str, Any]:
    """Push only the entities whose stats changed since the watermark; returns the counts.

    Args:
        rebuild: First recompute every gold row from current silver (repairs gold after a run died
            between its silver and gold commits and another run went on before its re-run).
    """
    rebuilt = rebuild_gold() if rebuild else None
    result = sync_entities()
    return result if rebuilt is None else result | {"rebuilt": rebuilt}
