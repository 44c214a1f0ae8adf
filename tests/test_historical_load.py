"""historical-load end to end on generated enforcement data: append, replace, resume, deletes, S3."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.exceptions import NoSuchNamespaceError

import ventureos.ingest
import ventureos.load
from flows.historical_load import historical_load
from ventureos.generate import Generated, generate_osha_enforcement
from ventureos.historical import BATCH, COMPLETE, LOAD_ID, add_progress_listener
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import expire_snapshots
from ventureos.silver import LEFT_OUT_OF_REPLACE, WITHDRAWN

pytestmark = pytest.mark.usefixtures("prefect_harness")


def silver() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().violations().scan().to_arrow())  # type: ignore[return-value]


def current() -> pl.DataFrame:
    return silver().filter("is_current")


def commits() -> int:
    """Metadata versions of silver: each commit (one transaction) adds exactly one."""
    return len(current_lakehouse().violations().metadata.metadata_log)


def live_ids(generated: Generated, rows: int | None = None) -> set[str]:
    """Violation ids of the generated rows (the first ``rows``) that are not deleted."""
    frame = pl.concat([pl.read_csv(p, infer_schema=False) for p in generated.violation_files])
    frame = frame if rows is None else frame.head(rows)
    live = frame.filter(pl.col("delete_flag").is_null())
    return set(live.select(pl.format("osha:enforcement:{}-{}", "activity_nr", "citation_id")).to_series())


@pytest.fixture
def small_batches(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VENTUREOS_BATCH_ROWS", "100")
    return home


def test_append_is_idempotent_and_replace_swaps_atomically(small_batches: Path, tmp_path: Path) -> None:
    first = generate_osha_enforcement(450, tmp_path / "first", files=2, seed=1)
    progress: list[tuple[int, int]] = []
    remove = add_progress_listener(lambda done, total, _: progress.append((done, total)))
    try:
        report = historical_load("osha", "enforcement", str(tmp_path / "first"), "append")
    finally:
        remove()
    live = live_ids(first)
    assert len(live) == first.violations - first.deleted
    assert report["reconciled"] and report["batches"] == 6  # 2 files of 225 rows, 100 per batch
    assert list(report["timings"]) == [
        "prepare",
        "batches",
        "swap_and_clean_up",
        "live_feed",
        "gold",
        "total",
    ]
    # Deleted citations never loaded close nothing: quarantined (nothing lost), not counted unchanged.
    assert report["totals"] == {
        "read": 450, "inserted": len(live), "updated": 0, "deleted": 0,
        "unchanged": 0, "stale": 0, "duplicates": 0, "quarantined": first.deleted,
    }  # fmt: skip
    withdrawn = pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow())
    assert withdrawn.height == first.deleted and set(withdrawn["reason"]) == {WITHDRAWN}
    assert {json.loads(p)["delete_flag"] for p in withdrawn["raw_payload"]} == {"D"}
    assert progress[0] == (0, 6) and progress[-1] == (6, 6)
    assert set(current()["violation_id"]) == live and silver().height == len(live)
    assert report["written"] and all("/silver/violations/buffer/" in uri for uri in report["written"])

    again = historical_load("osha", "enforcement", str(tmp_path / "first"), "append")
    assert again["skipped_batches"] == [0, 1, 2, 3, 4, 5]
    assert again["totals"] == report["totals"]  # the recorded counts of the skipped batches
    assert silver().height == len(live)

    second = generate_osha_enforcement(300, tmp_path / "second", seed=2)
    before = commits()
    replaced = historical_load("osha", "enforcement", str(tmp_path / "second"), "replace")
    assert replaced["reconciled"] and replaced["files_swapped_in"] > 0
    # One silver commit: the batches went to staging, the delete + add of files is one transaction.
    assert commits() == before + 1
    summary = current_lakehouse().violations().current_snapshot().summary
    assert summary[LOAD_ID] == replaced["load_id"] and summary[COMPLETE] == "true"
    rows = silver()
    assert set(rows["violation_id"]) == live_ids(second)
    assert rows.height == second.violations - second.deleted and rows["is_current"].all()
    left_out = pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow()).filter(
        reason=LEFT_OUT_OF_REPLACE
    )
    assert left_out.height == second.deleted  # a replace's deletes: not part of the new rows
    assert not list(current_lakehouse().catalog.list_tables("staging"))

    # The first load again, after another load replaced its rows: it runs again, nothing is skipped.
    back = historical_load("osha", "enforcement", str(tmp_path / "first"), "append")
    assert back["skipped_batches"] == [] and back["reconciled"]
    assert live <= set(current()["violation_id"])


def test_a_replace_swapped_out_by_another_runs_again_from_scratch(
    small_batches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load A's swap lands but its run dies before dropping the staging table; load B replaces the
    dataset; snapshots expire (A's files go). Running A again must load A anew, not swap in the
    staging table's stale files."""
    a = generate_osha_enforcement(150, tmp_path / "a", seed=7)
    b = generate_osha_enforcement(120, tmp_path / "b", seed=8, first_activity_nr=900_000_000)

    def die(*args: object) -> None:
        raise RuntimeError("died after the swap")

    with monkeypatch.context() as patch:
        patch.setattr(ventureos.load, "drop_staging", die)
        with pytest.raises(RuntimeError, match="died after the swap"):
            historical_load("osha", "enforcement", str(tmp_path / "a"), "replace")
    assert set(current()["violation_id"]) == live_ids(a)
    historical_load("osha", "enforcement", str(tmp_path / "b"), "replace")
    assert set(current()["violation_id"]) == live_ids(b)
    expire_snapshots(current_lakehouse().violations(), datetime.now(UTC) + timedelta(seconds=1), keep_last=1)

    again = historical_load("osha", "enforcement", str(tmp_path / "a"), "replace")
    assert again["skipped_batches"] == [] and again["reconciled"]
    assert set(current()["violation_id"]) == live_ids(a) and silver().height == len(live_ids(a))


