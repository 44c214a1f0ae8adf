"""A normalized batch of one dataset: valid violations plus every rejected input with its reason."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from normalizers import UnknownDatasetError, normalize
from normalizers.common import ROW
from ventureos.bronze import REJECT_SCHEMA, RawBatch, record_rejects


@dataclass
class NormalizedBatch:
    agency: str
    dataset: str
    valid: pl.DataFrame
    """Finalized rows that can become violations (normalized columns + ids, slug, quality, hash)."""
    rejects: pl.DataFrame
    """``source_uri, reason, raw_payload`` of files and records that cannot."""
    records_read: int

    @classmethod
    def empty(cls, agency: str, dataset: str) -> NormalizedBatch:
        return cls(agency, dataset, pl.DataFrame(), pl.DataFrame(schema=REJECT_SCHEMA), 0)


def normalize_raw_batch(raw: RawBatch, agency: str, dataset: str) -> NormalizedBatch:
    if raw.frame.is_empty():
        return NormalizedBatch(agency, dataset, pl.DataFrame(), raw.rejects, raw.records_read)
    try:
        normalized = normalize(raw.frame, agency, dataset, raw.lookups)
    except UnknownDatasetError as exc:
        normalized = raw.frame.select(ROW, pl.lit(str(exc)).alias("reject_reason"))
    rejects = pl.concat([raw.rejects, record_rejects(raw.frame, normalized)])
    valid = normalized.filter(pl.col("reject_reason").is_null())
    return NormalizedBatch(agency, dataset, valid, rejects, raw.records_read)
