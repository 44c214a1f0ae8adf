"""Quarantine replay steps as Prefect tasks: read the selected rows, re-normalize them, release rows."""

from __future__ import annotations

import polars as pl
from prefect import task

from tasks.policy import IO_TASK, PURE_TASK, iceberg_commit_slot
from ventureos.lakehouse import current_lakehouse
from ventureos.quarantine import Replay, Selection, drop_stale, plan_replay, read_quarantine, release
from ventureos.schemas import QUARANTINE


@task(name="read-quarantine", **IO_TASK)
def load_quarantine(selection: Selection) -> pl.DataFrame:
    """The quarantine rows the replay selects (filters pushed down to Iceberg where they can be)."""
    return read_quarantine(current_lakehouse().quarantine(), selection)


@task(name="renormalize-quarantine", **PURE_TASK)
def renormalize(rows: pl.DataFrame) -> Replay:
    """Today's normalizers over the rows' payloads (``ventureos.quarantine.plan_replay``)."""
    return plan_replay(rows)


@task(name="drop-stale-records", **IO_TASK)
def keep_out_stale(replay: Replay, rows: pl.DataFrame) -> Replay:
    """The replay without the records a later delivery superseded in silver (``drop_stale``)."""
    drop_stale(replay, rows, current_lakehouse().violations())
    return replay


@task(name="release-quarantine", **IO_TASK)
def release_quarantine(quarantine_ids: list[str]) -> int:
    """Delete the rows whose records are in silver (or replaced by a row with a new reason); a retry,
    or a re-run after a crash, deletes what is still there."""
    with iceberg_commit_slot(QUARANTINE):
        return release(current_lakehouse().quarantine(), quarantine_ids)
