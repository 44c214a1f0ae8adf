"""Retries with judgment: transient failures are retried with backoff and jitter, permanent ones not.

Only I/O tasks retry; pure steps fail once and report. No task caches: writes must never be skipped.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

TRANSIENT_AWS_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "SlowDown",
    "ProvisionedThroughputExceededException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "InternalFailure", "ServiceUnavailable", "TransactionConflictException",
}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts, dropped connections and Iceberg commit conflicts."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status >= 500
    return isinstance(
        exc,
        CommitFailedException
        | CommitStateUnknownException
        | BotoConnectionError
        | ReadTimeoutError
        | TimeoutError
        | ConnectionError,
    )


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
