"""Dual write: the versions a batch adds to silver, also as Parquet buffer files by ingest date.

A daily or feed run writes one file per agency and dataset (``encode_buffer_files``). A historical
batch stores the very bytes encoded for silver's data files instead (one per event year: encoding a
batch twice costs a tenth of a load). Names derive from the write's id, so a re-run that writes the
same versions overwrites the same files instead of adding duplicates.
"""

from __future__ import annotations

import uuid

import polars as pl
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema

from ventureos.datafiles import EncodedFile, encode_partitions, file_uuid
from ventureos.layout import buffer_key
from ventureos.storage import Storage


def encode_buffer_files(schema: Schema, added: pl.DataFrame) -> list[EncodedFile]:
    """The added versions as one zstd Parquet file per agency and dataset."""
    return encode_partitions(schema, UNPARTITIONED_PARTITION_SPEC, added, extra_keys=("agency", "dataset"))


def write_buffer_files(
    storage: Storage, files: list[EncodedFile], ingest_date: str, write_id: uuid.UUID
) -> list[str]:
    """Store each encoded file of added versions under the buffer; returns the URIs written."""
    written = []
    for file in files:
        agency, dataset = str(file.keys["agency"]), str(file.keys["dataset"])
        key = buffer_key(ingest_date, agency, dataset, file_uuid(write_id, file))
        written.append(storage.write_bytes(key, file.content))
    return written
