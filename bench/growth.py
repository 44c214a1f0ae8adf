"""Benchmark (not a test): does a run's cost follow its batch or the lake?

    python -m bench.growth --small 100000 --big 8000000      (``make bench-growth SMALL=... BIG=...``)

For each lake size: generated OSHA enforcement violations loaded with ``historical-load --mode
replace`` (setup, timed for the replace rows/s; with ``--maintain`` then compacted by ``ventureos
maintain``, the state monthly-consolidate leaves: the default measures the lake of many small files a
load leaves), then four steps, each a whole ``ventureos`` process (own wall time and peak RSS from
``wait4``), in this order, each on the small lake and right after on the big one:

- ``daily``: daily-ingest of one bronze date folder with 2,000 violations: 1,000 of the lake's with a
  changed penalty, 1,000 new ones (with their inspections);
- ``feed``: feed-poll of 500 messages (250 updates, 250 new violation rows; sent before the clock);
- ``append``: historical-load ``--mode append`` of 20,000 new violations;
- ``sync``: gold-sync after them.

Then, not timed, the gold-side invariants on each lake (``check_gold_at_scale``: one current version
per id; every gold table and the stored partials equal to the aggregate of current silver); the
benchmark exits with 1 when they fail. Last, the append's 20,000 rows loaded with ``--mode replace``
into a lake of their own: the append's rows/s against a replace load of the same rows (the issue's
comparison; a replace of millions of rows spreads the ~9 s of process and flow start over 400x more).

The new rows of a step are the same for both lakes; the updated ones are the newest live violations
of each lake's source (``lake_rows``: what a source changes). The last line printed is one JSON object: ``small_rows``, ``big_rows`` and per
step ``<step>_small_s``, ``<step>_big_s``, ``<step>_ratio`` (big / small), ``<step>_big_peak_rss_mb``,
plus the replace and append rows/s (``append_replace_rows_per_s``: the same rows replaced;
``append_vs_replace``: append rows/s over that), and ``invariants_hold`` (both lakes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ventureos.generate import generate_osha_enforcement

DAY = "2026-12-01"
DAILY_UPDATES = DAILY_NEW = 1_000
FEED_UPDATES = FEED_NEW = 250
APPEND_ROWS = 20_000
# Activity numbers of the generated inputs: disjoint ranges, far above any lake's own.
DAILY_FIRST, FEED_FIRST, APPEND_FIRST = 900_000_000, 910_000_000, 920_000_000


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mb: float
    report: dict


def run(home: Path, *args: str) -> Timed:
    """One ``ventureos`` process: wall time, its own peak RSS and its JSON report (``--json`` commands)."""
    env = os.environ | {
        "VENTUREOS_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [str(Path(sys.executable).with_name("ventureos")), *args]
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
        output = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        elapsed = time.perf_counter() - started
        errors.seek(0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):  # 3: a daily-ingest that found only the datasets it was given (warned)
            raise SystemExit(
                f"{' '.join(args)} failed ({code}):\n{errors.read().decode(errors='replace')[-4000:]}"
            )
    report = json.loads(output) if "--json" in args else {}
    return Timed(elapsed, usage.ru_maxrss / 1024, report)  # Linux: KiB


def expect(step: str, timed: Timed, updated: int, new: int) -> None:
    """A step that did not do its work would make any ratio meaningless. New generated rows with
    ``delete_flag = D`` withdraw ids silver never held: quarantined, not inserted."""
    totals = timed.report.get("totals", {})
    done = (
        totals.get("updated") == updated and totals.get("inserted", 0) + totals.get("quarantined", 0) == new
    )
    if not (done and timed.report.get("reconciled")):
        raise SystemExit(f"{step}: expected {updated} updated and {new} new, reconciled; got {totals}")


def generated(rows: int, out: Path, first_activity_nr: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Violations and inspections of a new generated range (read back as text, as the source is)."""
    files = generate_osha_enforcement(rows, out, first_activity_nr=first_activity_nr)
    read = {"infer_schema": False}
    return pl.read_csv(files.violation_files[0], **read), pl.read_csv(files.inspection_files[0], **read)


