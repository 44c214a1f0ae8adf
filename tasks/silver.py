"""The silver write of daily-ingest and feed-poll as a Prefect task (retried on transient errors)."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.batch import NormalizedBatch
from ventureos.ingest import SilverTarget, SilverWrite
from ventureos.ingest import write_silver as write_batches
from ventureos.lakehouse import current_lakehouse


@task(name="write-silver", **IO_TASK)
def write_silver(batches: list[NormalizedBatch], run_id: str, now: datetime, ingest_date: str) -> SilverWrite:
    """All datasets of the run in one silver commit (``ventureos.ingest``). A retry plans again, so a
    commit conflict with another writer is resolved against the new state."""
    lakehouse = current_lakehouse()
    target = SilverTarget(lakehouse.violations(), ingest_date)
    return write_batches(lakehouse, batches, target, run_id, now, iceberg_commit_slot)