def fail_on_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """The ``call``-th silver commit of the run raises, after that batch's buffer files are written:
    the crash window a re-run must repair without duplicating them."""
    real = ventureos.ingest.commit_scd2
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(ventureos.ingest, "commit_scd2", flaky)


def buffered() -> pl.DataFrame:
    storage = current_lakehouse().storage
    return pl.concat([storage.read_parquet(key) for key in storage.list("silver/violations/buffer")])


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_resume_after_a_failed_batch(
    small_batches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    old = generate_osha_enforcement(120, tmp_path / "old", seed=5, first_activity_nr=900_000_000)
    historical_load("osha", "enforcement", str(tmp_path / "old"), "replace")
    new = generate_osha_enforcement(520, tmp_path / "new", seed=6)

    with monkeypatch.context() as patch:
        fail_on_call(patch, 4)
        with pytest.raises(RuntimeError, match="injected failure"):
            historical_load("osha", "enforcement", str(tmp_path / "new"), mode)
    if mode == "replace":  # readers still see exactly the old rows
        assert set(current()["violation_id"]) == live_ids(old) and silver().height == len(live_ids(old))
    else:  # the three committed batches are visible, nothing more
        assert set(current()["violation_id"]) == live_ids(old) | live_ids(new, rows=300)

    resumed = historical_load("osha", "enforcement", str(tmp_path / "new"), mode)
    assert resumed["skipped_batches"] == [0, 1, 2]
    assert resumed["reconciled"] and resumed["totals"]["read"] == 520
    rows = current()
    assert rows["violation_id"].is_unique().all()
    expected = live_ids(new) | (live_ids(old) if mode == "append" else set())
    assert set(rows["violation_id"]) == expected
    assert silver().height == len(expected)
    # Every version written once to the buffer: the failed batch's files were overwritten, not doubled.
    buffer = buffered()
    assert buffer["violation_id"].is_unique().all()
    assert set(buffer["violation_id"]) == live_ids(old) | live_ids(new)


def committed_batches() -> int:
    """Batches any load has committed so far, to silver or to a replace's staging table."""
    catalog = current_lakehouse().catalog
    tables = [current_lakehouse().violations()]
    with contextlib.suppress(NoSuchNamespaceError):
        tables += [catalog.load_table(name) for name in catalog.list_tables("staging")]
    return sum(1 for t in tables for snap in t.metadata.snapshots if snap.summary and snap.summary[BATCH])


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_killed_load_finishes_on_rerun(small_batches: Path, tmp_path: Path, mode: str) -> None:
    """``kill -9`` of the CLI part-way through, then the same load again: exactly the live rows."""
    generated = generate_osha_enforcement(3000, tmp_path / "load", seed=13)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect")}
    script = Path(sys.executable).parent / "ventureos"
    args = ["run", "historical-load", "--agency", "osha", "--dataset", "enforcement"]
    # Its own process group, killed whole like a container: the CLI and its embedded Prefect server.
    process = subprocess.Popen(
        [str(script), *args, "--source", str(tmp_path / "load"), "--mode", mode],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while committed_batches() < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    killed_after = committed_batches()
    assert 3 <= killed_after < 30, "the kill must land part-way through the 30 batches"

    report = historical_load("osha", "enforcement", str(tmp_path / "load"), mode)
    assert report["reconciled"] and len(report["skipped_batches"]) == killed_after
    rows = current()
    assert rows["violation_id"].is_unique().all()
    assert rows.height == generated.violations - generated.deleted
    assert set(rows["violation_id"]) == live_ids(generated)


def test_delete_flag_closes_a_loaded_violation(small_batches: Path, tmp_path: Path) -> None:
    generated = generate_osha_enforcement(200, tmp_path / "load", seed=9)
    historical_load("osha", "enforcement", str(tmp_path / "load"), "append")
    violations = pl.read_csv(generated.violation_files[0], infer_schema=False)
    withdrawn = (
        violations.filter(pl.col("delete_flag").is_null()).head(7).with_columns(delete_flag=pl.lit("D"))
    )
    update = tmp_path / "update"
    update.mkdir()
    withdrawn.write_csv(update / "osha_violation_withdrawn.csv")
    (update / "osha_inspection.csv").write_bytes(generated.inspection_files[0].read_bytes())

    report = historical_load("osha", "enforcement", str(update), "append")
    assert report["totals"]["deleted"] == 7 and report["reconciled"]
    ids = set(withdrawn.select(pl.format("osha:enforcement:{}-{}", "activity_nr", "citation_id")).to_series())
    rows = silver().filter(pl.col("violation_id").is_in(list(ids)))
    assert rows.group_by("change_type", "is_current").len().sort("change_type").rows() == [
        ("DELETE", False, 7),
        ("INSERT", False, 7),
    ]
    assert current().height == generated.violations - generated.deleted - 7


@pytest.mark.aws
def test_loads_from_the_lake_prefix_on_s3(
    aws_home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENTUREOS_BATCH_ROWS", "150")
    generated = generate_osha_enforcement(300, tmp_path, seed=11)
    storage = current_lakehouse().storage
    for path in [*generated.inspection_files, *generated.violation_files]:
        storage.write_bytes(f"bronze/historical/osha/enforcement/{path.name}", path.read_bytes())
    report = historical_load("osha", "enforcement", mode="replace")
    assert report["reconciled"] and report["batches"] == 2
    assert current().height == generated.violations - generated.deleted
    assert storage.list("silver/violations/buffer") and not storage.list("staging/historical")
