"""Iceberg maintenance of every silver and gold table, as one task the consolidation flows run."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import maintain_table, maintained_tables


@task(name="maintain-tables", **IO_TASK)
def maintain_tables(now: datetime) -> list[dict]:
    """Compaction and snapshot expiry per table, holding the table's commit slot so writers queue;
    a commit conflict with a writer outside the slot is retried (the task re-plans from the new state)."""
    lakehouse = current_lakehouse()
    lakehouse.violations()  # the silver table exists from the first run on
    logger, results = get_run_logger(), []
    for name in maintained_tables(lakehouse.catalog):
        with iceberg_commit_slot(name):
            result = maintain_table(lakehouse.catalog, name, lakehouse.settings, now)
        if result.skipped:
            logger.info("%s: catalog is S3 Tables, which compacts itself: compaction skipped", name)
        else:
            logger.info(
                "%s: %d -> %d data files, %d snapshots expired",
                name,
                result.files_before,
                result.files_after,
                result.snapshots_expired,
            )
        results.append(result.as_dict())
    return results
