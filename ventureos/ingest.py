"""The one silver write: normalized batches -> SCD2 plan -> quarantine -> buffer files -> one commit.

daily-ingest, feed-poll and every historical-load batch write through ``write_silver``, always in this
order, which is what makes a crash anywhere safe to re-run:

1. **plan** the batch against the target's current versions (``Scd2Plan``);
2. **quarantine** its rejects and withdrawn deletes (ids come from content: a re-run stores them once);
3. **encode** the plan's versions once, and write the **buffer** files (named by the write's id: a
   re-run overwrites them);
4. **commit** closed and added versions in one Iceberg transaction (a historical batch's marks land in
   the same snapshot, so "written" and "recorded as done" are one fact).

Until step 4 silver is unchanged and a re-run plans the same batch again; after it, a re-run finds the
versions unchanged. Gold and the live feed follow from the returned plan (``Scd2Plan.touched``).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table

from ventureos.batch import NormalizedBatch
from ventureos.buffer import encode_buffer_files, write_buffer_files
from ventureos.lakehouse import Lakehouse
from ventureos.schemas import QUARANTINE
from ventureos.silver import (
    WITHDRAWN,
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

CommitSlot = Callable[..., AbstractContextManager[None]]
"""``slot(*table_names)``: held around a commit to those tables so concurrent writers queue instead of
conflicting. Tasks pass Prefect's global-concurrency slot; the library alone needs none."""


