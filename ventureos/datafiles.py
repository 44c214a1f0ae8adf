"""Iceberg data files encoded by Polars: one parallel pass splits a frame by partition and writes Parquet.

pyiceberg's writer converts to Arrow, filters the whole table once per partition and encodes each file
on one thread (a historical batch spans ~50 event years: most of its time). Polars encodes every
partition of a frame in one pass, with the table's field ids in the Parquet schema. Files are encoded
in memory, so the same bytes go to the table (through its FileIO: local, S3 or S3 Tables) and to the
buffer, and the statistics come from the footer without reading anything back.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
import pyarrow.parquet as pq
from polars.io.partition import FileProviderArgs
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import IdentityTransform, YearTransform
from pyiceberg.typedef import Record

from ventureos.lookup_layout import FILE_KEY, ROW_GROUP_ROWS, cluster, is_clustered

UPLOAD_THREADS = 8


@dataclass(frozen=True)
class EncodedFile:
    """One Parquet file of a single partition, still in memory."""

    keys: dict[str, object]
    """Values of the split keys (the partition source columns, plus any extra keys asked for)."""
    index: int
    """Of the file within its keys (Polars may split a large partition)."""
    content: bytes
    metadata: pq.FileMetaData

    @property
    def rows(self) -> int:
        return self.metadata.num_rows


def _partition_keys(schema: Schema, spec: PartitionSpec) -> dict[str, pl.Expr]:
    """Polars expressions that split rows like the partition spec (identity and year only)."""
    keys = {}
    for field in spec.fields:
        column = pl.col(schema.find_column_name(field.source_id) or "")
        if isinstance(field.transform, IdentityTransform):
            keys[field.name] = column
        elif isinstance(field.transform, YearTransform):
            keys[field.name] = column.dt.year()
        else:
            raise NotImplementedError(f"partition transform {field.transform} is not supported")
    return keys


def encode_partitions(
    schema: Schema, spec: PartitionSpec, rows: pl.DataFrame, extra_keys: Sequence[str] = ()
) -> list[EncodedFile]:
    """``rows`` (in the schema's column order and types) as zstd Parquet files, one per partition
    (one in all for an unpartitioned table).

    ``extra_keys`` split further (e.g. by dataset, so each file can also serve as a buffer file);
    a partition may hold any number of files.
    """
    if rows.is_empty():
        return []
    keys = _partition_keys(schema, spec) | {name: pl.col(name) for name in extra_keys}
    # Silver's files follow the lookup layout (ventureos.lookup_layout): ordered, cut into files by
    # company range, ids ordered inside, small row groups.
    clustered = bool(spec.fields) and is_clustered(schema)
    if clustered:
        rows, file_key = cluster(rows, list(keys.values()))
        keys[FILE_KEY.removeprefix("_key_")] = file_key
    outputs: list[tuple[dict[str, object], int, io.BytesIO]] = []

    def to_memory(args: FileProviderArgs) -> io.BytesIO:
        buffer = io.BytesIO()
        outputs.append((args.partition_keys.row(0, named=True), args.index_in_partition, buffer))
        return buffer

    # An unpartitioned table gets one file (Polars needs a key or a size to split by: no size limit).
    split = (
        {"key": [expr.alias(f"_key_{name}") for name, expr in keys.items()], "include_key": False}
        if keys
        else {"approximate_bytes_per_file": None}
    )
    rows.lazy().sink_parquet(
        pl.PartitionBy("", file_path_provider=to_memory, **split),
        arrow_schema=schema_to_pyarrow(schema, include_field_ids=True),
        compression="zstd",
        **({"row_group_size": ROW_GROUP_ROWS} if clustered else {}),
    )
    files = []
    for values, index, buffer in outputs:
        content = buffer.getvalue()
        keyed = {name.removeprefix("_key_"): value for name, value in values.items()}
        files.append(EncodedFile(keyed, index, content, pq.read_metadata(io.BytesIO(content))))
    return files


def file_uuid(write_id: uuid.UUID, file: EncodedFile) -> uuid.UUID:
    """One name per file of a write, derived from the write's id (the same whatever order Polars wrote in)."""
    return uuid.uuid5(write_id, f"{sorted(file.keys.items())}/{file.index}")


def upload(
    table: Table, table_metadata: TableMetadata, files: list[EncodedFile], write_id: uuid.UUID
) -> list[DataFile]:
    """Write the files under the table's data location; returns their manifest entries.

    Partition values and column statistics come from each file's footer (pyiceberg checks that a
    file holds one partition only).
    """
    spec, schema = table_metadata.spec(), table_metadata.schema()
    stats_plan = compute_statistics_plan(schema, table_metadata.properties)
    column_ids = parquet_path_to_id_mapping(schema)
    locations = table.location_provider()

    def put(file: EncodedFile) -> DataFile:
        statistics = data_file_statistics_from_parquet_metadata(file.metadata, stats_plan, column_ids)
        partition = statistics.partition(spec, schema) if spec.fields else Record()
        name = f"{file_uuid(write_id, file)}.parquet"
        if spec.fields:
            name = f"{spec.partition_to_path(partition, schema)}/{name}"
        path = locations.new_data_location(name)
        with table.io.new_output(path).create(overwrite=True) as stream:
            stream.write(file.content)
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=partition,
            file_size_in_bytes=len(file.content),
            sort_order_id=None,
            spec_id=table_metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        return list(pool.map(put, files))
