"""Buffer -> month files -> year file on real Parquet files, embedded and on S3 (moto), with crashes.

The buffers come from the real path: sample reports normalized, SCD2-planned (inserts, an UPDATE and
its DELETE tombstone) and written by ``write_buffer_files``; re-deliveries are copies of a buffer
file under another ingest date.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from pyiceberg.table import Table

import ventureos.archive as archive
from flows.monthly_consolidate import monthly_consolidate
from flows.yearly_consolidate import yearly_consolidate
from ventureos.archive import (
    VERSION_KEY,
    ConsolidationError,
    GracePeriodError,
    consolidate_month,
    consolidate_year,
    content_checksum,
    dedupe_versions,
    merge_versions,
    target_key,
)
from ventureos.batch import normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.buffer import write_buffer_files
from ventureos.cli import main
from ventureos.datafiles import encode_partitions
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import (
    ARCHIVE_PREFIX,
    BUFFER_PREFIX,
    CONSOLIDATION_PREFIX,
    CONSOLIDATION_STAGING_PREFIX,
    LATE_PREFIX,
    late_key,
    month_key,
    year_key,
)
from ventureos.schemas import VIOLATIONS_PARTITION, VIOLATIONS_SCHEMA
from ventureos.silver import commit_scd2, content_id, empty_violations, encode_versions, plan_scd2
from ventureos.storage import Storage

from .conftest import BUNDLED_SAMPLES, latest_artifacts

AFTER_GRACE = date(2025, 7, 1)


def sample_reports() -> pl.DataFrame:
    return pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)


class Feed:
    """Daily ingests as daily-ingest does them (SCD2 plan + buffer write); the Iceberg commit too when
    given ``silver`` (the flow archives only versions silver holds)."""

    def __init__(self, storage: Storage, silver: Table | None = None) -> None:
        self.storage = storage
        self.silver = silver
        self.current = empty_violations()

    def ingest(self, day: str, reports: pl.DataFrame, event_date: str, deleted: tuple[str, ...] = ()) -> str:
        rows = reports.with_columns(EventDate=pl.lit(event_date))
        uri = f"bronze/daily/osha/severe_injury/{day}/reports.csv"
        batch = normalize_raw_batch(
            read_raw_batch([(uri, rows.write_csv().encode())]), "osha", "severe_injury"
        )
        valid = batch.valid.with_columns(is_deleted=pl.col("source_id").is_in(list(deleted)))
        ids = valid["violation_id"].implode()
        current = self.current.filter(pl.col("violation_id").is_in(ids))
        plan = plan_scd2(valid, current, datetime.fromisoformat(f"{day}T12:00:00+00:00"), f"run-{day}")
        self.current = pl.concat(
            [
                self.current.filter(~pl.col("violation_id").is_in(plan.closed_ids)),
                plan.added.filter("is_current"),
            ]
        )
        if self.silver is not None:
            commit_scd2(self.silver, plan, encode_versions(self.silver, plan))
        added = encode_partitions(VIOLATIONS_SCHEMA, VIOLATIONS_PARTITION, plan.added, ("dataset",))
        [written] = write_buffer_files(self.storage, added, day, content_id(plan))
        return self.storage.key_of(written)

    def redeliver(self, key: str, day: str) -> None:
        """The same versions again under another ingest date (a retried upstream delivery)."""
        name = key.rsplit("/", 1)[1]
        self.storage.write_bytes(f"{BUFFER_PREFIX}/ingest_date={day}/{name}", self.storage.read_bytes(key))


def stage_two_months(storage: Storage, silver: Table | None = None) -> tuple[Feed, pl.DataFrame]:
    """Jan and Feb 2024 buffers (14 distinct versions: 11 with January events, 3 with February),
    with re-deliveries in both months and a January violation ingested in March."""
    reports, feed = sample_reports(), Feed(storage, silver)
    first = feed.ingest("2024-01-10", reports.slice(0, 5), "1/3/2024")
    feed.ingest("2024-01-25", reports.slice(5, 3), "1/20/2024")
    feed.redeliver(first, "2024-01-26")
    corrected = reports.slice(0, 1).with_columns(Employer=pl.lit("CORRECTED EMPLOYER LLC"))
    feed.ingest("2024-02-03", reports.slice(8, 3), "2/14/2024")
    feed.ingest("2024-02-03", corrected, "1/3/2024")
    feed.ingest("2024-02-04", corrected, "1/3/2024", deleted=(corrected["ID"][0],))
    feed.redeliver(first, "2024-02-10")
    feed.ingest("2024-03-02", reports.slice(11, 1), "1/15/2024")
    return feed, reports


def buffered(storage: Storage, month: str) -> list[str]:
    return archive.buffer_files(storage, month)


def all_buffer_rows(storage: Storage) -> pl.DataFrame:
    return pl.concat([storage.read_parquet(k) for k in storage.list(BUFFER_PREFIX)])


def versions(frame: pl.DataFrame) -> set[tuple]:
    return set(frame.select(VERSION_KEY).iter_rows())


def work_area(storage: Storage) -> list[str]:
    return storage.list(CONSOLIDATION_PREFIX)


def archive_state(storage: Storage) -> dict[str, str]:
    """Every archive/late file with its content checksum."""
    keys = storage.list(ARCHIVE_PREFIX) + storage.list(LATE_PREFIX)
    return {k: content_checksum(archive.read_versions(storage, [k])) for k in keys}


# Pure planning ----------------------------------------------------------------------------------


def test_dedupe_keeps_update_and_tombstone_and_latest_redelivery(home: Path) -> None:
    feed, _ = stage_two_months(current_lakehouse().storage)
    rows = all_buffer_rows(feed.storage)
    assert rows.height == 24  # 5+3+5 (re-delivered) +3+1+1+5 (re-delivered) +1
    distinct = dedupe_versions(rows)
    assert distinct.height == 14
    corrected = distinct.filter(pl.col("company_name") == "CORRECTED EMPLOYER LLC")
    # Same content, so the same record_hash: the UPDATE and its DELETE tombstone are still two rows.
    assert sorted(corrected["change_type"]) == ["DELETE", "UPDATE"]
    assert corrected["record_hash"].n_unique() == 1
    # A re-delivered copy with a later valid_from wins over the first delivery.
    later = rows.with_columns(
        valid_from=pl.col("valid_from") + pl.duration(days=1), meta_run_id=pl.lit("again")
    )
    redone = dedupe_versions(pl.concat([rows, later]))
    assert redone.height == 14 and (redone["meta_run_id"] == "again").all()
    assert content_checksum(distinct) == content_checksum(distinct.reverse())
    assert content_checksum(distinct) != content_checksum(distinct.head(13))


def test_merge_keeps_one_row_per_version_and_the_latest_delivery(home: Path) -> None:
    feed, _ = stage_two_months(current_lakehouse().storage)
    existing = dedupe_versions(all_buffer_rows(feed.storage)).head(10)
    again = existing.head(3).with_columns(
        valid_from=pl.col("valid_from") + pl.duration(hours=1), meta_run_id=pl.lit("redelivered")
    )
    merged, added = merge_versions(existing, again, known=empty_violations())
    assert (merged.height, added) == (10, 0)
    assert (merged["meta_run_id"] == "redelivered").sum() == 3
    merged, added = merge_versions(existing, existing.head(3), known=existing.head(2))
    assert (added, merged.equals(existing)) == (0, True)  # nothing to rewrite


def rows_per_target(rows: pl.DataFrame, closed_years: set[str]) -> dict[str, int]:
    counted = rows.group_by(target_key(closed_years).alias("target")).len()
    return dict(counted.iter_rows())


def test_target_by_event_month_and_closed_years(home: Path) -> None:
    feed, _ = stage_two_months(current_lakehouse().storage)
    rows = dedupe_versions(all_buffer_rows(feed.storage))
    unknown = rows.head(1).with_columns(event_date=pl.lit(None, dtype=pl.Date))
    assert rows_per_target(pl.concat([rows, unknown]), closed_years=set()) == {
        month_key("2024", "01"): 11,
        month_key("2024", "02"): 3,
        month_key("unknown", "unknown"): 1,
    }
    assert rows_per_target(rows, closed_years={"2024"}) == {late_key("2024"): 14}


# Monthly and yearly runs ------------------------------------------------------------------------


def consolidate_all_and_check(storage: Storage) -> None:
    feed, reports = stage_two_months(storage)
    expected = dedupe_versions(all_buffer_rows(storage))

    january = consolidate_month(storage, "2024-01")
    assert (january.rows_in, january.rows_added, january.duplicates) == (13, 8, 5)
    assert january.files_removed == 3 and january.written == [month_key("2024", "01")]
    assert buffered(storage, "2024-01") == [] and buffered(storage, "2024-02") != []

    february = consolidate_month(storage, "2024-02")
    assert (february.rows_in, february.rows_added, february.duplicates) == (10, 5, 5)
    assert february.written == [month_key("2024", "01"), month_key("2024", "02")]
    assert february.rows_out == 10 + 3 and february.reconciled

    march = consolidate_month(storage, "2024-03")
    assert (march.rows_in, march.rows_added, march.late_rows) == (1, 1, 0)
    assert storage.list(BUFFER_PREFIX) == [] and work_area(storage) == []

    months = {k: storage.read_parquet(k) for k in archive.month_files(storage, "2024")}
    assert {k: f.height for k, f in months.items()} == {
        month_key("2024", "01"): 11,
        month_key("2024", "02"): 3,
    }
    archived = pl.concat(months.values())
    assert versions(archived) == versions(expected) and archived.height == 14
    assert content_checksum(archived) == content_checksum(expected)

    before = archive_state(storage)
    assert consolidate_month(storage, "2024-02").rows_in == 0  # nothing left: a re-run changes nothing
    assert archive_state(storage) == before

    with pytest.raises(GracePeriodError, match="2025-07-01"):
        consolidate_year(storage, "2024", today=date(2025, 6, 30))
    assert archive_state(storage) == before

    year = consolidate_year(storage, "2024", today=date(2025, 3, 1), force=True)
    assert (year.rows_in, year.rows_added, year.rows_out, year.files_removed) == (14, 14, 14, 2)
    assert storage.list(f"{ARCHIVE_PREFIX}/violation_year=2024") == [year_key("2024")]
    year_rows = storage.read_parquet(year_key("2024"))
    assert content_checksum(year_rows) == content_checksum(archived)
    year_bytes = storage.read_bytes(year_key("2024"))

    # A 2024 violation corrected in April 2025: the year is closed, the row goes to the late area.
    feed.ingest("2025-04-02", reports.slice(8, 1).with_columns(Employer=pl.lit("LATE FIX INC")), "2/14/2024")
    late = consolidate_month(storage, "2025-04")
    assert (late.rows_in, late.late_rows, late.written) == (1, 1, [late_key("2024")])
    assert storage.read_bytes(year_key("2024")) == year_bytes
    late_rows = storage.read_parquet(late_key("2024"))
    assert late_rows["company_name"].to_list() == ["LATE FIX INC"]
    assert late_rows["change_type"].to_list() == ["UPDATE"]
    assert consolidate_year(storage, "2024", today=AFTER_GRACE).rows_in == 0

    # A missed day ingested later under its own date (March 2025), after its month's run: the next
    # monthly run takes it along, nothing stays behind in the buffer.
    feed.ingest("2025-03-15", reports.slice(10, 1), "3/10/2025")
    missed = consolidate_month(storage, "2025-05")
    assert (missed.rows_in, missed.rows_added, missed.written) == (1, 1, [month_key("2025", "03")])
    assert storage.list(BUFFER_PREFIX) == []


def test_consolidation_embedded(home: Path) -> None:
    consolidate_all_and_check(current_lakehouse().storage)


@pytest.mark.aws
def test_consolidation_on_s3(aws_home: str) -> None:
    storage = current_lakehouse().storage
    assert storage.root == f"s3://{aws_home}"
    consolidate_all_and_check(storage)


def test_bad_buffer_file_fails_by_name_and_deletes_nothing(home: Path) -> None:
    storage = current_lakehouse().storage
    stage_two_months(storage)
    bad = f"{BUFFER_PREFIX}/ingest_date=2024-01-11/osha-severe_injury-bad.parquet"
    storage.write_parquet(bad, pl.DataFrame({"violation_id": ["x"]}))
    sources = buffered(storage, "2024-01")
    with pytest.raises(ConsolidationError, match=r"bad\.parquet: not a violations file"):
        consolidate_month(storage, "2024-01")
    storage.write_bytes(bad, b"PAR1 cut off in transfer")
    with pytest.raises(ConsolidationError, match=r"bad\.parquet: not a readable Parquet file"):
        consolidate_month(storage, "2024-01")
    assert buffered(storage, "2024-01") == sources and archive_state(storage) == {}


# Crash safety -----------------------------------------------------------------------------------


class Crash(RuntimeError):
    pass


def crash_on(monkeypatch: pytest.MonkeyPatch, step: str, call: int) -> None:
    """Make the ``call``-th call of one storage step of ventureos.archive raise (the process dies)."""
    real, calls = getattr(archive, step), []

    def failing(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == call:
            raise Crash(f"{step} #{call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(archive, step, failing)


STEPS = [
    ("stage_target", 2),  # one target staged, the second write dies
    ("write_manifest", 1),  # everything staged and verified, no commit
    ("swap_target", 2),  # committed; one target swapped, the other not
    ("delete_source", 2),  # all swapped; half-way through the buffer deletes
    ("finish_manifest", 1),  # all sources deleted; staging and manifest left
]


def crash_month_then_rerun(storage: Storage, monkeypatch: pytest.MonkeyPatch, step: str, call: int) -> None:
    """February's run (two target files, three buffers) dies at one step; the next run completes it."""
    stage_two_months(storage)
    consolidate_month(storage, "2024-01")
    expected = dedupe_versions(
        all_buffer_rows(storage).vstack(archive.read_versions(storage, [month_key("2024", "01")]))
    )

    with monkeypatch.context() as patch:
        crash_on(patch, step, call)
        with pytest.raises(Crash):
            consolidate_month(storage, "2024-02")
    rerun = consolidate_month(storage, "2024-02")
    assert rerun.recovered == (1 if step in {"swap_target", "delete_source", "finish_manifest"} else 0)
    consolidate_month(storage, "2024-03")

    assert storage.list(BUFFER_PREFIX) == [] and work_area(storage) == []
    archived = archive.read_versions(storage, archive.month_files(storage, "2024"))
    assert archived.height == 14 and content_checksum(archived) == content_checksum(expected)


