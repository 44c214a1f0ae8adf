"""Which failures of the backends are transient (worth retrying with backoff) and which are permanent.

One table per kind of backend, combined by ``is_transient``. Transient: throttling, 5xx, timeouts,
dropped connections, Iceberg commit conflicts and a busy embedded catalog. Everything else (bad input,
schema violations, missing objects, permissions) is permanent: a retry would fail the same way.
Prefect's task retries (``tasks.policy``) and the backends' own retry loops (DynamoDB batch writes)
both ask this module, so they agree.
"""

from __future__ import annotations

import re

from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
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

# AWS APIs through boto3 (DynamoDB serving, SQS queue, Glue catalog): error codes that mean "try later".
# Any HTTP 429 or 5xx answer is transient too, whatever its code.
TRANSIENT_AWS_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "SlowDown",
    "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "TransactionConflictException", "PriorRequestNotComplete",
}  # fmt: skip

# Iceberg catalogs (pyiceberg): another writer committed first (re-plan and commit again), an unknown
# commit outcome, and the REST catalog's throttling and server errors.
ICEBERG_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    CommitFailedException,
    ValidationException,  # a rebased commit's delete meets the other writer's new files: the same conflict
    CommitStateUnknownException,
    ServiceUnavailableError,
    ServerError,
    TooManyRequestsError,
)

# The network under every HTTP backend (botocore, requests) and the builtin socket errors.
NETWORK_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    BotoConnectionError,
    ReadTimeoutError,
    RequestsConnectionError,
    RequestsTimeout,
    TimeoutError,
    ConnectionError,
)

TRANSIENT_TYPES = ICEBERG_TRANSIENT_TYPES + NETWORK_TRANSIENT_TYPES

# Lake storage on S3 (pyarrow's S3 filesystem) raises plain OSErrors that name the AWS error or HTTP status.
ARROW_S3_TRANSIENT = re.compile(
    r"AWS Error (SLOW_DOWN|THROTTLING|NETWORK_CONNECTION|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|REQUEST_TIMEOUT)"
    r"|HTTP status (429|5\d\d)"
)
# The embedded SQLite catalog is locked while another process commits.
SQLITE_BUSY = re.compile(r"database is locked|database is busy")


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a failure that a retry after a pause can cure (see the module docstring)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status == 429 or status >= 500
    if isinstance(exc, OperationalError):
        return bool(SQLITE_BUSY.search(str(exc)))
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    return type(exc) is OSError and bool(ARROW_S3_TRANSIENT.search(str(exc)))
