"""Benchmark (not a test): how long ``ventureos`` commands take as whole processes.

    python -m bench.cli_startup [--runs 5] [--ventureos PATH]      (``make bench-cli``)

Cases, each run ``--runs`` times as a fresh process (the median is reported):
- ``python -c pass``: the interpreter alone, the floor of any command on this machine now;
- ``ventureos --help``;
- a rejected bad date: ``ventureos run daily-ingest --date 2024-13-45`` (must exit 2);
- ``ventureos query "select 1"`` on an empty home (a new home for every run);
- a no-op gold-sync: ``ventureos run gold-sync`` on a home where ``ventureos demo`` has ingested and
  synced, so no gold row is newer than the watermarks.
The last line printed is one JSON object: case -> median wall and CPU seconds, the runs and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[str], list[str]]
    """The command line, given the ``ventureos`` executable."""
    expected_code: int = 0
    fresh_home: bool = False
    """A new empty home for every run (else the prepared one)."""


CASES = (
    Case("python -c pass", lambda _: [sys.executable, "-c", "pass"]),
    Case("ventureos --help", lambda v: [v, "--help"]),
    Case(
        "run daily-ingest --date 2024-13-45", lambda v: [v, "run", "daily-ingest", "--date", "2024-13-45"], 2
    ),
    Case('query "select 1" (empty home)', lambda v: [v, "query", "select 1"], fresh_home=True),
    Case("run gold-sync (no-op)", lambda v: [v, "run", "gold-sync"]),
)


def environment(home: Path, prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENTUREOS_", "PREFECT_"))}
    return env | {
        "VENTUREOS_HOME": str(home),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], expected_code: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one process. On a shared machine the CPU time is the steadier figure:
    the wall time also counts waiting for a core."""
    cpu, started = cpu_of_children(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, cpu_of_children() - cpu
    # Success or failure as expected (older versions failed a bad date with exit 1, not 2).
    if (done.returncode == 0) != (expected_code == 0):
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}, expected {expected_code}:\n{done.stdout}\n{done.stderr}"
        )
    return seconds, cpu


def prepare(ventureos: str, env: dict[str, str]) -> None:
    """Data in silver and gold, synced to serving: a later gold-sync has nothing to do."""
    timed([ventureos, "demo"], env, 0)
    timed([ventureos, "run", "gold-sync"], env, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Processes per case (median reported).")
    parser.add_argument(
        "--ventureos",
        default=str(Path(sys.executable).parent / "ventureos"),
        help="The ventureos executable to measure (default: this environment's).",
    )
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        work = Path(tmp)
        prefect_home = work / "prefect"
        prepared = work / "prepared"
        print(f"preparing a home with `{args.ventureos} demo` ...", file=sys.stderr)
        prepare(args.ventureos, environment(prepared, prefect_home))
        for case in CASES:
            times: list[tuple[float, float]] = []
            for run in range(args.runs):
                home = work / f"empty-{case.name.split()[0]}-{run}" if case.fresh_home else prepared
                times.append(
                    timed(case.argv(args.ventureos), environment(home, prefect_home), case.expected_code)
                )
            results[case.name] = times
    width = max(len(name) for name in results)
    print(f"{'case':<{width}}  wall_median_s  wall_min_s  wall_max_s  cpu_median_s  runs")
    summary: dict[str, object] = {}
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(
            f"{name:<{width}}  {wall:13.2f}  {min(walls):10.2f}  {max(walls):10.2f}  {cpu:12.2f}  {len(runs):4d}"
        )
        summary[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    print(json.dumps(summary | {"runs": args.runs, "load_average_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
