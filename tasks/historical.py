"""Historical-load steps: plan the load, open its target, load one batch, swap a replace in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from prefect import task
from pyiceberg.table import Table

from normalizers import get_dataset
from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos.batch import normalize_raw_batch
from ventureos.bronze import RawBatch
from ventureos.buffer import write_buffer_files
from ventureos.historical import (
    MODES,
    SWAP_STARTED,
    LoadPlan,
    SeenIds,
    check_columns,
    count_rows,
    drop_staging,
    find_source_files,
    is_fresh,
    load_history,
    load_id,
    lookup_rows,
    raw_frame,
    stage_lookups,
    staging_table,
    swap_in,
)
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import QUARANTINE, VIOLATIONS
from ventureos.silver import (
    COUNT_COLUMNS,
    LEFT_OUT_OF_REPLACE,
    WITHDRAWN,
    Scd2Plan,
    append_quarantine,
    commit_scd2,
    current_versions,
    deleted_before,
    encode_versions,
    plan_scd2,
    quarantine_frame,
)


@dataclass
class Target:
    """Where this run's batches commit: silver (append) or the load's staging table (replace)."""

    table: Table
    fresh: bool
    seen: SeenIds


@dataclass(frozen=True)
class BatchOutcome:
    number: int
    counts: dict[str, int]
    quality: dict[str, int]
    written: list[str]


@task(name="plan-historical-load", **IO_TASK)
def plan_load(agency: str, dataset: str, source: str, mode: str) -> LoadPlan:
    """Find the files, fix the batches, and read which of them an earlier run of this load committed."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    lakehouse, spec = current_lakehouse(), get_dataset(agency, dataset)
    files = find_source_files(lakehouse.storage, source, spec)
    check_columns(files, spec)
    batch_rows = lakehouse.settings.batch_rows
    plan = LoadPlan(
        load_id=load_id(agency, dataset, mode, batch_rows, files),
        agency=agency,
        dataset=dataset,
        mode=mode,
        batch_rows=batch_rows,
        files=files,
        rows_per_file=count_rows(files),
    )
    silver = lakehouse.violations()
    history = load_history(silver, plan)
    done, complete = history.done, history.complete
    if mode == "replace" and not complete:
        staged = staging_table(lakehouse.catalog, plan, silver, create=False)
        if staged is not None and staged.properties.get(SWAP_STARTED) == "true":
            # Left by a run that died at its swap, and silver does not hold the load (any more):
            # its files may be gone, start over.
            drop_staging(lakehouse.catalog, plan, lakehouse.storage)
            staged = None
        done = load_history(staged, plan).done
    plan = dataclasses.replace(plan, done=done, complete=complete)
    if complete or len(done) >= plan.batches:
        return plan
    return dataclasses.replace(plan, lookup_uris=stage_lookups(files, lakehouse.storage, plan.lookup_keys))


@task(name="open-load-target", **IO_TASK)
def open_target(plan: LoadPlan) -> Target:
    """Silver for append, the staging table for replace; and the ids this load already wrote."""
    lakehouse = current_lakehouse()
    silver = lakehouse.violations()
    table = silver if plan.mode == "append" else staging_table(lakehouse.catalog, plan, silver)
    assert table is not None  # created on demand
    fresh = is_fresh(table, plan)
    return Target(table, fresh, SeenIds.of_table(table, plan) if fresh else SeenIds())


def _scd2_counts(plan: Scd2Plan) -> dict[str, int]:
    row = plan.counts.select(COUNT_COLUMNS).sum()
    return {c: int(row[c].item() or 0) for c in COUNT_COLUMNS} if not plan.counts.is_empty() else {}


def _quality_counts(valid: pl.DataFrame) -> dict[str, int]:
    if valid.is_empty():
        return {}
    return dict(valid["quality_issues"].explode().drop_nulls().value_counts().iter_rows())


@task(name="load-batch", task_run_name="load-batch-{number}", **IO_TASK)
def load_batch(
    plan: LoadPlan, target: Target, number: int, uri: str, frame: pl.DataFrame, run_id: str, now: datetime
) -> BatchOutcome:
    """Normalize one batch, quarantine its rejects, write its buffer file, commit it with its mark.

    Quarantine and buffer writes are idempotent (ids and file names come from content) and happen
    before the one silver commit that marks the batch done: a crash anywhere re-runs the batch whole.
    """
    lakehouse = current_lakehouse()
    join_on = get_dataset(plan.agency, plan.dataset).lookups
    lookups = {
        name: lookup_rows(u, frame, lakehouse.storage, join_on[name]) for name, u in plan.lookup_uris.items()
    }
    batch = normalize_raw_batch(RawBatch(raw_frame(frame, uri), lookups=lookups), plan.agency, plan.dataset)
    quality = _quality_counts(batch.valid)
    target.table.refresh()
    scd2 = Scd2Plan.empty()
    if not batch.valid.is_empty():
        ids = batch.valid["violation_id"]
        candidates = target.seen.candidates(ids) if target.fresh else ids.unique()
        current = current_versions(target.table, candidates.unique().to_list())
        # Only a candidate can have been deleted before (the others have no version at all).
        maybe_closed = batch.valid.filter(pl.col("violation_id").is_in(candidates.implode()))
        scd2 = plan_scd2(
            batch.valid, current, now, run_id, deleted_before(target.table, maybe_closed, current)
        )
    rejects = batch.to_quarantine(scd2.withdrawn, WITHDRAWN if plan.mode == "append" else LEFT_OUT_OF_REPLACE)
    counts = {"read": batch.records_read, "quarantined": rejects.height}
    del batch, lookups  # memory: from here on the plan holds everything left to write
    if not rejects.is_empty():
        with iceberg_commit_slot(QUARANTINE):
            append_quarantine(
                lakehouse.quarantine(), quarantine_frame(rejects, plan.agency, plan.dataset, run_id, now)
            )
    encoded = encode_versions(target.table, scd2, write_id=plan.write_id(number))
    written = write_buffer_files(lakehouse.storage, encoded.added, now.date().isoformat(), encoded.write_id)
    counts |= dict.fromkeys(COUNT_COLUMNS, 0) | _scd2_counts(scd2) | {"fresh": int(target.fresh)}
    with iceberg_commit_slot(".".join(target.table.name())):
        commit_scd2(target.table, scd2, encoded, plan.markers(number, counts))
    target.seen.add(scd2.added["violation_id"])
    return BatchOutcome(number, counts, quality, written)


@task(name="swap-in-replace", **IO_TASK)
def commit_replace(plan: LoadPlan, done: dict[int, dict[str, int]]) -> int:
    """Kill and fill in one silver commit, then drop the staging table; returns the files swapped in."""
    lakehouse = current_lakehouse()
    silver = lakehouse.violations()
    staging = staging_table(lakehouse.catalog, plan, silver)
    assert staging is not None
    with iceberg_commit_slot(VIOLATIONS):
        files = swap_in(silver, staging, plan, done)
    drop_staging(lakehouse.catalog, plan, lakehouse.storage)
    return files


@task(name="clean-up-load", **IO_TASK)
def clean_up(plan: LoadPlan) -> None:
    """Lookup staging files (and a replace's staging table, once swapped) are not needed any more."""
    lakehouse = current_lakehouse()
    drop_staging(lakehouse.catalog, plan, lakehouse.storage)
