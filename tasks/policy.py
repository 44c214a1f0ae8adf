"""Retries with judgment: transient failures are retried with backoff and jitter, permanent ones not.

Only I/O tasks retry; pure steps fail once and report. ``IO_TASK`` never caches: a write must never be
skipped because an earlier run did it. ``BATCH_TASK`` is for the unit of work that a failed flow run
should not redo when it is retried: its result is persisted (to the lake, see docs/operations.md) and
reused only inside the same flow run, so retrying a run re-runs just the batches that failed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.tasks import exponential_backoff
from pyiceberg.exceptions import (
    CommitFailedException,
    CommitStateUnknownException,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    ValidationException,
)
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout as RequestsTimeout
from sqlalchemy.exc import OperationalError

TRANSIENT_AWS_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "SlowDown",
    "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "TransactionConflictException", "PriorRequestNotComplete",
}  # fmt: skip

TRANSIENT_TYPES = (
    CommitFailedException,  # another writer committed first: re-plan and commit again
    ValidationException,  # a rebased commit's delete meets the other writer's new files: the same conflict
    CommitStateUnknownException,
    ServiceUnavailableError,
    ServerError,
    TooManyRequestsError,
    BotoConnectionError,
    ReadTimeoutError,
    RequestsConnectionError,
    RequestsTimeout,
    TimeoutError,
    ConnectionError,
)

# pyarrow's S3 filesystem (our Storage) raises plain OSErrors that name the AWS error or HTTP status.
_ARROW_S3_TRANSIENT = re.compile(
    r"AWS Error (SLOW_DOWN|THROTTLING|NETWORK_CONNECTION|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|REQUEST_TIMEOUT)"
    r"|HTTP status (429|5\d\d)"
)
# The embedded SQLite catalog is locked while another process commits.
_SQLITE_BUSY = re.compile(r"database is locked|database is busy")


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts, dropped connections, Iceberg commit conflicts and a busy catalog.

    Everything else (bad input, schema violations, missing objects, permissions) is permanent: a
    retry would fail the same way, so the run fails at once and reports it.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status == 429 or status >= 500
    if isinstance(exc, OperationalError):
        return bool(_SQLITE_BUSY.search(str(exc)))
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    return type(exc) is OSError and bool(_ARROW_S3_TRANSIENT.search(str(exc)))


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
BATCH_TASK = IO_TASK | {
    # Same inputs and code inside the same flow run -> the persisted result is reused on a retry of
    # that run; any new run (different run id) does the work again.
    "cache_policy": INPUTS + TASK_SOURCE + RUN_ID,
    "persist_result": True,
}


def commit_limit_name(table: str) -> str:
    """Name of the global concurrency limit that serializes commits to one Iceberg table."""
    return f"iceberg-commit-{table}"


_log = logging.getLogger(__name__)
_reported_missing: set[str] = set()


def existing_limits(names: list[str]) -> list[str]:
    """The named global concurrency limits that exist (read requests only).

    Asking to occupy a slot of a missing limit is a write on the API: Prefect's embedded SQLite server
    answers it with 503 when busy and the client retries after ~2 s (4 s of a 2M-row load, measured).
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
