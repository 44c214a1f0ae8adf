"""Retries with judgment, per-run batch reuse and the Iceberg commit slot, on real exceptions and runs."""

from __future__ import annotations

import asyncio
import logging
import socket

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from polars.exceptions import SchemaError
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.states import exception_to_failed_state
from pyiceberg.exceptions import (
    CommitFailedException,
    ServiceUnavailableError,
    ValidationError,
    ValidationException,
)
from requests.exceptions import ReadTimeout
from sqlalchemy.exc import OperationalError

from tasks.policy import (
    IO_TASK,
    commit_limit_name,
    iceberg_commit_slot,
    retry_transient,
)
from ventureos.transient import is_transient


def client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutItem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (client_error("ThrottlingException", 400), True),
        (client_error("ProvisionedThroughputExceededException", 400), True),
        (client_error("SlowDown", 503), True),
        (client_error("Whatever", 502), True),
        (client_error("TooManyRequests", 429), True),
        (client_error("ValidationException", 400), False),
        (client_error("AccessDenied", 403), False),
        (client_error("NoSuchKey", 404), False),
        (CommitFailedException("Requirement failed: branch main has changed"), True),
        (ValidationException("Added data files were found matching the filter for snapshots [7]!"), True),
        (ServiceUnavailableError("catalog down"), True),
        (ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), True),
        (EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"), True),
        (ReadTimeout("read timed out"), True),
        (TimeoutError("timed out"), True),
        (ConnectionResetError("connection reset by peer"), True),
        (OSError("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate."), True),
        (OSError("AWS Error UNKNOWN (HTTP status 503) during GetObject operation"), True),
        (OSError("AWS Error ACCESS_DENIED during PutObject operation: Access Denied"), False),
        (FileNotFoundError("bronze/daily/osha/x.json"), False),
        (OperationalError("INSERT INTO iceberg_tables", {}, Exception("database is locked")), True),
        (OperationalError("SELECT", {}, Exception("no such table: iceberg_tables")), False),
        (ValueError("date must be YYYY-MM-DD, got '2024-13-01'"), False),
        (SchemaError("column penalty_amount has the wrong type"), False),
        (ValidationError("Cannot write incompatible dataset to table"), False),
        (KeyError("osha/unknown"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_is_transient_on_real_boto3_errors(moto_endpoint: str) -> None:
    """A missing bucket is permanent; a refused connection is transient."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="no-such-bucket-here", Key="x")
    assert not is_transient(missing.value)

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = Config(retries={"max_attempts": 1}, connect_timeout=2)
    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", config=config)
    with pytest.raises(EndpointConnectionError) as refused:
        dead.list_buckets()
    assert is_transient(refused.value)


def test_retry_transient_reads_the_failed_state() -> None:
    """The states Prefect builds from a raised exception, as the task engine hands them over."""
    conflict = asyncio.run(exception_to_failed_state(CommitFailedException("conflict")))
    bad_row = asyncio.run(exception_to_failed_state(ValueError("bad row")))
    assert retry_transient(None, None, conflict)
    assert not retry_transient(None, None, bad_row)


def test_io_task_policy_shape() -> None:
    assert IO_TASK["retries"] == 4
    assert IO_TASK["retry_jitter_factor"] == 0.5
    assert IO_TASK["retry_delay_seconds"](4) == [2, 4, 8, 16]  # exponential backoff
    assert IO_TASK["retry_condition_fn"] is retry_transient


@pytest.mark.usefixtures("prefect_harness")
def test_task_retries_transient_errors_but_not_permanent_ones() -> None:
    calls: list[str] = []

    @task(**(IO_TASK | {"retry_delay_seconds": 0}))
    def flaky(kind: str) -> str:
        calls.append(kind)
        if kind == "throttled" and calls.count(kind) < 3:
            raise client_error("ThrottlingException", 400)
        if kind == "bad":
            raise ValueError("bad input")
        return "ok"

    @flow
    def run(kind: str) -> str:
        return flaky(kind)

    assert run("throttled") == "ok"
    assert calls.count("throttled") == 3
    with pytest.raises(ValueError, match="bad input"):
        run("bad")
    assert calls.count("bad") == 1


@pytest.mark.usefixtures("prefect_harness")
def test_iceberg_commit_slot_is_held_while_committing_and_skipped_without_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = commit_limit_name("silver.policy_test")
    with caplog.at_level(logging.INFO, logger="tasks.policy"), iceberg_commit_slot("silver.policy_test"):
        pass  # no limit: nothing to acquire, the commit goes ahead
    # The harness is a Prefect server (PREFECT_API_URL set): a missing limit is a warning there.
    [record] = [r for r in caplog.records if name in r.getMessage()]
    assert record.levelno == logging.WARNING and "commits are not queued" in record.getMessage()

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        try:
            with iceberg_commit_slot("silver.policy_test"):
                assert client.read_global_concurrency_limit_by_name(name).active_slots == 1
            assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
        finally:
            client.delete_global_concurrency_limit_by_name(name)
