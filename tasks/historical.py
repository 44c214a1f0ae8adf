"""historical-load steps as Prefect tasks: each one calls ``ventureos.load`` with the commit slots."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from prefect import task

from tasks.policy import IO_TASK, iceberg_commit_slot
from ventureos import load
from ventureos.historical import LoadPlan
from ventureos.lakehouse import current_lakehouse
from ventureos.load import BatchOutcome, LoadTarget


@task(name="plan-historical-load", **IO_TASK)
def plan_load(agency: str, dataset: str, source: str, mode: str) -> LoadPlan:
    return load.plan_load(current_lakehouse(), agency, dataset, source, mode)


@task(name="open-load-target", **IO_TASK)
def open_target(plan: LoadPlan) -> LoadTarget:
    return load.open_target(current_lakehouse(), plan)


@task(name="load-batch", task_run_name="load-batch-{number}", **IO_TASK)
def load_batch(
    plan: LoadPlan, target: LoadTarget, number: int, uri: str, frame: pl.DataFrame, run_id: str, now: datetime
) -> BatchOutcome:
    return load.load_batch(
        current_lakehouse(), plan, target, number, uri, frame, run_id, now, iceberg_commit_slot
    )


@task(name="swap-in-replace", **IO_TASK)
def commit_replace(plan: LoadPlan, done: dict[int, dict[str, int]]) -> int:
    return load.commit_replace(current_lakehouse(), plan, done, iceberg_commit_slot)


@task(name="clean-up-load", **IO_TASK)
def clean_up(plan: LoadPlan) -> None:
    load.clean_up(current_lakehouse(), plan)