def lake_rows(source: Path, n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``n`` newest live violations the lake was loaded with (by issuance date), their penalties
    changed, and their inspections.

    The newest, because that is what a source changes: an OSHA citation's penalty moves while its case
    is open (informal settlement, contest, final order: months to a couple of years after issuance),
    and silver closes versions copy-on-write, so which files an update touches is the cost.
    """
    violations = (
        pl.scan_csv(source / "osha_violation.csv", infer_schema=False)
        .filter(pl.col("delete_flag").is_null() | (pl.col("delete_flag") != "D"))
        .filter(pl.col("issuance_date").str.len_chars() == 8)
        .sort("issuance_date", "activity_nr", "citation_id", descending=True)
        .head(n)
        .collect()
        .with_columns(current_penalty=(pl.col("current_penalty").cast(pl.Float64, strict=False).fill_null(0) + 17)
                      .cast(pl.String))
    )  # fmt: skip
    inspections = (
        pl.scan_csv(source / "osha_inspection.csv", infer_schema=False)
        .join(violations.lazy().select("activity_nr").unique(), on="activity_nr")
        .collect()
    )
    return violations, inspections


def inputs(work: Path, updates_from: Path) -> Path:
    """Every step's input files for the lake loaded from ``updates_from``: its first violations changed,
    and new ones that are the same rows for both lakes."""
    folder = work / f"inputs-{updates_from.name}"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    old_v, old_i = lake_rows(updates_from, DAILY_UPDATES + 2 * FEED_UPDATES)
    new_v, new_i = generated(DAILY_NEW, folder / "gen-daily", DAILY_FIRST)
    day = folder / "daily"
    day.mkdir()
    pl.concat([old_v.head(DAILY_UPDATES), new_v], how="diagonal").write_csv(day / "osha_violation.csv")
    pl.concat([old_i, new_i], how="diagonal").unique("activity_nr").write_csv(day / "osha_inspection.csv")

    # Feed messages carry no inspection: rows that need its open date for their event date would be
    # quarantined, so the feed gets violations with an issuance date (and no withdrawals).
    dated = pl.col("issuance_date").is_not_null() & pl.col("delete_flag").is_null()
    feed_v, _ = generated(FEED_NEW * 2, folder / "gen-feed", FEED_FIRST)
    updates = old_v.slice(DAILY_UPDATES).filter(dated).head(FEED_UPDATES)
    records = pl.concat([updates, feed_v.filter(dated).head(FEED_NEW)], how="diagonal")
    with (folder / "feed.jsonl").open("w") as out:
        for record in records.to_dicts():
            out.write(json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")

    generate_osha_enforcement(APPEND_ROWS, folder / "append", first_activity_nr=APPEND_FIRST)
    (folder / "done").touch()
    return folder


def prepare(work: Path, sizes: list[int]) -> None:
    """Each lake's generated source and step inputs (cached under ``work``)."""
    for rows in sizes:
        source = work / f"source-{rows}"
        if not (source / "osha_violation.csv").exists():
            print(f"generating {rows:,} violations under {source} ...", flush=True)
            generate_osha_enforcement(rows, source)
        inputs(work, source)


def prepared(work: Path, sizes: list[int]) -> None:
    """``prepare`` in a spawned process. On Linux a child's peak RSS (``wait4``) starts at its parent's
    resident size when it forked (exec keeps the old high-water mark), so the process that starts the
    measured ones must never hold a lake's worth of generated rows itself."""
    child = multiprocessing.get_context("spawn").Process(target=prepare, args=(work, sizes))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"preparing the inputs failed ({child.exitcode})")


def grow(rows: int, work: Path, maintain: bool) -> tuple[Path, Path, Timed]:
    """A lake of ``rows`` generated violations (replace load, then ``ventureos maintain`` when asked);
    returns home, source and the load's time."""
    source = work / f"source-{rows}"
    home = work / f"home-{rows}"
    shutil.rmtree(home, ignore_errors=True)
    print(f"loading the {rows:,}-row lake (replace) ...", flush=True)
    load = run(home, "run", "historical-load", "--agency", "osha", "--dataset", "enforcement",
               "--source", str(source), "--mode", "replace")  # fmt: skip
    if maintain:
        print(f"maintaining the {rows:,}-row lake ...", flush=True)
        run(home, "maintain")
    return home, source, load


OSHA = ("--agency", "osha", "--dataset", "enforcement")


def daily(home: Path, folder: Path) -> Timed:
    day = home / "lake" / "bronze" / "daily" / "osha" / "enforcement" / DAY
    day.mkdir(parents=True, exist_ok=True)
    for name in ("osha_violation.csv", "osha_inspection.csv"):
        shutil.copy(folder / "daily" / name, day / name)
    timed = run(home, "run", "daily-ingest", "--date", DAY, *OSHA, "--json")
    expect("daily", timed, DAILY_UPDATES, DAILY_NEW)
    return timed


