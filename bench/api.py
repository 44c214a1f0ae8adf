"""Benchmark (not a test): the read API under load, on an embedded lake built from generated data.

    python -m bench.api --rows 2000000      (``make bench-api ROWS=...``)

1. Build (skipped when ``--work`` already holds a finished lake of that size): generate OSHA enforcement
   CSVs (``ventureos generate``), ``historical-load --mode replace``, ``maintain`` (compaction writes
   silver's lookup layout: ``ventureos.lookup_layout``) and ``gold-sync``, each as its own process.
2. Start ``ventureos serve --workers N`` on 127.0.0.1 as a subprocess (``--workers``, default one per
   CPU as deployed; SQLite serving store).
3. For each endpoint in turn (the trivial ``/ping``, company answers, search type-ahead, history pages of
   companies with at most 1,000 violations and their records by id), ``--clients`` concurrent clients
   (one async httpx client, one connection each) for ``--seconds`` in two phases: back to back
   (saturated: the req/s and the ratio come from here) and bounded at ``--rate`` requests/s all
   together (the latency percentiles of the targets come from here: under saturation a latency is the
   queue, ``clients / throughput``, whatever the endpoint). History and records are also timed with
   one client alone: their service time.

Prints per endpoint req/s and p50/p95/p99; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

API = "/api/v2"
CLI = str(Path(sys.executable).with_name("ventureos"))
"""The ``ventureos`` command of this interpreter's environment."""
HISTORY_MAX = 1_000
"""History pages are timed on companies with at most this many current violations (the target's)."""


