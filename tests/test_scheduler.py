"""Schedules fire on a self-hosted Prefect server: its scheduler creates the runs, a worker runs them.

With SQLAlchemy 2.1 the server's scheduler fails on every loop (`Can't evaluate bulk DML statement`
in `_insert_scheduled_flow_runs`) and a schedule never creates a run; pyproject pins SQLAlchemy < 2.1.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .test_deployments import PREFECT, Server, prefect_server, stop

FLOW_MODULE = """
from prefect import flow


@flow(name="tick")
def tick() -> int:
    return 42
"""
WAIT = 60  # seconds, for each of: the scheduler's run, the worker finishing it


def scheduled_runs(server: Server, deployment_id: str) -> list[dict[str, Any]]:
    runs = server.post("/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}})
    return sorted((r for r in runs if r["auto_scheduled"]), key=lambda r: r["expected_start_time"])


def errors_in(log: Path) -> str:
    """The distinct exception lines of a log (the scheduler logs the same one on every loop)."""
    lines = log.read_text().splitlines()
    return "\n".join(dict.fromkeys(line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)))


@pytest.mark.slow
def test_an_interval_schedule_creates_a_run_that_a_worker_completes(tmp_path: Path) -> None:
    with prefect_server(tmp_path, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2") as server:
        code = tmp_path / "code"
        code.mkdir()
        (code / "tick_flow.py").write_text(FLOW_MODULE)
        server.post("/work_pools/", {"name": "scheduler-test", "type": "process"})
        flow_id = server.post("/flows/", {"name": "tick"})["id"]
        # Anchored a few seconds ahead: the first run falls due soon instead of up to a minute later.
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
        deployment = server.post(
            "/deployments/",
            {
                "name": "every-minute",
                "flow_id": flow_id,
                "entrypoint": "tick_flow.py:tick",
                "work_pool_name": "scheduler-test",
                "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(code)}}],
                "schedules": [
                    {"schedule": {"interval": 60, "anchor_date": anchor.isoformat()}, "active": True}
                ],
            },
        )
        worker_log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "scheduler-test", "--type", "process"],
            cwd=code,
            env=server.env | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + WAIT
            while not (runs := scheduled_runs(server, deployment["id"])):
                assert time.monotonic() < deadline, (
                    f"the scheduler created no run in {WAIT}s:\n{errors_in(tmp_path / 'server.log')}"
                )
                time.sleep(1)
            first = runs[0]
            assert datetime.fromisoformat(first["expected_start_time"]) == anchor
            assert first["created_by"]["type"] == "SCHEDULE"
            assert first["created_by"]["id"] == deployment["schedules"][0]["id"]

            run = server.wait(first["id"], {"COMPLETED", "FAILED", "CRASHED"}, timeout=WAIT)
            assert run["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            # Run when due: a worker submits runs up to its prefetch window (10 s by default) early.
            assert datetime.fromisoformat(run["start_time"]) >= anchor - timedelta(seconds=10)
        finally:
            stop(worker)
            worker_log.close()
