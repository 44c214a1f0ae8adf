"""Gold step of every ingest path: the entities a committed batch touched get their stats recomputed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.gold import COMMIT_TABLES, rebuild_gold_tables, update_gold_tables
from ventureos.lakehouse import current_lakehouse
from ventureos.silver import Scd2Plan


@task(name="update-gold", **IO_TASK)
def update_gold(plan: Scd2Plan) -> list[dict[str, Any]]:
    """Call after ``write_silver`` with its plan; one commit per gold table that changed.

    Idempotent: a retry (e.g. after an Iceberg commit conflict) moves the stored partials from where
    they were last stored and stamps ``updated_at`` again, so no row lands below a gold table's
    gold-sync watermark. A silver commit whose gold step never ran is caught up here too.
    """
    lakehouse = current_lakehouse()
    with iceberg_commit_slot(*COMMIT_TABLES):
        changes = update_gold_tables(
            lakehouse.catalog,
            lakehouse.violations(),
            plan,
            datetime.now(UTC),
            lakehouse.storage.polars_storage_options,
        )
    return [asdict(change) for change in changes]


@task(name="rebuild-gold", **IO_TASK)
def rebuild_gold() -> list[dict[str, Any]]:
    """Every entity from a scan of all current silver: after a bulk swap of silver (historical replace),
    or by hand (e.g. after a deploy that changed how spellings or severity classes are derived).
    Unchanged rows are not rewritten."""
    lakehouse = current_lakehouse()
    with iceberg_commit_slot(*COMMIT_TABLES):
        changes = rebuild_gold_tables(
            lakehouse.catalog,
            lakehouse.violations(),
            datetime.now(UTC),
            lakehouse.storage.polars_storage_options,
        )
    return [asdict(change) for change in changes]
