"""One run of a historical load, step by step: prepare it, open its target, write each batch through the
ingest boundary (``ventureos.ingest``), swap a replace in, clean up, and report.

The historical-load flow calls these steps in order (one Prefect task each, one per batch); the CLI and
tests can call them the same way without Prefect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from pyiceberg.table import Table

from normalizers import get_dataset
from ventureos.batch import normalize_raw_batch
from ventureos.bronze import RawBatch
from ventureos.historical import (
    MODES,
    SWAP_STARTED,
    Load,
    SeenIds,
    check_columns,
    count_rows,
    drop_staging,
    find_source_files,
    held_none,
    load_history,
    load_id,
    lookup_rows,
    raw_frame,
    stage_lookups,
    staging_table,
    sum_counts,
    swap_in,
)
from ventureos.ingest import CommitSlot, SilverTarget, no_slot, write_silver
from ventureos.lakehouse import Lakehouse
from ventureos.report import RUN_COUNTS, RunReport
from ventureos.schemas import VIOLATIONS
from ventureos.silver import LEFT_OUT_OF_REPLACE, SCD2_COUNTS, WITHDRAWN, Scd2Plan


@dataclass
class LoadTarget:
    """The table this run's batches commit to: silver (append) or the load's staging table (replace)."""

    table: Table
    was_empty: bool
    """The table held none of the dataset's rows when the load began: only ids in ``seen`` can have a
    version, so a batch reads back just those."""
    seen: SeenIds


@dataclass(frozen=True)
class BatchOutcome:
    number: int
    counts: dict[str, int]
    quality: dict[str, int]
    written: list[str]
    plan: Scd2Plan
    """What the batch did to silver (gold is updated from it when the load is one batch)."""


def prepare_load(lakehouse: Lakehouse, agency: str, dataset: str, source: str, mode: str) -> Load:
    """Find the files, fix the batches, and read which of them an earlier run of this load committed.

    A replace's staging table left by a run that died at its swap is dropped, never resumed from: once
    its files may belong to silver, a later replace and snapshot expiry may have deleted them.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    entry = get_dataset(agency, dataset)
    files = find_source_files(lakehouse.storage, source, entry)
    check_columns(files, entry)
    batch_rows = lakehouse.settings.batch_rows
    load = Load(
        load_id=load_id(agency, dataset, mode, batch_rows, files),
        agency=agency,
        dataset=dataset,
        mode=mode,
        batch_rows=batch_rows,
        files=files,
        rows_per_file=count_rows(files),
    )
    silver = lakehouse.violations()
    history = load_history(silver, load)
    done, complete = history.done, history.complete
    if mode == "replace" and not complete:
        staged = staging_table(lakehouse.catalog, load, silver, create=False)
        if staged is not None and staged.properties.get(SWAP_STARTED) == "true":
            drop_staging(lakehouse.catalog, load, lakehouse.storage)
            staged = None
        done = load_history(staged, load).done
    load = dataclasses.replace(load, done=done, complete=complete)
    if complete or len(done) >= load.batches:
        return load
    return dataclasses.replace(load, lookup_uris=stage_lookups(files, lakehouse.storage, load.lookup_keys))


def open_target(lakehouse: Lakehouse, load: Load) -> LoadTarget:
    """Silver for append, the staging table for replace; and the ids this load already wrote."""
    silver = lakehouse.violations()
    table = silver if load.mode == "append" else staging_table(lakehouse.catalog, load, silver)
    assert table is not None  # created on demand
    was_empty = held_none(table, load)
    return LoadTarget(table, was_empty, SeenIds.of_table(table, load) if was_empty else SeenIds())


def _scd2_counts(scd2: Scd2Plan) -> dict[str, int]:
    row = scd2.counts.select(SCD2_COUNTS).sum()
    return {c: int(row[c].item() or 0) for c in SCD2_COUNTS} if not scd2.counts.is_empty() else {}


