"""The local Prefect stack in one command: ``up`` starts it, ``down`` stops exactly what ``up`` started.

    .venv/bin/python deployments/stack.py up      # or: make stack
    .venv/bin/python deployments/stack.py down    # or: make stack-down
    .venv/bin/python deployments/stack.py status

``up``: a Prefect server on 127.0.0.1 (SQLite, analytics off) with its home in the state directory;
the ``ventureos-local`` process pool, its ``consolidation`` queue (limit 1) and the
``iceberg-commit-<table>`` global concurrency limits (deployments/README.md, section 1); the ``*/local``
deployments of prefect.yaml, deployed from a copy without its Docker build/push steps; a process worker
on ``VENTUREOS_HOME``. It prints the UI URL. Run twice, it starts nothing new.

``down``: stops the process groups ``up`` recorded (with every descendant, e.g. flow runs), verifies no
process of theirs is left and the port is free, then forgets them. Run twice, the second does nothing.

Environment: ``STACK_DIR`` (state, logs, server database; default ``.ventureos/stack``),
``STACK_PORT`` (default 4200), ``VENTUREOS_HOME`` (the worker's embedded lake; default
``.ventureos``), ``STACK_TIMEOUT`` (seconds to wait for the server and the worker; 180). The stack's own
settings are not ``VENTUREOS_*``: ventureos refuses unknown ``VENTUREOS_`` variables, and flow runs
inherit the worker's environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "ventureos-local"
QUEUES = {"consolidation": 1}  # queue -> concurrency limit
TERM_GRACE = 20.0  # seconds between SIGTERM and SIGKILL


def state_dir() -> Path:
    return Path(os.environ.get("STACK_DIR") or REPO / ".ventureos" / "stack").resolve()


def state_file() -> Path:
    return state_dir() / "state.json"


def timeout() -> float:
    return float(os.environ.get("STACK_TIMEOUT", "180"))


def commit_limits() -> list[str]:
    """Every ``iceberg-commit-<table>`` limit the flows hold a slot of (tasks/policy.py)."""
    from tasks.policy import commit_limit_name
    from ventureos.gold import COMMIT_TABLES
    from ventureos.schemas import QUARANTINE, VIOLATIONS

    return [commit_limit_name(t) for t in (VIOLATIONS, QUARANTINE, *COMMIT_TABLES)]


# --- processes ----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of stat: start time in clock ticks since boot


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def is_recorded(entry: dict[str, Any]) -> bool:
    """The recorded process still runs and is the one recorded (not a reused pid)."""
    return alive(entry["pid"]) and start_time(entry["pid"]) == entry["start_time"]


def leftovers(entries: list[dict[str, Any]]) -> list[int]:
    """Live processes in the recorded process groups or descended from the recorded processes."""
    table: dict[int, tuple[int, int]] = {}  # pid -> (ppid, pgid)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (fields := _stat(int(proc.name))) and fields[0] not in {"Z", "X"}:
            table[int(proc.name)] = (int(fields[1]), int(fields[2]))
    groups = {e["pgid"] for e in entries}
    found = {e["pid"] for e in entries if is_recorded(e)}
    found |= {pid for pid, (_, pgid) in table.items() if pgid in groups}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return sorted(pid for pid in found if pid in table)


def signal_all(entries: list[dict[str, Any]], sig: signal.Signals) -> None:
    for pid in leftovers(entries):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    for group in {e["pgid"] for e in entries}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def wait_gone(entries: list[dict[str, Any]], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := leftovers(entries)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def spawn(name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start ``args`` in its own session (a process group ``down`` can signal), logging to <name>.log."""
    log = (state_dir() / f"{name}.log").open("ab")
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    return {"pid": process.pid, "pgid": process.pid, "start_time": start_time(process.pid), "args": args}


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- state --------------------------------------------------------------------------------------


def load_state() -> dict[str, Any] | None:
    try:
        return json.loads(state_file().read_text())
    except FileNotFoundError:
        return None


def save_state(state: dict[str, Any]) -> None:
    tmp = state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_file())


def processes(state: dict[str, Any]) -> list[dict[str, Any]]:
    return list(state.get("processes", {}).values())


# --- up -----------------------------------------------------------------------------------------


