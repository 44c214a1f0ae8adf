"""Iceberg maintenance of every silver and gold table, as one task: the consolidation flows and
``ventureos maintain`` both run it."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import maintain


@task(name="maintain-tables", **IO_TASK)
def maintain_tables(now: datetime) -> list[dict]:
    """Compaction and snapshot expiry per table, holding the table's commit slot so writers queue;
    a commit conflict with a writer outside the slot is retried (the task re-plans from the new state)."""
    lakehouse = current_lakehouse()
    lakehouse.violations()  # the silver table exists from the first run on
    logger = get_run_logger()
    results = maintain(lakehouse.catalog, lakehouse.settings, now, slot=iceberg_commit_slot)
    for result in results:
        if result.skipped:
            logger.info("%s: catalog is S3 Tables, which compacts itself: compaction skipped", result.table)
        else:
            logger.info(
                "%s: %d -> %d data files, %d snapshots expired",
                result.table,
                result.files_before,
                result.files_after,
                result.snapshots_expired,
            )
    return [result.as_dict() for result in results]
