"""Serving steps: the live feed after each daily/feed batch, and gold-sync's push to Entities."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from tasks.policy import IO_TASK
from ventureos.gold import current_silver_of
from ventureos.historical import LoadPlan, versions_before_load
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import from_live_source
from ventureos.serving import ServingStore, open_store
from ventureos.serving.feed import FEED_COLUMNS, apply_to_feed, refresh_feed
from ventureos.serving.sync import sync_entities as sync_entities_table
from ventureos.settings import Settings
from ventureos.silver import ENTITY_COLUMNS, Scd2Plan, current_versions


def ready_store(settings: Settings) -> ServingStore:
    """The serving store with its tables (created on first use; existing ones are only described)."""
    store = open_store(settings)
    store.create_tables()
    return store


@task(name="update-live-feed", **IO_TASK)
def update_live_feed(plan: Scd2Plan) -> dict[str, Any]:
    """Call after ``write_silver`` in daily-ingest and feed batches only (historical loads never do).

    Versions not from ``bronze/daily`` or ``bronze/feed`` are filtered out again inside. Re-running a
    day writes nothing, unless its first run crashed before this step: then the re-run repairs it.
    """
    if plan.touched.is_empty():
        return {"entities": 0, "written": 0, "deleted": 0}
    lakehouse = current_lakehouse()
    violations = lakehouse.violations()
    change = apply_to_feed(
        ready_store(lakehouse.settings),
        plan.added,
        plan.touched,
        lambda slugs, states, columns: current_silver_of(violations, slugs, states, columns),
        current_versions(violations, plan.unchanged["violation_id"].to_list(), FEED_COLUMNS),
    )
    return asdict(change)


@task(name="refresh-live-feed", **IO_TASK)
def refresh_live_feed(plan: LoadPlan) -> dict[str, Any]:
    """After a historical load: live violations it updated or removed leave the feed, and older live
    violations of their entities take their places (historical versions never enter it).

    Every run of the load does it (from silver as it was before the load), so a re-run repairs it.
    """
    lakehouse = current_lakehouse()
    violations = lakehouse.violations()
    before = versions_before_load(violations, plan, (*ENTITY_COLUMNS, "valid_from", "meta_source_uri"))
    live_before = before.filter(from_live_source())
    still = current_versions(
        violations, live_before["violation_id"].to_list(), ("violation_id", "valid_from")
    )
    gone = live_before.join(still, on=["violation_id", "valid_from"], how="anti")
    if gone.is_empty():
        return {"entities": 0, "written": 0, "deleted": 0}
    change = refresh_feed(
        ready_store(lakehouse.settings),
        gone.select(ENTITY_COLUMNS),
        lambda slugs, states, columns: current_silver_of(violations, slugs, states, columns),
    )
    return asdict(change)


@task(name="sync-entities", **IO_TASK)
def sync_entities() -> dict[str, Any]:
    """Gold rows changed since the watermark -> Entities items; a no-change sync writes nothing."""
    lakehouse = current_lakehouse()
    result = sync_entities_table(ready_store(lakehouse.settings), lakehouse.catalog).as_dict()
    create_table_artifact(table=[result], key="gold-sync", description="gold-sync: items written and deleted")
    return result