def base_env(state: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(state_dir() / "prefect-home"),
        "PREFECT_API_URL": state["api_url"],
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(what: str, check: Any, log: Path, proc: dict[str, Any]) -> None:
    deadline = time.monotonic() + timeout()
    while not check():
        if not is_recorded(proc):
            raise SystemExit(f"{what} exited; last lines of {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout():.0f} s; last lines of {log}:\n{tail(log)}")
        time.sleep(0.5)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def post(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    """POST, where 409 (already exists) is success; 503 (SQLite busy) is retried."""
    for _ in range(20):
        response = api.post(path, json=body)
        if response.status_code != 503:
            break
        time.sleep(1)
    if response.status_code != 409:
        response.raise_for_status()


def create_pool_queues_limits(api_url: str) -> None:
    from prefect.workers.process import ProcessWorker

    with httpx.Client(base_url=api_url, timeout=30) as api:
        template = ProcessWorker.get_default_base_job_template()
        post(api, "/work_pools/", {"name": POOL, "type": "process", "base_job_template": template})
        for queue, limit in QUEUES.items():
            post(api, f"/work_pools/{POOL}/queues", {"name": queue, "concurrency_limit": limit})
        for name in commit_limits():
            post(api, "/v2/concurrency_limits/", {"name": name, "limit": 1})


def local_prefect_file() -> Path:
    """prefect.yaml without its image build/push steps and with only the ``local`` deployments."""
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    config.pop("build", None)
    config.pop("push", None)
    config["deployments"] = [d for d in config["deployments"] if d["name"] == "local"]
    path = state_dir() / "prefect.local.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def deploy(state: dict[str, Any]) -> None:
    env = base_env(state) | {"VENTUREOS_CODE_DIR": str(REPO)}
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(local_prefect_file())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=max(timeout(), 300),
    )  # fmt: skip
    (state_dir() / "deploy.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"prefect deploy failed; see {state_dir() / 'deploy.log'}:\n{done.stderr[-3000:]}")


def worker_polling(api_url: str) -> bool:
    try:
        response = httpx.post(f"{api_url}/work_pools/{POOL}/workers/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and any(w.get("status") == "ONLINE" for w in response.json())


def up() -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    state = load_state()
    if state and all(is_recorded(p) for p in processes(state)) and healthy(state["api_url"]):
        print(f"stack already running (server pid {state['processes']['server']['pid']})")
        announce(state)
        return
    if state:  # a previous stack, partly dead: stop what is left of it first
        stop(state)
    port = int(os.environ.get("STACK_PORT", "4200"))
    if not port_free(port):
        raise SystemExit(f"127.0.0.1:{port} is in use by a process this stack did not start; "
                         "set STACK_PORT to another port")  # fmt: skip
    home = Path(os.environ.get("VENTUREOS_HOME") or REPO / ".ventureos").resolve()
    state = {"port": port, "api_url": f"http://127.0.0.1:{port}/api", "ui_url": f"http://127.0.0.1:{port}",
             "ventureos_home": str(home), "processes": {}}  # fmt: skip
    try:
        server_env = base_env(state) | {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{state_dir() / 'prefect.db'}",
        }
        server_env.pop("PREFECT_API_URL")
        server = spawn(
            "server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_env
        )
        state["processes"]["server"] = server
        save_state(state)
        wait_for("prefect server", lambda: healthy(state["api_url"]), state_dir() / "server.log", server)
        print(f"server up at {state['api_url']}")
        create_pool_queues_limits(state["api_url"])
        deploy(state)
        print("deployed the */local deployments")
        (home / "lake").mkdir(parents=True, exist_ok=True)
        worker_env = base_env(state) | {
            "VENTUREOS_HOME": str(home),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "lake" / "prefect-results"),
        }
        worker = spawn(
            "worker", [PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], worker_env
        )
        state["processes"]["worker"] = worker
        save_state(state)
        wait_for("worker", lambda: worker_polling(state["api_url"]), state_dir() / "worker.log", worker)
    except BaseException:
        print("stack did not come up; stopping what was started", file=sys.stderr)
        stop(state)
        raise
    announce(state)


def announce(state: dict[str, Any]) -> None:
    print(
        f"Prefect UI:   {state['ui_url']}\n"
        f"API:          export PREFECT_API_URL={state['api_url']}\n"
        f"worker:       pool {POOL}, VENTUREOS_HOME={state['ventureos_home']}\n"
        f"logs/state:   {state_dir()}\n"
        f"try:          PREFECT_API_URL={state['api_url']} {PREFECT} deployment run daily-ingest/local "
        "--param date=2024-03-05\n"
        "stop:         make stack-down"
    )


# --- down ---------------------------------------------------------------------------------------


def stop(state: dict[str, Any]) -> None:
    """SIGTERM the recorded groups and descendants, SIGKILL what is left after a grace; verify."""
    entries = processes(state)
    if entries:
        signal_all(entries, signal.SIGTERM)
        if wait_gone(entries, TERM_GRACE):
            signal_all(entries, signal.SIGKILL)
        left = wait_gone(entries, 10)
        if left:
            raise SystemExit(f"processes still running after SIGKILL: {left}; state kept in {state_file()}")
    port = state.get("port")
    deadline = time.monotonic() + 10
    while port and not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    if port and not port_free(port):
        raise SystemExit(f"stopped every recorded process but 127.0.0.1:{port} is still in use")
    state_file().unlink(missing_ok=True)


def down() -> None:
    state = load_state()
    if state is None:
        print(f"stack is not running (no state in {state_dir()})")
        return
    stop(state)
    stopped = ", ".join(f"{name} pid {entry['pid']}" for name, entry in state["processes"].items())
    print(f"stack stopped: {stopped}")


def status() -> None:
    state = load_state()
    if state is None:
        print("stack is not running")
        raise SystemExit(1)
    for name, entry in state["processes"].items():
        print(f"{name}: pid {entry['pid']} {'running' if is_recorded(entry) else 'NOT running'}")
    print(f"server health: {'ok' if healthy(state['api_url']) else 'not answering'}  UI: {state['ui_url']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    command = parser.parse_args().command
    sys.path.insert(0, str(REPO))
    {"up": up, "down": down, "status": status}[command]()


if __name__ == "__main__":
    main()
