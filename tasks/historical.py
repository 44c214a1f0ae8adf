"""historical-load steps as Prefect tasks: each one calls ``ventureos.load`` with the commit slots."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos import load as steps
from ventureos.historical import Load
from ventureos.lakehouse import current_lakehouse
from ventureos.load import BatchOutcome, LoadTarget


@task(name="prepare-historical-load", **IO_TASK)
def prepare_load(agency: str, dataset: str, source: str, mode: str) -> Load:
    return steps.prepare_load(current_lakehouse(), agency, dataset, source, mode)


@task(name="open-load-target", **IO_TASK)
def open_target(load: Load) -> LoadTarget:
    return steps.open_target(current_lakehouse(), load)


@task(name="load-batch", task_run_name="load-batch-{number}", **IO_TASK)
def load_batch(
    load: Load, target: LoadTarget, number: int, uri: str, frame: pl.DataFrame, run_id: str, now: datetime
) -> BatchOutcome:
    return steps.load_batch(
        current_lakehouse(), load, target, number, uri, frame, run_id, now, iceberg_commit_slot
    )


@task(name="swap-in-replace", **IO_TASK)
def commit_replace(load: Load, done: dict[int, dict[str, int]]) -> int:
    return steps.commit_replace(current_lakehouse(), load, done, iceberg_commit_slot)


@task(name="clean-up-load", **IO_TASK)
def clean_up(load: Load) -> None:
    steps.clean_up(current_lakehouse(), load)
