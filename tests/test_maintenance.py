"""Iceberg maintenance on a real SQLite catalog: compaction to few files with identical rows, expiry."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from ventureos.batch import normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.catalog import ensure_table
from ventureos.cli import main
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import MaintenanceError, maintain, maintained_tables
from ventureos.schemas import VIOLATIONS_ARROW, to_arrow
from ventureos.settings import load_settings
from ventureos.silver import empty_violations, plan_scd2
from ventureos.storage import open_storage

from .conftest import BUNDLED_SAMPLES

YEARS = (2015, 2016, 2017, 2018, 2019)
NOW = datetime.now(UTC)
GOLD_SCHEMA = Schema(
    NestedField(1, "entity", StringType(), required=False), NestedField(2, "n", LongType(), required=False)
)


def violation_rows() -> pl.DataFrame:
    """100 real sample reports as silver versions, spread over 5 event years (5 partitions)."""
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    ).head(100)
    raw = read_raw_batch([("bronze/daily/osha/severe_injury/2024-01-01/r.csv", reports.write_csv().encode())])
    valid = normalize_raw_batch(raw, "osha", "severe_injury").valid
    added = plan_scd2(valid, empty_violations(), NOW, "run").added
    assert added.height == 100
    year = pl.lit(pl.Series(YEARS)).gather(pl.int_range(pl.len()) % len(YEARS))
    return added.with_columns(event_date=pl.date(year, pl.col("event_date").dt.month(), 1))


def table_rows(identifier: str, sort: str) -> pl.DataFrame:
    table = current_lakehouse().catalog.load_table(identifier)
    return pl.from_arrow(table.scan().to_arrow()).sort(sort)  # type: ignore[union-attr]


def parquet_files(home: Path, table: str) -> list[Path]:
    """Data files of a table on disk, referenced or not."""
    return [p for p in (home / "warehouse").rglob("*.parquet") if f"/{table}/" in p.as_posix()]


def file_count(identifier: str) -> int:
    return len(current_lakehouse().catalog.load_table(identifier).inspect.files())


def small_gold(appends: int) -> None:
    """gold.sample_stats with one small file per append (gold tables are maintained like silver)."""
    gold = ensure_table(current_lakehouse().catalog, "gold.sample_stats", GOLD_SCHEMA)
    for i in range(appends):
        gold.append(pa.table({"entity": [f"e{i}"], "n": [i]}, schema=GOLD_SCHEMA.as_arrow()))


def small_silver_and_gold() -> None:
    """silver.violations: 20 appends x 5 partitions = 100 files; gold.sample_stats: 10 appends."""
    violations = current_lakehouse().violations()
    for chunk in violation_rows().iter_slices(5):
        violations.append(to_arrow(chunk, VIOLATIONS_ARROW))
    small_gold(10)


def test_compaction_and_expiry(home: Path) -> None:
    small_silver_and_gold()
    assert file_count("silver.violations") == 100 and file_count("gold.sample_stats") == 10
    silver_before = table_rows("silver.violations", "violation_id")
    gold_before = table_rows("gold.sample_stats", "entity")
    catalog = current_lakehouse().catalog
    assert maintained_tables(catalog) == ["gold.sample_stats", "silver.violations"]

    # Within the retention nothing is expired, but the small files are compacted (one commit each).
    fresh = {r.table: r for r in maintain(catalog, load_settings(), NOW)}
    silver = fresh["silver.violations"]
    assert (silver.files_before, silver.files_after, silver.partitions_compacted) == (100, 5, 5)
    assert (fresh["gold.sample_stats"].files_after, fresh["gold.sample_stats"].snapshots_expired) == (1, 0)
    assert len(catalog.load_table("silver.violations").snapshots()) == 21  # 20 appends + 1 compaction
    assert table_rows("silver.violations", "violation_id").equals(silver_before)
    assert table_rows("gold.sample_stats", "entity").equals(gold_before)

    # A month later: everything older than 7 days goes, except the newest 3 snapshots. Those still
    # reference the small files (the appends before the compaction), so the data files stay.
    later = maintain(catalog, load_settings(snapshot_keep_last=3), NOW + timedelta(days=30))
    assert [(r.table, r.partitions_compacted, r.snapshots_expired) for r in later] == [
        ("gold.sample_stats", 0, 8),
        ("silver.violations", 0, 18),
    ]
    table = catalog.load_table("silver.violations")
    assert len(table.snapshots()) == 3
    assert table.current_snapshot().summary["ventureos.operation"] == "compaction"
    assert len(parquet_files(home, "violations")) == 105

    # Keeping only the compaction snapshot: the 100 replaced small files are deleted from storage.
    last = maintain(catalog, load_settings(snapshot_keep_last=1), NOW + timedelta(days=30))
    assert last[1].snapshots_expired == 2 and last[1].files_deleted >= 100
    assert len(parquet_files(home, "violations")) == 5
    assert len(catalog.load_table("silver.violations").snapshots()) == 1
    assert table_rows("silver.violations", "violation_id").equals(silver_before)
    assert table_rows("gold.sample_stats", "entity").equals(gold_before)


def test_s3_tables_catalog_skips_with_a_log_line(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    small_gold(6)
    s3_tables = load_settings(
        catalog_type="rest", catalog_uri="https://s3tables.us-east-1.amazonaws.com/iceberg"
    )
    with caplog.at_level(logging.INFO, logger="ventureos.maintenance"):
        results = maintain(current_lakehouse().catalog, s3_tables, NOW + timedelta(days=30))
    assert {(r.skipped, r.files_after, r.snapshots_expired) for r in results} == {("s3-tables", 6, 0)}
    assert "S3 Tables compacts and expires snapshots itself" in caplog.text
    assert file_count("gold.sample_stats") == 6


def test_each_table_is_maintained_inside_its_commit_slot(home: Path) -> None:
    small_gold(6)
    catalog, held, inside = current_lakehouse().catalog, [], []

    @contextmanager
    def slot(table: str) -> Iterator[None]:
        held.append(table)
        yield
        inside.append(table)

    results = maintain(catalog, load_settings(), NOW, slot=slot)
    assert held == inside == [r.table for r in results] == maintained_tables(catalog)


@pytest.mark.usefixtures("prefect_harness")
def test_maintain_cli(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small_gold(6)
    main(["maintain", "--json"])
    rows = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gold.sample_stats"]["files_before"] == 6 and rows["gold.sample_stats"]["files_after"] == 1
    assert rows["silver.violations"]["files_after"] == 0  # created on first use, nothing to compact


@pytest.mark.aws
def test_compaction_on_s3(aws_home: str) -> None:
    small_gold(6)
    before = table_rows("gold.sample_stats", "entity")
    location = current_lakehouse().catalog.load_table("gold.sample_stats").location()
    orphans = open_storage(location, load_settings())
    orphans.write_bytes("data/crashed-write.parquet", b"never committed")
    results = {
        r.table: r
        for r in maintain(
            current_lakehouse().catalog, load_settings(snapshot_keep_last=2), NOW + timedelta(days=8)
        )
    }
    gold = results["gold.sample_stats"]
    assert (gold.files_before, gold.files_after, gold.snapshots_expired) == (6, 1, 5)
    assert gold.orphan_files_deleted == 1 and not orphans.exists("data/crashed-write.parquet")
    assert table_rows("gold.sample_stats", "entity").equals(before)
    files = (
        current_lakehouse().catalog.load_table("gold.sample_stats").inspect.files()["file_path"].to_pylist()
    )
    assert len(files) == 1 and files[0].startswith(f"s3://{aws_home}/warehouse/")


def test_orphan_files_are_removed_once_old_and_a_live_nested_table_keeps_its_files(home: Path) -> None:
    """Files no metadata references go once older than the age limit; a replace load's staging table
    (located inside silver) keeps its files while it exists, and they go once it is dropped."""
    catalog = current_lakehouse().catalog
    silver = current_lakehouse().violations()
    rows = violation_rows()
    silver.append(to_arrow(rows.head(50), VIOLATIONS_ARROW))
    catalog.create_namespace_if_not_exists("staging")
    staging = catalog.create_table(
        "staging.violations_load",
        schema=silver.schema(),
        partition_spec=silver.spec(),
        location=f"{silver.location()}/staging/load",
    )
    staging.append(to_arrow(rows.tail(50), VIOLATIONS_ARROW))
    root = Path(silver.location())
    data_file = next((root / "data").rglob("*.parquet"))
    (data_file.parent / "crashed-write.parquet").write_bytes(data_file.read_bytes())
    (root / "metadata" / "lost-commit-m0.avro").write_bytes(b"manifest of a commit that lost")
    # Not the table's: the lake's buffer would sit here if the lake and the warehouse shared a root.
    foreign = root / "buffer" / "ingest_date=2024-01-01" / "osha-severe_injury-1.parquet"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(data_file.read_bytes())
    long_ago = (NOW - timedelta(days=10)).timestamp()
    for path in root.rglob("*"):
        os.utime(path, (long_ago, long_ago))
    (data_file.parent / "in-flight.parquet").write_bytes(data_file.read_bytes())
    staged_files = sorted((root / "staging").rglob("*.*"))
    before = table_rows("silver.violations", "violation_id")

    result = {r.table: r for r in maintain(catalog, load_settings(), NOW)}["silver.violations"]

    assert result.orphan_files_deleted == 2
    assert not (data_file.parent / "crashed-write.parquet").exists()
    assert not (root / "metadata" / "lost-commit-m0.avro").exists()
    assert (data_file.parent / "in-flight.parquet").exists()  # younger than 3 days: maybe a commit in flight
    assert foreign.exists()  # outside the table's data/ and metadata/
    assert sorted((root / "staging").rglob("*.*")) == staged_files
    assert table_rows("silver.violations", "violation_id").equals(before)
    assert len(table_rows("staging.violations_load", "violation_id")) == 50

    catalog.drop_table("staging.violations_load")
    dropped = {r.table: r for r in maintain(catalog, load_settings(), NOW)}["silver.violations"]
    assert dropped.orphan_files_deleted == len(staged_files)
    assert list((root / "staging").rglob("*.*")) == []
    assert table_rows("silver.violations", "violation_id").equals(before)


def test_orphans_through_a_symlinked_home_and_nothing_deleted_when_listing_and_metadata_disagree(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "link"
    link.symlink_to(home)  # like /tmp on macOS: metadata paths and listed paths spell the root differently
    monkeypatch.setenv("VENTUREOS_WAREHOUSE", str(link / "warehouse"))
    silver = current_lakehouse().violations()
    silver.append(to_arrow(violation_rows(), VIOLATIONS_ARROW))
    root = home / "warehouse" / "silver" / "violations"
    data_file = next((root / "data").rglob("*.parquet"))
    orphan = data_file.parent / "crashed-write.parquet"
    orphan.write_bytes(b"never committed")
    long_ago = (NOW - timedelta(days=10)).timestamp()
    for path in root.rglob("*"):
        os.utime(path, (long_ago, long_ago))
    before = table_rows("silver.violations", "violation_id")

    catalog = current_lakehouse().catalog
    result = {r.table: r for r in maintain(catalog, load_settings(), NOW)}["silver.violations"]
    assert result.orphan_files_deleted == 1 and not orphan.exists()
    assert table_rows("silver.violations", "violation_id").equals(before)

    orphan.write_bytes(b"never committed")
    os.utime(orphan, (long_ago, long_ago))
    data_file.rename(tmp_path / "moved-away.parquet")
    with pytest.raises(MaintenanceError, match="files the metadata names are not found"):
        maintain(catalog, load_settings(), NOW)
    assert orphan.exists()
