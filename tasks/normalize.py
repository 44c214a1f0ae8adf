"""Normalize one dataset's raw batch (pure; no retries: bad input does not get better)."""

from __future__ import annotations

from prefect import task

from tasks.policy import PURE_TASK
from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import RawBatch


@task(name="normalize", **PURE_TASK)
def normalize_batch(raw: RawBatch, agency: str, dataset: str) -> NormalizedBatch:
    return normalize_raw_batch(raw, agency, dataset)
