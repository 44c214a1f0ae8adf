"""Shared fixtures: an empty embedded home per test, one Prefect harness and one moto server per session."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

BUNDLED_SAMPLES = Path(__file__).resolve().parents[1] / "ventureos" / "data" / "samples"
MOTO_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


SLOW_FIXTURES = {"prefect_harness", "moto_endpoint", "aws_home", "server"}
"""Fixtures that start a server (Prefect API, moto, a Prefect server subprocess): their tests are ``slow``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as ``slow`` every test that needs a slow fixture (directly or through another fixture) and
    every ``aws`` test (a fixture may ask for the moto server only once it runs)."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.get_closest_marker("aws"):
            item.add_marker(pytest.mark.slow)


def _clear_ventureos_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VENTUREOS_"):
            monkeypatch.delenv(key)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded home (local lake, SQLite catalog) as VENTUREOS_HOME."""
    _clear_ventureos_env(monkeypatch)
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("VENTUREOS_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (a start costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3, SQS, DynamoDB over HTTP) on 127.0.0.1, started and stopped by the suite."""
    from moto.server import ThreadedMotoServer

    for key, value in MOTO_KEYS.items():
        os.environ.setdefault(key, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_home(
    home: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """The AWS shape against moto: lake and Iceberg warehouse on S3 (a fresh bucket per test).

    The Iceberg catalog stays SQLite; its data and metadata files live on S3.
    """
    bucket = f"lake-{abs(hash(request.node.nodeid)) % 10**10}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **_keys())
    s3.create_bucket(Bucket=bucket)
    for key, value in {
        "VENTUREOS_LAKE_URI": f"s3://{bucket}",
        "VENTUREOS_WAREHOUSE": f"s3://{bucket}/warehouse",
        "VENTUREOS_AWS_ENDPOINT_URL": moto_endpoint,
        "VENTUREOS_AWS_ACCESS_KEY_ID": "testing",
        "VENTUREOS_AWS_SECRET_ACCESS_KEY": "testing",
        "VENTUREOS_SERVING_BACKEND": "dynamodb",
        "VENTUREOS_QUEUE_BACKEND": "sqs",
        "VENTUREOS_SERVING_PREFIX": bucket,
        "VENTUREOS_QUEUE_NAME": bucket,
    }.items():
        monkeypatch.setenv(key, value)
    return bucket


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def run_cli(*args: str) -> int:
    """Run the ``ventureos`` command in-process; its exit code (0 when it returns)."""
    from ventureos.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


ATTACKS: list[tuple[str, str, str]] = []
"""(attack, outcome, invariants) rows the fault-injection suite records, printed at the session's end."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ATTACKS:
        return
    widths = [max(len(row[i]) for row in [("attack", "outcome", "invariants"), *ATTACKS]) for i in range(3)]
    terminalreporter.section("fault injection: attack -> outcome -> invariants")
    for row in [("attack", "outcome", "invariants"), tuple("-" * w for w in widths), *ATTACKS]:
        terminalreporter.write_line(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def latest_artifacts(keys: list[str]) -> dict[str, Any]:
    """The newest Prefect artifact of each key (via the API the session's harness serves)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, TaskRunFilter
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(  # every filter explicit: this server rejects nulls
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            limit=200,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
    newest: dict[str, Any] = {}
    for artifact in artifacts:
        newest.setdefault(artifact.key, artifact)
    return newest