@pytest.mark.parametrize(("step", "call"), STEPS)
def test_monthly_crash_then_rerun_completes(
    home: Path, monkeypatch: pytest.MonkeyPatch, step: str, call: int
) -> None:
    crash_month_then_rerun(current_lakehouse().storage, monkeypatch, step, call)


@pytest.mark.aws
@pytest.mark.parametrize(("step", "call"), [("swap_target", 2), ("delete_source", 2)])
def test_monthly_crash_on_s3_then_rerun_completes(
    aws_home: str, monkeypatch: pytest.MonkeyPatch, step: str, call: int
) -> None:
    crash_month_then_rerun(current_lakehouse().storage, monkeypatch, step, call)


@pytest.mark.parametrize(
    ("step", "call"),
    [("write_manifest", 1), ("swap_target", 1), ("delete_source", 1), ("finish_manifest", 1)],
)
def test_yearly_crash_then_rerun_completes(
    home: Path, monkeypatch: pytest.MonkeyPatch, step: str, call: int
) -> None:
    storage = current_lakehouse().storage
    stage_two_months(storage)
    for month in ("2024-01", "2024-02", "2024-03"):
        consolidate_month(storage, month)
    months = archive.read_versions(storage, archive.month_files(storage, "2024"))

    with monkeypatch.context() as patch:
        crash_on(patch, step, call)
        with pytest.raises(Crash):
            consolidate_year(storage, "2024", today=AFTER_GRACE)
    rerun = consolidate_year(storage, "2024", today=AFTER_GRACE)
    assert rerun.late_rows == 0

    assert storage.list(f"{ARCHIVE_PREFIX}/violation_year=2024") == [year_key("2024")]
    assert not storage.exists(late_key("2024")) and work_area(storage) == []
    assert content_checksum(storage.read_parquet(year_key("2024"))) == content_checksum(months)


