"""A normalized batch of one dataset: valid violations plus every rejected input with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from normalizers import REGISTRY, Recall, UnknownDatasetError, normalize
from ventureos.bronze import PAYLOAD_SCHEMA, REJECT_SCHEMA, RawBatch, record_payloads, record_rejects
from ventureos.schemas import LINEAGE, ROW
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
    incomplete: pl.DataFrame = field(default_factory=pl.DataFrame)
    """Raw rows (with lineage) of the valid records that arrived without their lookup row
    (``normalizers.Recall``): ``recalled`` normalizes them again with it, once their current versions
    are read."""

    @classmethod
    def empty(cls, agency: str, dataset: str) -> NormalizedBatch:
        return cls(agency, dataset, pl.DataFrame(), pl.DataFrame(schema=REJECT_SCHEMA), 0)

    def recalled(self, current: pl.DataFrame) -> pl.DataFrame:
        """``valid``, where each record that arrived without its lookup row is normalized again with
        that row rebuilt from its violation's current version (when that version had it): a violation
        re-sent without its inspection keeps its company and site, and one re-sent unchanged stays
        unchanged. ``current``: silver's current versions of (at least) these records."""
        recall = _recall(self.agency, self.dataset)
        if recall is None or self.incomplete.is_empty() or current.is_empty():
            return self.valid
        complete = current.filter(
            pl.col("violation_id").is_in(self.valid["violation_id"].implode()),
            ~pl.col("quality_issues").list.contains(recall.flag),
        )
        lineage = self.valid.join(complete.select("violation_id"), on="violation_id", how="semi").select(
            LINEAGE
        )
        if lineage.is_empty():
            return self.valid
        again = normalize(
            self.incomplete.join(lineage, on=list(LINEAGE), how="semi"),
            self.agency,
            self.dataset,
            {recall.lookup: recall.rows(complete)},
        ).filter(pl.col("reject_reason").is_null())
        # In place, so the batch keeps its order (the last of an id's records wins).
        ordered = self.valid.with_row_index("_order")
        kept = ordered.join(again.select(LINEAGE), on=list(LINEAGE), how="anti")
        replaced = ordered.select("_order", *LINEAGE).join(again, on=list(LINEAGE)).select(kept.columns)
        return pl.concat([kept, replaced], how="vertical_relaxed").sort("_order").drop("_order")

    def to_quarantine(self, withdrawn: pl.DataFrame, reason: str = WITHDRAWN) -> pl.DataFrame:
        """Rejects plus the deletes the SCD2 plan found withdrawn (``Scd2Plan.withdrawn``)."""
        return pl.concat(
            [self.rejects, withdrawn_records(self.deleted, withdrawn, self.agency, self.dataset, reason)]
        )


def _recall(agency: str, dataset: str) -> Recall | None:
    entry = REGISTRY.get(f"{agency}/{dataset}")
    return entry.recall if entry else None


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
    recall = _recall(agency, dataset)
    incomplete = pl.DataFrame()
    if recall is not None and not valid.is_empty():
        flagged = valid.filter(pl.col("quality_issues").list.contains(recall.flag)).select(LINEAGE)
        incomplete = raw.frame.join(flagged, on=list(LINEAGE), how="semi")
    return NormalizedBatch(agency, dataset, valid, rejects, raw.records_read, deleted, incomplete)
