"""A normalized batch of one dataset: valid violations plus every rejected input with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from normalizers import UnknownDatasetError, normalize
from ventureos.bronze import PAYLOAD_SCHEMA, REJECT_SCHEMA, RawBatch, record_payloads, record_rejects
from ventureos.schemas import ROW
from ventureos.silver import WITHDRAWN, withdrawn_records


@dataclass
class NormalizedBatch:
    agency: str
    dataset: str
    valid: pl.DataFrame
    """Finalized rows that can become violations (normalized columns + ids, slug, quality, hash)."""
    rejects: pl.DataFrame
    """``source_uri, reason, raw_payload`` of files and records that cannot."""
    records_read: int
    deleted: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PAYLOAD_SCHEMA))
    """``ROW``, source_uri, reason, raw_payload of the valid records the source marks deleted: the ones
    with no version in silver go to quarantine (``Scd2Plan.withdrawn``), after the plan says which."""

    @classmethod
    def empty(cls, agency: str, dataset: str) -> NormalizedBatch:
        return cls(agency, dataset, pl.DataFrame(), pl.DataFrame(schema=REJECT_SCHEMA), 0)

    def to_quarantine(self, withdrawn: pl.DataFrame, reason: str = WITHDRAWN) -> pl.DataFrame:
        """Rejects plus the deletes the SCD2 plan found withdrawn (``Scd2Plan.withdrawn``)."""
        return pl.concat(
            [self.rejects, withdrawn_records(self.deleted, withdrawn, self.agency, self.dataset, reason)]
        )


def normalize_raw_batch(raw: RawBatch, agency: str, dataset: str) -> NormalizedBatch:
    if raw.frame.is_empty():
        return NormalizedBatch(agency, dataset, pl.DataFrame(), raw.rejects, raw.records_read)
    try:
        normalized = normalize(raw.frame, agency, dataset, raw.lookups)
    except UnknownDatasetError as exc:
        normalized = raw.frame.select(ROW, pl.lit(str(exc)).alias("reject_reason"))
    rejects = pl.concat([raw.rejects, record_rejects(raw.frame, normalized)])
    valid = normalized.filter(pl.col("reject_reason").is_null())
    deleted = pl.DataFrame()
    if "is_deleted" in valid.columns:  # not when the dataset is unknown (every record rejected)
        deleted = valid.filter(pl.col("is_deleted")).select(ROW, reason=pl.lit(WITHDRAWN))
    deleted = record_payloads(raw.frame, deleted)
    return NormalizedBatch(agency, dataset, valid, rejects, raw.records_read, deleted)