def test_lost_staging_after_commit_is_reported_not_guessed(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = current_lakehouse().storage
    stage_two_months(storage)
    with monkeypatch.context() as patch:
        crash_on(patch, "swap_target", 1)
        with pytest.raises(Crash):
            consolidate_month(storage, "2024-01")
    for key in storage.list(CONSOLIDATION_STAGING_PREFIX):
        storage.delete(key)
    with pytest.raises(ConsolidationError, match="is gone"):
        consolidate_month(storage, "2024-01")
    assert len(buffered(storage, "2024-01")) == 3  # nothing deleted


# Flows ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_flows_and_cli_consolidate_and_refuse_before_grace(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = current_lakehouse().storage
    stage_two_months(storage, current_lakehouse().violations())
    for month in ("2024-01", "2024-02"):
        report = monthly_consolidate(month=month)
        assert report["reconciled"] and report["scope"] == month
    assert report["maintenance"][0]["table"] == "silver.violations"
    main(["run", "monthly-consolidate", "--month", "2024-03", "--json"])
    assert json.loads(capsys.readouterr().out)["rows_added"] == 1
    assert storage.list(BUFFER_PREFIX) == []

    this_year = str(datetime.now(UTC).year)
    with pytest.raises(GracePeriodError):
        yearly_consolidate(year=this_year)
    with pytest.raises(SystemExit) as refused:
        main(["run", "yearly-consolidate", "--year", this_year])
    assert refused.value.code == 1 and "use --force" in capsys.readouterr().err
    state = yearly_consolidate(year="2024", return_state=True)  # long past July 1, 2025
    closed = state.result()
    assert (closed["rows_in"], closed["rows_out"], closed["files_removed"]) == (14, 14, 2)
    assert storage.list(f"{ARCHIVE_PREFIX}/violation_year=2024") == [year_key("2024")]
    # No empty month or ingest-date folders left behind on local disk.
    assert storage.list_dirs(f"{ARCHIVE_PREFIX}/violation_year=2024") == []
    assert storage.list_dirs(BUFFER_PREFIX) == []

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == "yearly-consolidate-2024"
    keys = ["monthly-consolidate-report", "yearly-consolidate-report", "yearly-consolidate-maintenance"]
    by_key = latest_artifacts(keys)
    assert set(by_key) == set(keys)
    assert (
        "rows out 14 in 1 file(s); late rows 0; files removed 2" in by_key["yearly-consolidate-report"].data
    )