def feed(home: Path, folder: Path) -> Timed:
    run(home, "feed", "send", str(folder / "feed.jsonl"), *OSHA)
    timed = run(home, "run", "feed-poll", "--max-messages", str(FEED_UPDATES + FEED_NEW), "--json")
    expect("feed", timed, FEED_UPDATES, FEED_NEW)
    return timed


def append(home: Path, folder: Path) -> Timed:
    timed = run(home, "run", "historical-load", *OSHA, "--source", str(folder / "append"), "--mode", "append",
                "--json")  # fmt: skip
    expect("append", timed, 0, APPEND_ROWS)
    return timed


def sync(home: Path, folder: Path) -> Timed:
    return run(home, "run", "gold-sync", "--json")


STEP_RUNS: dict[str, Callable[[Path, Path], Timed]] = {
    "daily": daily, "feed": feed, "append": append, "sync": sync,
}  # fmt: skip
"""The measured steps, in order; each checks it did its work."""


def _check(home: str) -> list[str]:
    os.environ["VENTUREOS_HOME"] = home
    from ventureos.invariants import check_gold_at_scale
    from ventureos.lakehouse import current_lakehouse

    return check_gold_at_scale(current_lakehouse())


def invariants(home: Path) -> list[str]:
    """``check_gold_at_scale`` on the lake under ``home``, in a spawned process (the scan's memory is
    not this process's, whose children's peak RSS starts at its own)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_check, (str(home),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=8_000_000)
    parser.add_argument("--work", type=Path, help="Scratch folder (default: a new temporary one).")
    parser.add_argument(
        "--maintain",
        action="store_true",
        help="Compact each lake after its load (as monthly-consolidate does), before the steps.",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ventureos-growth-"))
    result: dict[str, float | int | bool] = {"small_rows": args.small, "big_rows": args.big}
    result["maintained"] = args.maintain
    prepared(work, [args.small, args.big])
    sizes = {"small": args.small, "big": args.big}
    lakes = {}
    for size, rows in sizes.items():
        home, source, load = grow(rows, work, args.maintain)
        lakes[size] = (home, inputs(work, source))
        result[f"replace_{size}_rows_per_s"] = round(rows / load.seconds)
    # Each step runs on the small lake, then at once on the big one: the machine's slow and fast
    # minutes (a shared VM's) fall on both sides of a ratio rather than on one lake's steps.
    measured: dict[str, dict[str, Timed]] = {size: {} for size in sizes}
    for step, step_run in STEP_RUNS.items():
        for size, (home, folder) in lakes.items():
            timed = measured[size][step] = step_run(home, folder)
            print(f"{size:5} lake of {sizes[size]:>10,} rows  {step:6} {timed.seconds:8.1f} s  "
                  f"peak RSS {timed.peak_rss_mb:7.0f} MiB", flush=True)  # fmt: skip
    for size, (home, _) in lakes.items():
        problems = invariants(home)
        print(f"{size:5} lake invariants: {'hold' if not problems else '; '.join(problems)}", flush=True)
        result["invariants_hold"] = bool(result.get("invariants_hold", True)) and not problems
    for step in STEP_RUNS:
        small, big = measured["small"][step], measured["big"][step]
        result[f"{step}_small_s"] = round(small.seconds, 2)
        result[f"{step}_big_s"] = round(big.seconds, 2)
        result[f"{step}_ratio"] = round(big.seconds / small.seconds, 2)
        result[f"{step}_big_peak_rss_mb"] = round(big.peak_rss_mb)
    append = measured["big"]["append"].seconds
    result["append_big_rows_per_s"] = round(APPEND_ROWS / append)
    shutil.rmtree(work / "home-append-replace", ignore_errors=True)
    same = run(work / "home-append-replace", "run", "historical-load", "--agency", "osha", "--dataset",
               "enforcement", "--source", str(lakes["big"][1] / "append"), "--mode", "replace")  # fmt: skip
    result["append_replace_rows_per_s"] = round(APPEND_ROWS / same.seconds)
    result["append_vs_replace"] = round(same.seconds / append, 2)
    print(json.dumps(result))
    if not result["invariants_hold"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
