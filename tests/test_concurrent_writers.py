"""Two silver writers at once, forced to plan against the same snapshot before either commits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.ingest import SilverTarget, SilverWrite, write_silver
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import VIOLATIONS

from .conftest import BUNDLED_SAMPLES

NOW = datetime(2024, 3, 6, tzinfo=UTC)


def reports() -> pl.DataFrame:
    return pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)


def delivery(rows: pl.DataFrame, name: str) -> list[NormalizedBatch]:
    raw = read_raw_batch([(f"/lake/bronze/daily/osha/severe_injury/{name}.csv", rows.write_csv().encode())])
    return [normalize_raw_batch(raw, "osha", "severe_injury")]


class MeetBeforeFirstCommit:
    """A commit slot that holds each writer's first silver commit until both have planned: the race
    of two runs without a Prefect concurrency limit, made certain instead of likely."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=120)
        self.waited: set[int] = set()

    @contextmanager
    def __call__(self, *tables: str) -> Iterator[None]:
        if VIOLATIONS in tables and threading.get_ident() not in self.waited:
            self.waited.add(threading.get_ident())
            self.barrier.wait()
        yield


def write_concurrently(
    deliveries: dict[str, list[NormalizedBatch]], ingest_date: str, now: datetime
) -> dict[str, SilverWrite]:
    """``write_silver`` of each delivery in its own thread (its own table object, as two processes
    would have), both planned before either commits (``MeetBeforeFirstCommit``)."""
    lakehouse, slot = current_lakehouse(), MeetBeforeFirstCommit()
    results: dict[str, SilverWrite] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            target = SilverTarget(lakehouse.catalog.load_table(VIOLATIONS), ingest_date)
            results[name] = write_silver(lakehouse, deliveries[name], target, f"run-{name}", now, slot)
        except BaseException as exc:  # reported below, with the thread's result missing
            errors.append(exc)

    lakehouse.violations()
    threads = [threading.Thread(target=run, args=(name,)) for name in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [] and set(results) == set(deliveries)
    return results


def test_two_runs_delivering_the_same_new_violation_insert_it_once(home: Path) -> None:
    rows = reports()
    shared, only_a, only_b = rows.slice(0, 3), rows.slice(3, 2), rows.slice(5, 4)
    deliveries = {
        "a": delivery(pl.concat([shared, only_a]), "a"),
        "b": delivery(pl.concat([shared, only_b]), "b"),
    }
    results = write_concurrently(deliveries, "2024-03-06", NOW)
    lakehouse = current_lakehouse()

    silver = pl.from_arrow(lakehouse.violations().scan().to_arrow())
    assert silver.height == 9 and silver["violation_id"].n_unique() == 9
    assert silver.filter("is_current")["violation_id"].is_duplicated().sum() == 0
    counts = {name: result.plan.counts.row(0, named=True) for name, result in results.items()}
    # Whichever committed first inserted the shared three; the other planned again and found them.
    first, second = sorted(counts, key=lambda name: counts[name]["unchanged"])
    assert counts[first]["inserted"] == {"a": 5, "b": 7}[first] and counts[first]["unchanged"] == 0
    assert counts[second]["inserted"] == {"a": 2, "b": 4}[second] and counts[second]["unchanged"] == 3

    # The buffer holds each committed version once: the losing attempt's files were deleted.
    storage = lakehouse.storage
    buffered = pl.concat([storage.read_parquet(key) for key in storage.list("silver/violations/buffer")])
    assert sorted(buffered["violation_id"]) == sorted(silver["violation_id"])
    assert sorted(results["a"].written + results["b"].written) == sorted(
        storage.uri(key) for key in storage.list("silver/violations/buffer")
    )