def quality_counts(valid: pl.DataFrame) -> dict[str, int]:
    if valid.is_empty():
        return {}
    return dict(valid["quality_issues"].explode().drop_nulls().value_counts().iter_rows())


def load_batch(
    lakehouse: Lakehouse,
    load: Load,
    target: LoadTarget,
    number: int,
    uri: str,
    frame: pl.DataFrame,
    run_id: str,
    now: datetime,
    slot: CommitSlot = no_slot,
) -> BatchOutcome:
    """Normalize one batch (joined to its lookup rows) and write it through the ingest boundary, its
    counts in the commit's marks: a crash anywhere re-runs the batch whole."""
    join_on = get_dataset(load.agency, load.dataset).lookups
    lookups = {
        name: lookup_rows(u, frame, lakehouse.storage, join_on[name]) for name, u in load.lookup_uris.items()
    }
    batch = normalize_raw_batch(RawBatch(raw_frame(frame, uri), lookups=lookups), load.agency, load.dataset)
    read, quality, rejects = batch.records_read, quality_counts(batch.valid), batch.rejects.height
    counts: dict[str, int] = {}

    def marks(scd2: Scd2Plan) -> dict[str, str]:
        counts.update(
            {"read": read, "quarantined": rejects + scd2.withdrawn.height, "fresh": int(target.was_empty)}
            | dict.fromkeys(SCD2_COUNTS, 0)
            | _scd2_counts(scd2)
        )
        return load.markers(number, counts)

    silver_target = SilverTarget(
        table=target.table,
        ingest_date=now.date().isoformat(),
        marks=marks,
        write_id=load.write_id(number),
        candidates=target.seen.candidates if target.was_empty else None,
        withdrawn_reason=WITHDRAWN if load.mode == "append" else LEFT_OUT_OF_REPLACE,
        buffer_per_dataset=False,
    )
    del lookups, frame  # memory: from here on the normalized batch holds everything left to write
    written = write_silver(lakehouse, [batch], silver_target, run_id, now, slot)
    target.seen.add(written.plan.added["violation_id"])
    return BatchOutcome(number, counts, quality, written.written, written.plan)


def commit_replace(
    lakehouse: Lakehouse, load: Load, done: dict[int, dict[str, int]], slot: CommitSlot = no_slot
) -> int:
    """Kill and fill in one silver commit, then drop the staging table; returns the files swapped in."""
    silver = lakehouse.violations()
    staging = staging_table(lakehouse.catalog, load, silver)
    assert staging is not None
    with slot(VIOLATIONS):
        files = swap_in(silver, staging, load, done)
    drop_staging(lakehouse.catalog, load, lakehouse.storage)
    return files


def clean_up(lakehouse: Lakehouse, load: Load) -> None:
    """Lookup staging files (and a replace's staging table, once swapped) are not needed any more."""
    drop_staging(lakehouse.catalog, load, lakehouse.storage)


def add_quality(total: dict[str, int], more: dict[str, int]) -> None:
    for issue, rows in more.items():
        total[issue] = total.get(issue, 0) + rows


def load_report(
    load: Load,
    run_id: str,
    done: dict[int, dict[str, int]],
    quality: dict[str, int],
    extra: dict[str, Any],
) -> RunReport:
    """The run's report: the whole load's counts (batches of earlier runs included) and its quality."""
    totals = sum_counts(done)
    return RunReport(
        flow="historical-load",
        run_id=run_id,
        counts=pl.DataFrame([{"agency": load.agency, "dataset": load.dataset} | totals]).select(
            "agency", "dataset", *RUN_COUNTS
        ),
        quality=pl.DataFrame(
            {"issue": list(quality), "rows": list(quality.values())},
            schema={"issue": pl.String, "rows": pl.Int64},
        ).sort("rows", descending=True),
        extra={"load_id": load.load_id, "mode": load.mode, "batches": load.batches} | extra,
    )
