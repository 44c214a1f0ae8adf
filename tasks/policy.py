"""Retries with judgment: transient failures are retried with backoff and jitter, permanent ones not.

What is transient is the library's call (``ventureos.transient.is_transient``); this module holds only
the Prefect side: the task options, the retry condition and the Iceberg commit slot. Only I/O tasks
retry; pure steps fail once and report. ``IO_TASK`` never caches: a write must never be
skipped because an earlier run did it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.tasks import exponential_backoff

from ventureos.transient import is_transient


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is transient."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


IO_TASK = {
    "cache_policy": NO_CACHE,
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
PURE_TASK = {"cache_policy": NO_CACHE}


def commit_limit_name(table: str) -> str:
    """Name of the global concurrency limit that serializes commits to one Iceberg table."""
    return f"iceberg-commit-{table}"


_log = logging.getLogger(__name__)
_reported_missing: set[str] = set()


def existing_limits(names: list[str]) -> list[str]:
    """The named global concurrency limits that exist (read requests only).

    Asking to occupy a slot of a missing limit is a write on the API, which Prefect's embedded SQLite
    server answers with 503 when busy (the client then waits and retries): read first, occupy only
    limits that exist.
    """
    found = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                if name not in _reported_missing:
                    _reported_missing.add(name)
                    # Expected with the in-process API (laptop, demo, tests); a warning against a server.
                    level = logging.WARNING if get_current_settings().api.url else logging.INFO
                    _log.log(level, "Concurrency limit %s does not exist: commits are not queued", name)
                continue
            found.append(name)
    return found


@contextmanager
def iceberg_commit_slot(*tables: str) -> Iterator[None]:
    """Hold the commit slot of each table while committing, so concurrent runs queue, not conflict.

    Operators create the limits (``prefect gcl create iceberg-commit-silver.violations --limit 1``);
    where one does not exist (a laptop, tests) its slot is skipped (logged once per process, as a
    warning when a Prefect server is configured) and the optimistic Iceberg commit plus the
    ``CommitFailedException`` retries keep the table consistent.
    Several tables are acquired together, in one request, so two writers cannot deadlock.
    """
    limits = existing_limits([commit_limit_name(t) for t in tables])
    if not limits:
        yield
        return
    with concurrency(limits, occupy=1, strict=False):
        yield
