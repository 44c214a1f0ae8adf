"""Serving steps as Prefect tasks: the live feed after each daily/feed batch or historical load, and
gold-sync's push to Entities."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from tasks.policy import IO_TASK
from ventureos.historical import Load
from ventureos.lakehouse import current_lakehouse
from ventureos.serving import ServingStore, open_store
from ventureos.serving.live_feed import refresh_after_load, update_after_batch
from ventureos.serving.sync import sync_entities as sync_entities_table
from ventureos.settings import Settings
from ventureos.silver import Scd2Plan


def ready_store(settings: Settings) -> ServingStore:
    """The serving store with its tables (created on first use; existing ones are only described)."""
    store = open_store(settings)
    store.create_tables()
    return store


@task(name="update-live-feed", **IO_TASK)
def update_live_feed(plan: Scd2Plan) -> dict[str, Any]:
    """After ``write_silver`` in daily-ingest and feed-poll (historical loads never add to the feed).
    Re-running a day writes nothing, unless its first run crashed before this step: then it repairs."""
    lakehouse = current_lakehouse()
    return asdict(update_after_batch(ready_store(lakehouse.settings), lakehouse.violations(), plan))


@task(name="refresh-live-feed", **IO_TASK)
def refresh_live_feed(load: Load) -> dict[str, Any]:
    """After a historical load: the live violations it replaced leave the feed."""
    lakehouse = current_lakehouse()
    return asdict(refresh_after_load(ready_store(lakehouse.settings), lakehouse.violations(), load))


@task(name="sync-entities", **IO_TASK)
def sync_entities() -> dict[str, Any]:
    """Gold rows changed since the watermark -> Entities items; a no-change sync writes nothing."""
    lakehouse = current_lakehouse()
    result = sync_entities_table(ready_store(lakehouse.settings), lakehouse.catalog).as_dict()
    # The counts in the description, one row per watermark: no nested JSON in a cell.
    create_table_artifact(
        table=[{"source": source, "watermark": mark} for source, mark in result["watermarks"].items()],
        key="gold-sync",
        description=(
            f"gold-sync: {result['changed_rows']} changed gold rows, {result['written']} items written, "
            f"{result['deleted']} deleted"
        ),
    )
    return result
