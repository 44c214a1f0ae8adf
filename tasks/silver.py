"""Write silver: the SCD2 merge (with its buffer dual write) and the quarantine, one commit per table."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.batch import NormalizedBatch
from ventureos.buffer import encode_buffer_files, write_buffer_files
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import QUARANTINE, VIOLATIONS
from ventureos.silver import (
    Scd2Plan,
    append_quarantine,
    commit_scd2,
    current_versions,
    deleted_before,
    encode_versions,
    plan_scd2,
    quarantine_frame,
    superseded_entities,
)


def incoming_rows(batches: list[NormalizedBatch]) -> pl.DataFrame:
    frames = [b.valid for b in batches if not b.valid.is_empty()]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


@task(name="write-silver", **IO_TASK)
def write_silver(
    batches: list[NormalizedBatch], run_id: str, now: datetime, ingest_date: str
) -> tuple[Scd2Plan, list[str]]:
    """Plan against current silver, write buffer files, then commit once.

    Buffer files go first and are named by content: a crash before the commit leaves a file that
    the re-run overwrites, never a silver row without its buffer copy. Retrying re-plans, so a commit
    conflict with another writer is resolved against the new state.
    """
    lakehouse = current_lakehouse()
    table = lakehouse.violations()
    incoming = incoming_rows(batches)
    if incoming.is_empty():
        return Scd2Plan.empty(), []
    current = current_versions(table, incoming["violation_id"].unique().to_list())
    plan = plan_scd2(incoming, current, now, run_id, deleted_before(table, incoming, current))
    plan.unchanged = pl.concat([plan.unchanged, superseded_entities(table, current, plan.unchanged)])
    if plan.is_noop:
        return plan, []
    encoded = encode_versions(table, plan)
    buffers = encode_buffer_files(table.schema(), plan.added)
    written = write_buffer_files(lakehouse.storage, buffers, ingest_date, encoded.write_id)
    with iceberg_commit_slot(VIOLATIONS):
        commit_scd2(table, plan, encoded)
    return plan, written


@task(name="write-quarantine", **IO_TASK)
def write_quarantine(batches: list[NormalizedBatch], plan: Scd2Plan, run_id: str, now: datetime) -> int:
    """All rejects of the run in one commit; returns how many were not already quarantined."""
    rejects = [(b, b.to_quarantine(plan.withdrawn)) for b in batches]
    frames = [
        quarantine_frame(records, b.agency, b.dataset, run_id, now)
        for b, records in rejects
        if not records.is_empty()
    ]
    if not frames:
        return 0
    with iceberg_commit_slot(QUARANTINE):
        return append_quarantine(current_lakehouse().quarantine(), pl.concat(frames))
