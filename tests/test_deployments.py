"""prefect.yaml checked for real: a local Prefect server, both work pools, `prefect deploy --all`, then a
process worker that runs daily-ingest end to end and retries a failed historical load.

Everything goes through the Prefect CLI and REST API in subprocesses, as an operator would do it
(deployments/README.md). Image build/push is skipped: the test deploys a copy of prefect.yaml without
those steps (there is no Docker engine here). Deployments whose flow module does not exist yet are
left out of that copy and listed in the skip reason of their check.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import polars as pl
import pytest
import yaml

from ventureos.gold import GOLD_NAMESPACE
from ventureos.historical import STAGING_NAMESPACE
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import SILVER_NAMESPACE
from ventureos.serving.base import TABLES as SERVING_TABLES

from .conftest import BUNDLED_SAMPLES, _keys

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
DEPLOY_ENV = {
    "ECR_REGISTRY": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "IMAGE_TAG": "test-tag",
    "AWS_ACCOUNT_ID": "123456789012",
    "AWS_REGION": "us-east-1",
    "ECS_VPC_ID": "vpc-0ddd",
    "ECS_SUBNET_A": "subnet-0aaa",
    "ECS_SUBNET_B": "subnet-0bbb",
    "ECS_SECURITY_GROUP": "sg-0ccc",
    "LAKE_BUCKET": "ventureos-lake-test",
    "TABLE_BUCKET": "ventureos-tables-test",
    "VENTUREOS_CODE_DIR": str(REPO),
}
# flow -> (entrypoint, parameters required, schedule kind and value)
FLOWS: dict[str, tuple[str, list[str], tuple[str, Any]]] = {
    "daily-ingest": ("flows/daily_ingest.py:daily_ingest", [], ("cron", "0 6 * * *")),
    "historical-load": ("flows/historical_load.py:historical_load", ["agency", "dataset"], ("none", None)),
    "feed-poll": ("flows/feed_poll.py:feed_poll", [], ("interval", 300.0)),
    "monthly-consolidate": ("flows/monthly_consolidate.py:monthly_consolidate", [], ("cron", "0 3 1 * *")),
    "yearly-consolidate": ("flows/yearly_consolidate.py:yearly_consolidate", [], ("cron", "0 4 1 7 *")),
    "gold-sync": ("flows/gold_sync.py:gold_sync", [], ("cron", "30 7 * * *")),
    "status": ("flows/status.py:status", [], ("cron", "0 8 * * *")),
}
# Flows that change gold -> the state events after which gold-sync runs.
GOLD_CHANGERS = {
    "daily-ingest": ["prefect.flow-run.Completed", "prefect.flow-run.Incomplete"],
    "historical-load": ["prefect.flow-run.Completed"],
    "feed-poll": ["prefect.flow-run.Completed"],
}
TIMEOUT = 240  # generous: a loaded 2-core machine


def exists(entrypoint: str) -> bool:
    return (REPO / entrypoint.split(":")[0]).is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    env: dict[str, str]
    home: Path
    api: httpx.Client

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> str:
        done = subprocess.run(
            [PREFECT, *args],
            cwd=REPO,
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def post(self, path: str, body: dict[str, Any]) -> Any:
        # The server answers 503 to errors it deems retryable (e.g. SQLite busy): retried, as
        # Prefect's own client does.
        for _ in range(10):
            response = self.api.post(path, json=body)
            if response.status_code != 503:
                break
            time.sleep(1)
        response.raise_for_status()
        return response.json()

    def deployments(self) -> dict[str, dict[str, Any]]:
        flows = {f["id"]: f["name"] for f in self.post("/flows/filter", {})}
        return {f"{flows[d['flow_id']]}/{d['name']}": d for d in self.post("/deployments/filter", {})}

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        return self.post("/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}})

    def wait(self, flow_run_id: str, states: set[str], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Poll until the flow run reaches one of ``states`` (terminal state types)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api.get(f"/flow_runs/{flow_run_id}").json()
            if run["state_type"] in states:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {flow_run_id} still {run['state_type']} after {timeout}s")

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VENTUREOS_"))}
    return env | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO"} | extra


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, with its children (its own session)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def prefect_server(base: Path, **settings: str) -> Iterator[Server]:
    """`prefect server start` on a free port with its own database under ``base`` (plus ``settings``,
    e.g. scheduler intervals); stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = clean_env(
        PREFECT_HOME=str(base / "server-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{base / 'server.db'}",
        **settings,
    )
    log = (base / "server.log").open("wb")
    process = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = httpx.Client(base_url=url, timeout=30)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert process.poll() is None, (base / "server.log").read_text()
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start"
            time.sleep(1)
        home = base / "ventureos"
        (home / "lake").mkdir(parents=True)
        yield Server(url, clean_env(PREFECT_HOME=str(base / "client-home"), PREFECT_API_URL=url), home, api)
    finally:
        api.close()
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect")) as running:
        yield running


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both pools, the queue and limits from the operator guide, then `prefect deploy --all`."""
    # The ECS pool through the CLI: its type must come from the installed prefect-aws. The rest of
    # the guide's setup through the API (each CLI start costs seconds on a loaded machine).
    server.cli(
        "work-pool", "create", "ventureos-ecs", "--type", "ecs",
        "--base-job-template", "deployments/ecs-base-job-template.json",
    )  # fmt: skip
    server.post("/work_pools/", {"name": "ventureos-local", "type": "process"})
    for pool in ("ventureos-ecs", "ventureos-local"):
        server.post(f"/work_pools/{pool}/queues", {"name": "consolidation", "concurrency_limit": 1})
    server.post("/v2/concurrency_limits/", {"name": "iceberg-commit-silver.violations", "limit": 1})

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert config["build"] and config["push"]  # what the trimmed copy leaves out
    del config["build"], config["push"]
    config["deployments"] = [d for d in config["deployments"] if exists(d["entrypoint"])]
    trimmed = tmp_path_factory.mktemp("deploy") / "prefect.yaml"
    trimmed.write_text(yaml.safe_dump(config, sort_keys=False))
    server.cli("--no-prompt", "deploy", "--all", "--prefect-file", str(trimmed), env=DEPLOY_ENV)
    return server.deployments()


@pytest.mark.parametrize("flow", FLOWS)
def test_deploy_creates_both_variants(flow: str, deployed: dict[str, dict[str, Any]]) -> None:
    entrypoint, required, (kind, value) = FLOWS[flow]
    if not exists(entrypoint):
        pytest.skip(f"{entrypoint} does not exist yet; its deployments are in prefect.yaml")
    ecs, local = deployed[f"{flow}/ecs"], deployed[f"{flow}/local"]
    for deployment, pool in ((ecs, "ventureos-ecs"), (local, "ventureos-local")):
        assert deployment["entrypoint"] == entrypoint
        assert deployment["work_pool_name"] == pool
        schema = deployment["parameter_openapi_schema"]
        assert schema.get("required", []) == required
        assert all(p.get("description") for p in schema["properties"].values()), schema  # shown in the UI
        assert "ventureos" in deployment["tags"]
        schedules = [s["schedule"] for s in deployment["schedules"]]
        if kind == "none":
            assert schedules == []
        else:
            assert [s.get(kind) for s in schedules] == [value]
    assert [s["active"] for s in ecs["schedules"]] == [True] * len(ecs["schedules"])
    assert [s["active"] for s in local["schedules"]] == [False] * len(local["schedules"])
    assert local["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
    assert ecs["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/ventureos"}}
    ]
    job = ecs["job_variables"]
    assert job["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/ventureos-worker:test-tag"
    assert job["cpu"] >= 1024 and job["memory"] >= 4096
    assert job["task_role_arn"] == "arn:aws:iam::123456789012:role/ventureos-flow-task"
    assert job["execution_role_arn"] == "arn:aws:iam::123456789012:role/ventureos-flow-execution"
    assert job["cloudwatch_logs_options"]["awslogs-group"] == "/ventureos/flows"
    assert job["vpc_id"] == "vpc-0ddd"
    assert job["network_configuration"]["subnets"] == ["subnet-0aaa", "subnet-0bbb"]
    assert job["env"]["VENTUREOS_LAKE_URI"] == "s3://ventureos-lake-test"
    assert (
        job["env"]["VENTUREOS_WAREHOUSE"]
        == "arn:aws:s3tables:us-east-1:123456789012:bucket/ventureos-tables-test"
    )
    assert job["env"]["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "s3-bucket/ventureos-results"


def test_deploy_concurrency_and_triggers(server: Server, deployed: dict[str, dict[str, Any]]) -> None:
    for name in ("historical-load/ecs", "gold-sync/ecs"):
        assert deployed[name]["global_concurrency_limit"]["limit"] == 1
        assert deployed[name]["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    for name in ("monthly-consolidate/ecs", "yearly-consolidate/ecs"):
        if name in deployed:
            assert deployed[name]["work_queue_name"] == "consolidation"
    queue = server.api.get("/work_pools/ventureos-ecs/queues/consolidation").json()
    assert queue["concurrency_limit"] == 1
    ecs_pool = server.api.get("/work_pools/ventureos-ecs").json()
    assert ecs_pool["type"] == "ecs"
    assert ecs_pool["base_job_template"]["variables"]["properties"]["cluster"]["default"] == "ventureos"

    for name in ("gold-sync/ecs", "gold-sync/local"):  # never two syncs at once: a new one waits
        assert deployed[name]["global_concurrency_limit"]["limit"] == 1
        assert deployed[name]["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    for name in ("status/ecs", "status/local"):
        assert deployed[name]["global_concurrency_limit"]["limit"] == 1
        assert deployed[name]["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"

    automations = {a["name"]: a for a in server.post("/automations/filter", {})}
    for pool, suffix in (("ecs", ""), ("local", "-local")):
        for flow, events in GOLD_CHANGERS.items():
            automation = automations[f"gold-sync-after-{flow}{suffix}"]
            trigger = automation["trigger"]
            assert automation["enabled"] and trigger["posture"] == "Reactive"
            assert sorted(trigger["expect"]) == sorted(events)
            assert trigger["match"] == {"prefect.resource.id": "prefect.flow-run.*"}
            assert trigger["match_related"] == [
                {"prefect.resource.role": "flow", "prefect.resource.name": flow},
                {"prefect.resource.role": "work-pool", "prefect.resource.name": f"ventureos-{pool}"},
            ]
            (action,) = automation["actions"]
            assert (action["type"], action["deployment_id"]) == (
                "run-deployment",
                deployed[f"gold-sync/{pool}"]["id"],
            )
    assert sorted(n for n in automations if n.startswith("gold-sync-after-")) == sorted(
        f"gold-sync-after-{flow}{suffix}" for flow in GOLD_CHANGERS for suffix in ("", "-local")
    )


@pytest.fixture(scope="module")
def worker(server: Server, deployed: dict[str, dict[str, Any]]) -> Iterator[Path]:
    """A process worker for the local pool, on an embedded lake in tmp (4-row historical batches)."""
    env = server.env | {
        "VENTUREOS_HOME": str(server.home),
        "VENTUREOS_BATCH_ROWS": "4",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(server.home / "lake" / "prefect-results"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    log = (server.home / "worker.log").open("wb")
    process = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "ventureos-local", "--type", "process"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield server.home
    finally:
        stop(process)
        log.close()


def sample_rows(n: int) -> pl.DataFrame:
    path = BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv"
    return pl.read_csv(path, infer_schema=False).head(n)


def run_deployment(server: Server, name: str, *params: str) -> str:
    out = server.cli("deployment", "run", name, *(p for kv in params for p in ("--param", kv)))
    return next(line.split("UUID:")[1].strip() for line in out.splitlines() if "UUID:" in line)


def test_daily_ingest_runs_end_to_end_on_a_process_worker(
    server: Server, worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = "2024-03-05"
    bronze = worker / "lake" / "bronze" / "daily" / "osha" / "severe_injury" / day
    bronze.mkdir(parents=True)
    sample_rows(12).write_csv(bronze / "reports.csv")

    flow_run_id = run_deployment(server, "daily-ingest/local", f"date={day}")
    run = server.wait(flow_run_id, {"COMPLETED", "FAILED", "CRASHED"})
    assert run["state_type"] == "COMPLETED", (worker / "worker.log").read_text()[-4000:]
    assert run["name"] == f"daily-ingest-{day}"
    artifacts = server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert {"daily-ingest-all-all-report", "daily-ingest-all-all-counts"} <= {a["key"] for a in artifacts}

    monkeypatch.setenv("VENTUREOS_HOME", str(worker))
    silver = pl.from_arrow(current_lakehouse().violations().scan().to_arrow())
    assert silver.filter(pl.col("is_current")).height == 12
    assert set(silver["meta_run_id"].to_list()) == {flow_run_id}


def test_retrying_a_failed_historical_load_reruns_only_the_failed_batches(
    server: Server, worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files of 8 rows, 4-row batches: the second file has a ragged row, so batches 0-1 commit and
    the run fails reading batch 2. Fixed in place (same size, so the same load), the run is retried
    from Prefect: only batches 2 and 3 run in the second attempt."""
    if not exists(FLOWS["historical-load"][0]):
        pytest.skip("flows/historical_load.py does not exist yet")
    source = worker / "lake" / "bronze" / "historical" / "osha" / "severe_injury"
    source.mkdir(parents=True)
    rows = sample_rows(40).slice(20, 16)  # ids the daily test did not load
    rows.head(8).write_csv(source / "part-1.csv")
    good = rows.tail(8).write_csv()
    upa = rows["UPA"][10]
    ragged = good.replace(f",{upa},", f",{upa[:2]},{upa[3:]},", 1)  # one more field, same size
    assert len(ragged) == len(good) and ragged != good
    (source / "part-2.csv").write_text(ragged)

    flow_run_id = run_deployment(server, "historical-load/local", "agency=osha", "dataset=severe_injury")
    failed = server.wait(flow_run_id, {"COMPLETED", "FAILED", "CRASHED"})
    assert failed["state_type"] == "FAILED"
    assert failed["name"] == "historical-load-osha-severe_injury-append"
    assert "part-2.csv: batch 2" in failed["state"]["message"]
    monkeypatch.setenv("VENTUREOS_HOME", str(worker))
    table = current_lakehouse().violations()
    loaded = pl.from_arrow(table.scan().to_arrow()).filter(pl.col("meta_run_id") == flow_run_id)
    assert loaded.height == 8  # the two batches of part-1.csv are committed

    (source / "part-2.csv").write_text(good)
    server.cli("flow-run", "retry", flow_run_id)
    retried = server.wait(flow_run_id, {"COMPLETED", "FAILED", "CRASHED"})
    assert retried["state_type"] == "COMPLETED", (worker / "worker.log").read_text()[-4000:]
    assert retried["run_count"] == 2

    attempts: dict[str, list[int]] = {}
    for task_run in server.task_runs(flow_run_id):
        if task_run["name"].startswith("load-batch-"):
            attempts.setdefault(task_run["name"], []).append(task_run["flow_run_run_count"])
    assert attempts == {"load-batch-0": [1], "load-batch-1": [1], "load-batch-2": [2], "load-batch-3": [2]}

    table.refresh()
    silver = pl.from_arrow(table.scan().to_arrow()).filter(pl.col("meta_run_id") == flow_run_id)
    assert silver.height == 16
    assert silver["source_id"].n_unique() == 16
    report = next(
        a
        for a in server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
        if a["key"] == "historical-load-osha-severe-injury-report"
    )
    assert "read 16 = inserted 16" in report["data"]  # the report counts the whole load


def test_operator_guide_names_what_the_test_creates() -> None:
    guide = (REPO / "deployments" / "README.md").read_text()
    for command in (
        "prefect work-pool create ventureos-ecs --type ecs --base-job-template deployments/ecs-base-job-template.json",
        "prefect work-pool create ventureos-local --type process",
        "prefect work-queue create consolidation --pool ventureos-ecs --limit 1",
        "prefect gcl create iceberg-commit-silver.violations --limit 1",
        "prefect --no-prompt deploy --all",
        "prefect flow-run retry",
    ):
        assert command in guide
    assert shutil.which("prefect", path=str(Path(PREFECT).parent))


def test_gold_sync_followed_every_flow_that_changes_gold(
    server: Server, worker: Path, deployed: dict[str, dict[str, Any]]
) -> None:
    """The automations from prefect.yaml ran gold-sync/local after daily-ingest/local (an Incomplete
    run: no OSHA enforcement files), after the retried historical-load/local and after a feed-poll/local."""
    if not server.flow_runs(deployed["daily-ingest/local"]["id"]):
        pytest.skip("needs the daily-ingest run of this module")
    daily = server.flow_runs(deployed["daily-ingest/local"]["id"])[0]
    assert (daily["state_type"], daily["state_name"]) == ("COMPLETED", "Incomplete")
    assert daily["state"]["message"] == "expected dataset(s) missing for 2024-03-05: osha/enforcement"
    poll = run_deployment(server, "feed-poll/local", "max_seconds=1")
    assert server.wait(poll, {"COMPLETED", "FAILED", "CRASHED"})["state_type"] == "COMPLETED"

    automations = {a["id"]: a["name"] for a in server.post("/automations/filter", {})}
    expected = {f"gold-sync-after-{flow}-local" for flow in GOLD_CHANGERS}
    deadline = time.monotonic() + TIMEOUT
    while True:
        runs = server.flow_runs(deployed["gold-sync/local"]["id"])
        # A run an automation created carries "automation <id>, action 0, invocation <id>" as its key.
        keys = {r["id"]: (r["idempotency_key"] or "").split(",")[0] for r in runs}
        by = {automations.get(keys[r["id"]].removeprefix("automation ")): r for r in runs}
        if expected <= set(by):
            break
        assert time.monotonic() < deadline, f"gold-sync runs only by {sorted(map(str, by))}"
        time.sleep(1)
    for name in sorted(expected):
        run = server.wait(by[name]["id"], {"COMPLETED", "FAILED", "CRASHED"})
        assert run["state_type"] == "COMPLETED", name
        assert run["name"].startswith("gold-sync-")


# Static checks of the deployment assets (no server needed) --------------------------------------

IAM = sorted((REPO / "deployments" / "iam").glob("*.json"))
# Actions that take no resource-level permission: "*" is the only valid Resource for them.
RESOURCELESS = {
    "ecr:GetAuthorizationToken",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    "ecs:ListTaskDefinitions",
}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("path", IAM, ids=lambda p: p.name)
def test_iam_policy_is_least_privilege(path: Path) -> None:
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Sid"]
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        assert all(a != "*" and not a.endswith(":*") for a in actions), f"{statement['Sid']}: wildcard action"
        if "*" in resources:
            assert set(actions) <= RESOURCELESS, f"{statement['Sid']}: '*' resource for {actions}"
        for resource in resources:
            if resource.startswith("arn:aws:s3:::"):  # the lake bucket, or one prefix of it: never all
                assert re.fullmatch(r"arn:aws:s3:::\$\{LAKE_BUCKET\}(/[a-z-]+(/[a-z-]+)*/\*)?", resource), (
                    resource
                )


def test_task_role_reaches_every_store_the_flows_use() -> None:
    policy = json.loads((REPO / "deployments" / "iam" / "flow-task-role.json").read_text())
    granted = {
        (action, resource)
        for s in policy["Statement"]
        for action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    }
    lake = "arn:aws:s3:::${LAKE_BUCKET}"
    assert ("s3:GetObject", f"{lake}/bronze/*") in granted
    assert ("s3:PutObject", f"{lake}/bronze/*") not in granted  # bronze is immutable
    assert ("s3:PutObject", f"{lake}/bronze/feed/*") in granted
    for prefix in ("silver", "staging", "warehouse", "prefect-results"):
        assert ("s3:DeleteObject", f"{lake}/{prefix}/*") in granted
    tables = "arn:aws:dynamodb:${AWS_REGION}:${AWS_ACCOUNT_ID}:table/${SERVING_PREFIX}"
    assert ("dynamodb:BatchWriteItem", f"{tables}-Entities") in granted
    assert ("dynamodb:BatchWriteItem", f"{tables}-Projects") not in granted
    assert ("sqs:DeleteMessage", "arn:aws:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:${QUEUE_NAME}") in granted
    assert any(a == "s3tables:UpdateTableMetadataLocation" for a, _ in granted)


def test_task_role_drops_only_staging_tables_and_creates_only_the_projects_stores() -> None:
    """Replace loads drop their staging table; nothing else is ever dropped. Tables, queues and
    namespaces the code creates on first use may be created, under the project's names only."""
    policy = json.loads((REPO / "deployments" / "iam" / "flow-task-role.json").read_text())
    namespaces = [SILVER_NAMESPACE, GOLD_NAMESPACE, STAGING_NAMESPACE]
    tables = "arn:aws:dynamodb:${AWS_REGION}:${AWS_ACCOUNT_ID}:table/${SERVING_PREFIX}"
    queue = "arn:aws:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:${QUEUE_NAME}"
    glue = "arn:aws:glue:${AWS_REGION}:${AWS_ACCOUNT_ID}"

    def statements(action: str) -> list[dict[str, Any]]:
        return [s for s in policy["Statement"] if action in as_list(s["Action"])]

    def namespace_condition(statement: dict[str, Any]) -> list[str]:
        return as_list(statement.get("Condition", {}).get("StringEquals", {}).get("s3tables:namespace", []))

    (drop,) = statements("s3tables:DeleteTable")
    assert drop.get("Condition") == {"StringEquals": {"s3tables:namespace": STAGING_NAMESPACE}}
    (create,) = statements("s3tables:CreateTable")
    assert namespace_condition(create) == namespaces
    (glue_drop,) = statements("glue:DeleteTable")
    assert as_list(glue_drop["Resource"]) == [
        f"{glue}:catalog",
        f"{glue}:database/{STAGING_NAMESPACE}",
        f"{glue}:table/{STAGING_NAMESPACE}/*",
    ]
    # What pyiceberg's Glue catalog calls: load, create, commit, list (maintenance), namespaces.
    for action in ("GetDatabase", "CreateDatabase", "GetTables", "GetTable", "CreateTable", "UpdateTable"):
        (statement,) = statements(f"glue:{action}")
        assert sorted(as_list(statement["Resource"])) == sorted(
            [f"{glue}:catalog"]
            + [f"{glue}:database/{n}" for n in namespaces]
            + [f"{glue}:table/{n}/*" for n in namespaces]
        )
    assert not statements("glue:DeleteDatabase") and not statements("s3tables:DeleteNamespace")

    (dynamodb,) = statements("dynamodb:CreateTable")
    assert as_list(dynamodb["Resource"]) == [f"{tables}-{t}" for t in SERVING_TABLES]
    (sqs,) = statements("sqs:CreateQueue")
    assert as_list(sqs["Resource"]) == [queue, f"{queue}-dlq"]
    assert not statements("dynamodb:DeleteTable") and not statements("sqs:DeleteQueue")


def test_ecs_job_variables_exist_in_the_base_job_template() -> None:
    template = json.loads((REPO / "deployments" / "ecs-base-job-template.json").read_text())
    variables = template["variables"]["properties"]
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    ecs = [d for d in config["deployments"] if d["work_pool"]["name"] == "ventureos-ecs"]
    assert len(ecs) == len(FLOWS)
    for deployment in ecs:
        assert set(deployment["work_pool"]["job_variables"]) <= set(variables), deployment["entrypoint"]
    rendered = json.dumps(template["job_configuration"])
    for name in ("image", "cpu", "memory", "task_role_arn", "execution_role_arn", "network_configuration"):
        assert "{{ " + name + " }}" in rendered
    assert variables["cloudwatch_logs_options"]["default"]["awslogs-group"] == "/ventureos/flows"


@pytest.mark.aws
def test_ecs_job_variables_make_a_valid_run_task_request(
    deployed: dict[str, dict[str, Any]], moto_endpoint: str
) -> None:
    """prefect-aws's worker builds RunTask's request from a deployed ECS deployment's job variables:
    it checks the subnets against the VPC on EC2 (moto here) and botocore accepts the request."""
    from botocore.validate import validate_parameters
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker

    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1", **_keys())
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    job = deployed["daily-ingest/ecs"]["job_variables"]
    job = job | {"vpc_id": vpc, "network_configuration": job["network_configuration"] | {"subnets": subnets}}
    template = json.loads((REPO / "deployments" / "ecs-base-job-template.json").read_text())
    config = asyncio.run(ECSJobConfiguration.from_template_and_values(template, job))
    config.aws_credentials = AwsCredentials(
        **_keys(),
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
    )
    task_definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/ventureos:1"
    request = ECSWorker(work_pool_name="ventureos-ecs")._prepare_task_run_request(
        config, {"networkMode": "awsvpc"}, task_definition
    )
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": subnets,
            "securityGroups": ["sg-0ccc"],
            "assignPublicIp": "DISABLED",
        }
    }
    run_task = boto3.client("ecs", region_name="us-east-1", **_keys()).meta.service_model.operation_model(
        "RunTask"
    )
    validate_parameters(request, run_task.input_shape)  # raises ParamValidationError on a wrong shape
