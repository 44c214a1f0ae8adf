"""Iceberg maintenance of every silver and gold table, as one task the consolidation flows run."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import maintain_table, maintained_tables


@task(name="maintain-tables", **IO_TASK)
def maintain_tables(now: datetime) -> list[dict]:
    """Compaction and snapshot expiry per table, holding the table's commit slot so writers queue;
    a commit conflict with a writer outside the slot is retried (the task re-plans from the new state)."""
    lakehouse = current_lakehouse()
    lakehouse.violations()  # the silver table exists from the first run on
    results = []
    for name in maintained_tables(lakehouse.catalog):
        with iceberg_commit_slot(name):
            table = lakehouse.catalog.load_table(name)
            results.append(maintain_table(table, lakehouse.settings, now).as_dict())
    return results
