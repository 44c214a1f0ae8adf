"""Iceberg maintenance of every silver and gold table, as one task the consolidation flows run."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from tasks.policy import IO_TASK
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import maintain


@task(name="maintain-tables", **IO_TASK)
def maintain_tables(now: datetime) -> list[dict]:
    """Compaction and snapshot expiry; commit conflicts with a concurrent writer are retried."""
    lakehouse = current_lakehouse()
    lakehouse.violations()  # the silver table exists from the first run on
    return [r.as_dict() for r in maintain(lakehouse.catalog, lakehouse.settings, now)]
