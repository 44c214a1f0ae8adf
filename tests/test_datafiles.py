"""Iceberg data files encoded by Polars: split like the partition spec, field ids, readable by pyiceberg."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.transforms import BucketTransform

from ventureos.buffer import encode_buffer_files, write_buffer_files
from ventureos.datafiles import encode_partitions, file_uuid, upload
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import VIOLATIONS_PARTITION, VIOLATIONS_POLARS, VIOLATIONS_SCHEMA


def versions() -> pl.DataFrame:
    """Five versions: two OSHA datasets in 2019, one OSHA row in 2021, one FAA row, one without a date."""
    rows = {
        "violation_id": ["osha:a:1", "osha:a:2", "osha:b:3", "osha:a:4", "faa:c:5", "osha:a:6"],
        "agency": ["osha", "osha", "osha", "osha", "faa", "osha"],
        "dataset": ["a", "a", "b", "a", "c", "a"],
        "source_id": ["1", "2", "3", "4", "5", "6"],
        "event_date": [date(2019, 1, 2), date(2019, 12, 31), date(2019, 6, 1), date(2021, 3, 4), date(2019, 5, 5), None],
        "quality_issues": [["x"], [], None, ["y", "z"], [], []],
        "valid_from": [datetime(2024, 1, 1, tzinfo=UTC)] * 6,
    }  # fmt: skip
    frame = pl.DataFrame(rows)
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
        for c, t in VIOLATIONS_POLARS.items()
    )


def test_one_file_per_partition_and_extra_key_with_field_ids() -> None:
    files = encode_partitions(VIOLATIONS_SCHEMA, VIOLATIONS_PARTITION, versions(), extra_keys=("dataset",))
    by_keys = {(f.keys["agency"], f.keys["event_date_year"], f.keys["dataset"]): f.rows for f in files}
    assert by_keys == {
        ("osha", 2019, "a"): 2,
        ("osha", 2019, "b"): 1,
        ("osha", 2021, "a"): 1,
        ("faa", 2019, "c"): 1,
        ("osha", None, "a"): 1,
    }
    arrow = files[0].metadata.schema.to_arrow_schema()
    assert arrow.names == [f.name for f in VIOLATIONS_SCHEMA.fields]
    assert arrow.field("violation_id").metadata[b"PARQUET:field_id"] == b"1"
    assert arrow.field("quality_issues").type.value_field.metadata[b"PARQUET:field_id"] == b"30"
    # File names depend on the write id and the file's keys, not on the order Polars wrote them in.
    write = uuid.uuid4()
    assert len({file_uuid(write, f) for f in files}) == 5
    assert file_uuid(write, files[0]) != file_uuid(uuid.uuid4(), files[0])


def test_a_buffer_write_is_one_file_per_agency_and_dataset(home: Path) -> None:
    storage = current_lakehouse().storage
    rows = versions()
    files = encode_buffer_files(VIOLATIONS_SCHEMA, rows)
    written = write_buffer_files(storage, files, "2024-03-05", uuid.uuid4())
    assert sorted(k.rsplit("/", 1)[1].rsplit("-", 5)[0] for k in map(storage.key_of, written)) == [
        "faa-c", "osha-a", "osha-b",
    ]  # fmt: skip
    read = pl.concat(storage.read_parquet(storage.key_of(uri)) for uri in written)
    assert_frame_equal(read.sort("violation_id"), rows.sort("violation_id"), check_dtypes=False)


def test_an_unpartitioned_table_gets_one_file() -> None:
    files = encode_partitions(VIOLATIONS_SCHEMA, PartitionSpec(), versions())
    assert [(f.keys, f.index, f.rows) for f in files] == [({}, 0, 6)]
    assert_frame_equal(pl.read_parquet(files[0].content), versions())


def test_uploaded_files_commit_and_read_back(home: Path) -> None:
    table = current_lakehouse().violations()
    rows = versions()
    files = encode_partitions(table.schema(), table.spec(), rows)
    assert len(files) == 4  # without the dataset key, osha 2019 is one file
    with table.transaction() as txn, txn.update_snapshot().fast_append() as append:
        entries = upload(table, txn.table_metadata, files, append.commit_uuid)
        for entry in entries:
            append.append_data_file(entry)
    partitions = {(e.partition[0], e.partition[1]): e.record_count for e in entries}
    assert partitions == {("osha", 49): 3, ("osha", 51): 1, ("faa", 49): 1, ("osha", None): 1}
    assert all("/data/agency=" in e.file_path and pq.read_metadata(e.file_path.removeprefix("file://"))
               for e in entries)  # fmt: skip
    back = pl.from_arrow(table.refresh().scan().to_arrow()).cast(VIOLATIONS_POLARS)
    assert_frame_equal(back.sort("violation_id"), rows.sort("violation_id"))
    # Partition pruning works from the uploaded statistics.
    year_2021 = table.scan(row_filter="event_date >= '2021-01-01'").plan_files()
    assert [t.file.record_count for t in year_2021] == [1]


def test_unsupported_partition_transform_is_a_clear_error() -> None:
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=BucketTransform(8), name="b"))
    with pytest.raises(NotImplementedError, match="bucket"):
        encode_partitions(VIOLATIONS_SCHEMA, spec, versions())