def ventureos(home: Path, *args: str) -> None:
    env = os.environ | {"VENTUREOS_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    started = time.perf_counter()
    out = subprocess.run([CLI, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"ventureos {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    print(
        f"  ventureos {args[0]} {args[1] if len(args) > 1 else ''}: {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def build(rows: int, work: Path) -> Path:
    """The embedded home holding ``rows`` generated violations, loaded, maintained and synced."""
    home, done = work / f"home-{rows}", work / f"home-{rows}.done"
    if done.exists():
        print(f"reusing the lake in {home}", flush=True)
        return home
    source = work / f"input-{rows}"
    if not (source / "osha_violation.csv").exists():
        print(f"generating {rows:,} violations under {source} ...", flush=True)
        from ventureos.generate import generate_osha_enforcement

        generate_osha_enforcement(rows, source)
    shutil.rmtree(home, ignore_errors=True)
    print("building the lake ...", flush=True)
    ventureos(home, "run", "historical-load", "--agency", "osha", "--dataset", "enforcement",
              "--source", str(source), "--mode", "replace")  # fmt: skip
    ventureos(home, "maintain")
    ventureos(home, "run", "gold-sync")
    done.touch()
    return home


def targets(home: Path) -> dict[str, list[str]]:
    """Paths to request per endpoint, from the lake's gold tables (read before the server starts)."""
    os.environ["VENTUREOS_HOME"] = str(home)
    import polars as pl

    from ventureos.gold import read_gold
    from ventureos.lakehouse import Lakehouse
    from ventureos.settings import load_settings

    lakehouse = Lakehouse(load_settings())
    companies = read_gold(lakehouse.catalog, "company", None).filter(pl.col("agency") == "all")
    biggest = companies.sort("violation_count", descending=True).head(50)
    small = companies.filter(pl.col("violation_count") <= HISTORY_MAX).sort(
        "violation_count", descending=True
    )
    if small.is_empty():
        raise SystemExit(f"no company with at most {HISTORY_MAX} violations in this lake")
    slugs = [k.removeprefix("COMPANY#") for k in small.head(20)["entity_key"]]
    print(f"history entities: {len(slugs)} companies of {small['violation_count'].min()}-"
          f"{small['violation_count'].max()} violations", flush=True)  # fmt: skip
    silver = lakehouse.violations()
    from pyiceberg.expressions import EqualTo

    ids = pl.from_arrow(
        silver.scan(
            row_filter=EqualTo("company_slug", slugs[0]), selected_fields=("violation_id",)
        ).to_arrow()
    )["violation_id"].head(20)  # type: ignore[index]
    words = sorted({w.lower() for n in biggest["entity_name"].drop_nulls() for w in n.split() if len(w) >= 3})
    return {
        "trivial": [f"{API}/ping"],
        "company": [f"{API}/company/{k.removeprefix('COMPANY#')}" for k in biggest["entity_key"]],
        "search": [f"{API}/search?q={w[:n]}" for w in words[:40] for n in (2, 3, len(w))],
        "history": [f"{API}/company/{s}/violations" for s in slugs],
        "record": [f"{API}/violations/{i}" for i in ids],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"VENTUREOS_HOME": str(home)}
    server = subprocess.Popen(
        [CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{API}/ping", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(
        f"ventureos serve did not answer: {server.stderr.read()[-2000:] if server.stderr else ''}"
    )


async def drive(
    base: str, paths: list[str], clients: int, seconds: float, rate: float | None = None
) -> dict[str, Any]:
    """``clients`` workers for ``seconds``; latencies of 2xx answers.

    Without ``rate`` each worker sends back to back (closed loop): the server is saturated, which
    measures its throughput, and a latency is mostly time in the queue (Little's law: about
    ``clients / throughput``). With ``rate`` (requests/s, all workers together) each worker sends on a
    fixed schedule whatever the answers (open loop) and a latency counts from the scheduled send, so a
    server falling behind shows as latency rather than as fewer requests.
    """
    latencies: list[float] = []
    errors = 0
    cycle = itertools.cycle(paths)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for path in paths[:3]:  # warm the caches the steady state has (a footer, an open catalog)
            await client.get(path)
        begin = time.perf_counter()
        deadline = begin + seconds

        async def worker(number: int) -> None:
            nonlocal errors
            interval = clients / rate if rate else 0.0
            scheduled = begin + interval * number / clients  # workers spread over one interval
            while scheduled < deadline:
                if rate:
                    await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                else:
                    scheduled = time.perf_counter()
                try:
                    response = await client.get(next(cycle))
                except httpx.HTTPError:
                    errors += 1  # a dropped connection or a timeout is an error, not the end of the run
                else:
                    if response.status_code < 300:
                        latencies.append(time.perf_counter() - scheduled)
                    else:
                        errors += 1
                scheduled += interval

        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - begin
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
        )

    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}  # fmt: skip


ENDPOINTS = ("trivial", "company", "search", "history", "record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="Load per endpoint and phase (default 15 s)."
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--rate", type=float, default=50.0,
        help="Requests/s of all clients together in the latency phase (default 50: one per client per second).",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1,
        help="Server worker processes (default: one per CPU, as deployed).",
    )  # fmt: skip
    parser.add_argument("--work", type=Path, help="Scratch folder, reused across runs (default: a new one).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ventureos-bench-api-"))
    work.mkdir(parents=True, exist_ok=True)
    home = build(args.rows, work)
    paths = targets(home)
    port = free_port()
    server = start_server(home, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, Any]] = {}
    run: Callable[[str, int, float | None], dict[str, Any]] = lambda name, clients, rate: asyncio.run(  # noqa: E731
        drive(base, paths[name], clients, args.seconds, rate)
    )
    try:
        for name in ENDPOINTS:
            print(
                f"driving {name}: {args.clients} clients back to back for {args.seconds:.0f} s ...",
                flush=True,
            )
            results[f"{name} saturated"] = run(name, args.clients, None)
            print(
                f"driving {name}: {args.clients} clients, {args.rate:g} req/s for {args.seconds:.0f} s ...",
                flush=True,
            )
            results[f"{name} at rate"] = run(name, args.clients, args.rate)
        for name in ("history", "record"):
            print(f"driving {name} with 1 client for {args.seconds:.0f} s ...", flush=True)
            results[f"{name} 1 client"] = run(name, 1, None)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"\nrows {args.rows:,}, {args.clients} clients, {args.seconds:.0f} s per endpoint and phase, "
        f"latency phase at {args.rate:g} req/s, {args.workers} server workers, {os.cpu_count()} CPUs"
    )
    print(
        f"{'endpoint':<20}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
    )
    for name, r in results.items():
        print(f"{name:<20}{r['requests']:>10}{r['errors']:>8}{r['rps']:>10.1f}"
              f"{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['p99_ms']:>10.1f}")  # fmt: skip

    def ms(name: str, p: str) -> float:
        return round(results[name][f"{p}_ms"], 1)

    saturated = {e: results[f"{e} saturated"] for e in ENDPOINTS}
    print(
        json.dumps(
            {
                "rows": args.rows,
                "rate": args.rate,
                "workers": args.workers,
                "company_rps": round(saturated["company"]["rps"], 1),
                "trivial_rps": round(saturated["trivial"]["rps"], 1),
                "ratio_company_vs_trivial": round(
                    saturated["company"]["rps"] / saturated["trivial"]["rps"], 3
                ),
                "company_p99_ms": ms("company at rate", "p99"),
                "search_p99_ms": ms("search at rate", "p99"),
                "history_p95_ms": ms("history at rate", "p95"),
                "record_p95_ms": ms("record at rate", "p95"),
                "history_p95_ms_1_client": ms("history 1 client", "p95"),
                "record_p95_ms_1_client": ms("record 1 client", "p95"),
                "company_p99_ms_saturated": ms("company saturated", "p99"),
                "search_p99_ms_saturated": ms("search saturated", "p99"),
                "history_p95_ms_saturated": ms("history saturated", "p95"),
                "trivial_p99_ms_saturated": ms("trivial saturated", "p99"),
            }
        )
    )


if __name__ == "__main__":
    main()