def no_slot(*tables: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class SilverTarget:
    """Where one write commits, and how the callers' writes differ (data, not code paths)."""

    table: Table
    """``silver.violations``, or a replace load's staging table."""
    ingest_date: str
    """The buffer folder (``ingest_date=...``) of the versions this write adds."""
    marks: Callable[[Scd2Plan], Mapping[str, str]] | None = None
    """The commit's snapshot summary properties, given the plan (a historical batch records its load id,
    number and counts there); with marks, a write that changes nothing still commits an empty snapshot
    to carry them."""
    write_id: uuid.UUID | None = None
    """Names the buffer files; by default the content of the plan (a re-run of the same input
    overwrites the same files)."""
    candidates: Callable[[pl.Series], pl.Series] | None = None
    """The ids of a batch that may have versions in the target (default: all of them). A load into a
    target that held none of the dataset's rows when it began narrows them to the ids it wrote itself."""
    withdrawn_reason: str = WITHDRAWN
    """Quarantine reason of a delete whose violation the target never held."""
    buffer_per_dataset: bool = True
    """True: one buffer file per agency and dataset (a daily or feed batch: few rows, one file per
    dataset as consolidation expects). False: the bytes of the commit's own data files, one per event
    year and dataset (a bulk batch: encoding 150k rows twice costs a tenth of a load)."""


@dataclass
class SilverWrite:
    """What one write did: its plan (counts, touched entities), the buffer files and new quarantine rows."""

    plan: Scd2Plan
    written: list[str]
    quarantined: int


def incoming_rows(batches: list[NormalizedBatch]) -> pl.DataFrame:
    frames = [b.valid for b in batches if not b.valid.is_empty()]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def plan_batches(
    table: Table,
    batches: list[NormalizedBatch],
    run_id: str,
    now: datetime,
    candidates: Callable[[pl.Series], pl.Series] | None = None,
) -> Scd2Plan:
    """The SCD2 plan of the batches' valid rows against ``table``'s current versions (read for the
    candidates only), records re-sent without their lookup row completed from those versions
    (``NormalizedBatch.recalled``), with the entities of versions that unchanged records' current
    UPDATEs closed."""
    incoming = incoming_rows(batches)
    if incoming.is_empty():
        return Scd2Plan.empty()
    ids = incoming["violation_id"].unique()
    maybe_known = candidates(ids) if candidates else ids
    # Each id first in its incoming row's partition (an id repeated in a batch: any of its rows').
    hints = incoming.filter(pl.col("violation_id").is_in(maybe_known.implode())).unique("violation_id")
    current = current_versions(table, hints["violation_id"], years=hints["event_date"].dt.year())
    if any(not b.incomplete.is_empty() for b in batches):
        incoming = pl.concat(
            [b.recalled(current) for b in batches if not b.valid.is_empty()], how="vertical_relaxed"
        )
    # Only an id with some version can have been deleted before (the others have none at all).
    maybe_closed = incoming.filter(pl.col("violation_id").is_in(maybe_known.implode()))
    plan = plan_scd2(incoming, current, now, run_id, deleted_before(table, maybe_closed, current))
    plan.unchanged = pl.concat([plan.unchanged, superseded_entities(table, current, plan.unchanged)])
    plan.quality_issues = incoming["quality_issues"]
    return plan


def write_quarantine(
    lakehouse: Lakehouse,
    batches: list[NormalizedBatch],
    plan: Scd2Plan,
    reason: str,
    run_id: str,
    now: datetime,
    slot: CommitSlot = no_slot,
) -> int:
    """Every reject of the batches and the plan's withdrawn deletes, in one commit; returns how many
    were not already quarantined."""
    frames = [
        quarantine_frame(records, b.agency, b.dataset, run_id, now)
        for b in batches
        if not (records := b.to_quarantine(plan.withdrawn, reason)).is_empty()
    ]
    if not frames:
        return 0
    with slot(QUARANTINE):
        return append_quarantine(lakehouse.quarantine(), pl.concat(frames))


WRITE_ID = "ventureos.write-id"
"""Snapshot summary property: the id naming the commit's buffer files."""
PLAN_ATTEMPTS = 5


def write_silver(
    lakehouse: Lakehouse,
    batches: list[NormalizedBatch],
    target: SilverTarget,
    run_id: str,
    now: datetime,
    slot: CommitSlot = no_slot,
) -> SilverWrite:
    """Plan, quarantine, encode once, buffer, commit: the module's fixed order (see above).

    Another writer committing to the table between this plan and its commit fails the commit (silver
    takes no rebased commits, ``catalog.SILVER_PROPERTIES``): the buffer files of the failed attempt go
    and the batch is planned again against the new state, so two runs delivering the same new violation
    insert it once.
    """
    table = target.table
    for attempt in itertools.count(1):
        table.refresh()
        plan = plan_batches(table, batches, run_id, now, target.candidates)
        quarantined = write_quarantine(lakehouse, batches, plan, target.withdrawn_reason, run_id, now, slot)
        marks = dict(target.marks(plan)) if target.marks else {}
        if plan.is_noop and not marks:
            return SilverWrite(plan, [], quarantined)
        encoded = encode_versions(table, plan, target.write_id)
        buffers = (
            encode_buffer_files(table.schema(), plan.added) if target.buffer_per_dataset else encoded.added
        )
        written = write_buffer_files(lakehouse.storage, buffers, target.ingest_date, encoded.write_id)
        try:
            with slot(".".join(table.name())):
                commit_scd2(table, plan, encoded, marks | {WRITE_ID: str(encoded.write_id)})
        except (CommitFailedException, ValidationException):
            forget_buffers(lakehouse, table, written, encoded.write_id)
            if attempt == PLAN_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.25) * attempt)
            continue
        return SilverWrite(plan, written, quarantined)


def forget_buffers(lakehouse: Lakehouse, table: Table, written: list[str], write_id: uuid.UUID) -> None:
    """Delete the buffer files of a commit that failed, unless another writer committed the very same
    versions (same content, same file names) meanwhile: buffer files only ever hold silver's versions."""
    table.refresh()
    if any(s.summary is not None and s.summary[WRITE_ID] == str(write_id) for s in table.metadata.snapshots):
        return
    for uri in written:
        lakehouse.storage.delete(lakehouse.storage.key_of(uri))
