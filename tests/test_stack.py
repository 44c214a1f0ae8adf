"""`make stack` / `make stack-down` (deployments/stack.py) on a fresh state directory and port: the server
answers, the pool, queue, limits and */local deployments exist, a deployment runs to completion on the
stack's worker, a second `up` starts nothing, and `down` leaves no process and a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import pytest

from deployments.stack import port_free
from ventureos.lakehouse import current_lakehouse

from .test_deployments import (
    FLOWS,
    REPO,
    TIMEOUT,
    Server,
    clean_env,
    exists,
    free_port,
    run_deployment,
    sample_rows,
)

pytestmark = pytest.mark.slow
STACK = [sys.executable, str(REPO / "deployments" / "stack.py")]


def stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STACK, command], cwd=REPO, env=env, capture_output=True, text=True, timeout=2 * TIMEOUT
    )


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def test_stack_up_runs_a_deployment_and_down_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    home = tmp_path / "home"
    state_path = tmp_path / "stack" / "state.json"
    env = clean_env(
        STACK_DIR=str(tmp_path / "stack"),
        STACK_PORT=str(port),
        VENTUREOS_HOME=str(home),
        STACK_TIMEOUT=str(TIMEOUT),
    )
    url = f"http://127.0.0.1:{port}/api"
    recorded: dict[str, dict] = {}
    try:
        up = stack("up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout  # the UI URL
        recorded = json.loads(state_path.read_text())["processes"]
        assert set(recorded) == {"server", "worker"}

        api = httpx.Client(base_url=url, timeout=30)
        server = Server(url, clean_env(PREFECT_HOME=str(tmp_path / "client"), PREFECT_API_URL=url), home, api)
        assert api.get("/health").status_code == 200
        deployed = server.deployments()
        assert set(deployed) == {f"{flow}/local" for flow, (entry, _, _) in FLOWS.items() if exists(entry)}
        assert api.get("/work_pools/ventureos-local").json()["type"] == "process"
        assert api.get("/work_pools/ventureos-local/queues/consolidation").json()["concurrency_limit"] == 1
        limits = {limit["name"]: limit["limit"] for limit in server.post("/v2/concurrency_limits/filter", {})}
        for table in ("silver.violations", "silver.violations_quarantine", "gold.company_stats"):
            assert limits[f"iceberg-commit-{table}"] == 1

        again = stack("up", env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout
        assert json.loads(state_path.read_text())["processes"] == recorded  # no second server or worker

        day = "2024-03-05"
        bronze = home / "lake" / "bronze" / "daily" / "osha" / "severe_injury" / day
        bronze.mkdir(parents=True)
        sample_rows(12).write_csv(bronze / "reports.csv")
        flow_run_id = run_deployment(server, "daily-ingest/local", f"date={day}")
        run = server.wait(flow_run_id, {"COMPLETED", "FAILED", "CRASHED"})
        worker_log = (tmp_path / "stack" / "worker.log").read_text()[-4000:]
        assert run["state_type"] == "COMPLETED", worker_log
        monkeypatch.setenv("VENTUREOS_HOME", str(home))
        silver = pl.from_arrow(current_lakehouse().violations().scan().to_arrow())
        assert silver.filter(pl.col("is_current")).height == 12
        api.close()
    finally:
        down = stack("down", env)
        for entry in recorded.values():  # only if `down` failed: leave nothing behind
            if running(entry["pid"]):
                os.killpg(entry["pgid"], signal.SIGKILL)
    assert down.returncode == 0, down.stdout + down.stderr
    assert recorded and not any(running(entry["pid"]) for entry in recorded.values())
    assert port_free(port)
    assert not state_path.exists()
    twice = stack("down", env)
    assert twice.returncode == 0 and "not running" in twice.stdout
