"""Dual write: the versions a batch adds to silver, also as Parquet buffer files by ingest date.

File names are derived from the content (ids + hashes), so a re-run that writes the same versions
overwrites the same file instead of adding a duplicate.
"""

from __future__ import annotations

import uuid

import polars as pl
import polars_hash  # noqa: F401  (registers .nchash)

from ventureos.storage import Storage

BUFFER_PREFIX = "silver/violations/buffer"


def content_id(frame: pl.DataFrame) -> uuid.UUID:
    """Order-independent identity of a set of versions."""
    digest = frame.select(
        pl.concat_str("violation_id", "record_hash", "change_type", separator=":")
        .sort()
        .str.join("\n")
        .nchash.md5()
    ).item()
    return uuid.UUID(hex=digest)


def buffer_key(ingest_date: str, agency: str, dataset: str, frame: pl.DataFrame) -> str:
    return f"{BUFFER_PREFIX}/ingest_date={ingest_date}/{agency}-{dataset}-{content_id(frame)}.parquet"


def write_buffer_files(storage: Storage, added: pl.DataFrame, ingest_date: str) -> list[str]:
    """One zstd Parquet file per agency/dataset; returns the URIs written."""
    written = []
    for (agency, dataset), rows in added.partition_by("agency", "dataset", as_dict=True).items():
        key = buffer_key(ingest_date, str(agency), str(dataset), rows)
        written.append(storage.write_parquet(key, rows))
    return written
