"""Dual write: the versions a batch adds to silver, also as Parquet buffer files by ingest date.

The buffer files are the very bytes encoded for silver's data files (one per partition and dataset).
Their names derive from the write's content id, so a re-run that writes the same versions overwrites
the same files instead of adding duplicates.
"""

from __future__ import annotations

import uuid

from ventureos.datafiles import EncodedFile, file_uuid
from ventureos.storage import Storage

BUFFER_PREFIX = "silver/violations/buffer"


def buffer_key(ingest_date: str, agency: str, dataset: str, file_id: uuid.UUID) -> str:
    return f"{BUFFER_PREFIX}/ingest_date={ingest_date}/{agency}-{dataset}-{file_id}.parquet"


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
