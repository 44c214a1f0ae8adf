"""The quarantine table read and replayed: what was set aside, and moving records that now pass into silver.

Replay rules:

- Only a payload that is one record (a JSON object: the source record, or a feed envelope holding one)
  can be replayed. A whole-file reject (binary, empty, unparseable JSON), an unparsed CSV row or JSON
  line, and a row with no agency/dataset stay where they are (``NOT_ONE_RECORD``, ``NO_DATASET``).
- A record of a dataset with lookups (OSHA enforcement's inspections, EPA ICIS's facilities) read from
  bronze needs its lookup rows, which the payload does not hold: it stays (``NEEDS_LOOKUP``). A feed
  record is replayed: the feed path never joins lookups either.
- The replayable records of one agency/dataset become one raw frame (every column a string) and go
  through ``normalize_raw_batch`` and the silver write like any daily batch. Each record's lineage is
  the source URI of its quarantine row.
- A record that still fails keeps its quarantine row when its reason is the same (same id: the
  quarantine append skips it); with a new reason a row with the new reason and the original payload
  is added, and the old row goes with the released ones.
- Quarantine rows leave (``release``) only after the silver commit: a run that crashes between the two
  finds the records unchanged in silver on its re-run, and releases them then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import polars as pl
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, GreaterThanOrEqual, In
from pyiceberg.table import Table

from normalizers import REGISTRY
from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import PAYLOAD_SCHEMA, REJECT_SCHEMA, RawBatch, records_frame, without_reserved_fields
from ventureos.layout import source_as_of
from ventureos.schemas import QUARANTINE_POLARS, ROW, SOURCE_URI
from ventureos.silver import WITHDRAWN, Scd2Plan, current_versions

NOT_ONE_RECORD = "not one record (a whole file or unparsed text): cannot be replayed"
NEEDS_LOOKUP = "needs its lookup rows ({lookups}), which the payload does not hold: cannot be replayed"
NO_DATASET = "no agency/dataset: cannot be replayed"
FEED_SCHEME = "feed://"
EXCERPT_CHARS = 80
LIST_COLUMNS = ("agency", "dataset", "source_uri", "reason", "quarantined_at", "raw_payload")


# Listing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which quarantine rows a command works on; every filter is optional."""

    agency: str | None = None
    dataset: str | None = None
    reason: str | None = None
    """A substring of the reason (case-insensitive)."""
    since: date | None = None
    """Rows quarantined on or after this day (UTC)."""

    def row_filter(self) -> BooleanExpression:
        """The filters Iceberg can push down (agency, dataset, since); the reason is matched after."""
        terms: list[BooleanExpression] = []
        if self.agency:
            terms.append(EqualTo("agency", self.agency))
        if self.dataset:
            terms.append(EqualTo("dataset", self.dataset))
        if self.since:
            start = datetime.combine(self.since, time.min, tzinfo=UTC)
            terms.append(GreaterThanOrEqual("quarantined_at", start.isoformat()))
        if not terms:
            return AlwaysTrue()
        return terms[0] if len(terms) == 1 else And(*terms)


def parse_since(value: str | None) -> date | None:
    """``--since YYYY-MM-DD``, with a message that names the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since must be a calendar day as YYYY-MM-DD, got {value!r}") from None


def read_quarantine(table: Table, selection: Selection) -> pl.DataFrame:
    """The selected quarantine rows, newest first (then by source URI, for a stable order)."""
    arrow = table.scan(row_filter=selection.row_filter()).to_arrow()
    frame = pl.DataFrame(pl.from_arrow(arrow)).cast(QUARANTINE_POLARS)
    if selection.reason:
        needle = selection.reason.lower()
        frame = frame.filter(pl.col("reason").str.to_lowercase().str.contains(needle, literal=True))
    return frame.sort(["quarantined_at", "source_uri"], descending=[True, False], nulls_last=True)


def reason_counts(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows per agency, dataset and reason, the most frequent first."""
    return (
        rows.group_by("agency", "dataset", "reason")
        .agg(pl.len().cast(pl.Int64).alias("rows"))
        .sort(
            ["rows", "agency", "dataset", "reason"], descending=[True, False, False, False], nulls_last=True
        )
    )


def listing(rows: pl.DataFrame, limit: int | None = None) -> pl.DataFrame:
    """The rows to show: lineage, reason, time and the payload's first ``EXCERPT_CHARS`` characters."""
    shown = rows.head(limit) if limit is not None else rows
    return shown.select(
        *LIST_COLUMNS[:-1],
        pl.when(pl.col("raw_payload").str.len_chars() > EXCERPT_CHARS)
        .then(pl.col("raw_payload").str.head(EXCERPT_CHARS - 1) + "…")
        .otherwise(pl.col("raw_payload"))
        .alias("payload"),
    )


# Replay -------------------------------------------------------------------------------------------


def payload_record(payload: str | None) -> dict[str, Any] | None:
    """The one record a quarantine payload holds, or None when it holds something else.

    A record's payload is a JSON object of its source fields; a feed message's is its envelope, whose
    ``record`` is an object (a source field is always text in a payload, never an object).
    """
    if not payload:
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(value, dict) or not value:
        return None
    record = value.get("record")
    if isinstance(record, dict) and isinstance(value.get("agency"), str):
        return record or None
    return value


@dataclass
class DatasetReplay:
    """One agency/dataset's replay: the batch for the silver write and what each quarantine row became."""

    batch: NormalizedBatch
    row_ids: pl.DataFrame
    """``ROW`` -> ``quarantine_id`` of the records that passed the normalizer (a withdrawn delete among
    them stays quarantined: only the silver plan knows which)."""
    superseded: list[str] = field(default_factory=list)
    """Ids of rows that still fail with a new reason: a row with that reason is added, they go."""
    not_replayable: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    """Rows left as they are, with why (``source_uri``, ``reason``: why not, ``raw_payload``)."""
    stale: list[str] = field(default_factory=list)
    """Ids of rows that pass but whose violation silver holds in a newer version with other content
    (delivered after the row was quarantined): kept out of the batch, released, counted as stale."""


def _lineage_of(rows: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Rejects keyed by quarantine id (in ``source_uri``) back to their row's source URI and payload."""
    return (
        frame.rename({"source_uri": "quarantine_id"})
        .join(
            rows.select("quarantine_id", "source_uri", "raw_payload", old_reason="reason"), on="quarantine_id"
        )
        .select("quarantine_id", "source_uri", "reason", "old_reason", "raw_payload")
    )


def replay_dataset(agency: str, dataset: str, rows: pl.DataFrame) -> DatasetReplay:
    """Re-normalize one agency/dataset's quarantine rows with today's normalizer (pure)."""
    entry = REGISTRY.get(f"{agency}/{dataset}")
    lookups = ", ".join(entry.lookups) if entry and entry.lookups else ""
    records = [payload_record(p) for p in rows["raw_payload"]]
    why_not = [
        NOT_ONE_RECORD
        if record is None
        else NEEDS_LOOKUP.format(lookups=lookups)
        if lookups and not (uri or "").startswith(FEED_SCHEME)
        else None
        for record, uri in zip(records, rows["source_uri"], strict=True)
    ]
    marked = rows.with_columns(pl.Series("_why_not", why_not, dtype=pl.String))
    left = marked.filter(pl.col("_why_not").is_not_null())
    replayable = marked.filter(pl.col("_why_not").is_null())
    kept = left.select(REJECT_SCHEMA.names())  # stay as they are: same id, the append skips them
    parsed, reserved = without_reserved_fields(
        records_frame([r for r, w in zip(records, why_not, strict=True) if w is None and r is not None])
    )
    reserved_positions = {bad.line for bad in reserved}
    ids = replayable["quarantine_id"]
    raw = RawBatch(
        frame=parsed.with_columns(
            pl.Series(
                SOURCE_URI, [q for i, q in enumerate(ids) if i not in reserved_positions], dtype=pl.String
            )
        ).with_row_index(ROW)
    )
    normalized = normalize_raw_batch(raw, agency, dataset)
    reserved_rejects = pl.DataFrame(
        {"source_uri": [ids[bad.line] for bad in reserved], "reason": [bad.reason for bad in reserved]},
        schema={"source_uri": pl.String, "reason": pl.String},
    )
    failing = _lineage_of(
        replayable, pl.concat([reserved_rejects, normalized.rejects.select("source_uri", "reason")])
    )
    lineage = replayable.select("quarantine_id", "source_uri", "raw_payload")
    valid, incomplete = normalized.valid, normalized.incomplete
    row_ids = pl.DataFrame(schema={ROW: pl.UInt32, "quarantine_id": pl.String})
    if not valid.is_empty():
        row_ids = valid.select(pl.col(ROW).cast(pl.UInt32), pl.col(SOURCE_URI).alias("quarantine_id"))
        uri_of = pl.col(SOURCE_URI).replace_strict(lineage["quarantine_id"], lineage["source_uri"])
        valid = valid.with_columns(uri_of)
        if not incomplete.is_empty():
            incomplete = incomplete.with_columns(uri_of)
    deleted = (
        normalized.deleted.rename({"source_uri": "quarantine_id"})
        .drop("raw_payload")
        .join(lineage, on="quarantine_id")
        .select(PAYLOAD_SCHEMA.names())
        .cast(PAYLOAD_SCHEMA)
    )
    batch = NormalizedBatch(
        agency,
        dataset,
        valid,
        pl.concat([kept, failing.select(REJECT_SCHEMA.names())]),
        rows.height,
        deleted,
        incomplete,
    )
    superseded = failing.filter(pl.col("reason") != pl.col("old_reason"))["quarantine_id"].to_list()
    return DatasetReplay(
        batch, row_ids, superseded, left.select("source_uri", reason="_why_not", raw_payload="raw_payload")
    )


@dataclass
class Replay:
    """Every selected dataset's replay, and the rows that belong to no dataset."""

    datasets: list[DatasetReplay]
    no_dataset: int = 0

    @property
    def batches(self) -> list[NormalizedBatch]:
        return [d.batch for d in self.datasets]

    def not_replayable(self) -> dict[str, int]:
        """Rows left as they are, by why."""
        frames = [d.not_replayable for d in self.datasets]
        counts: dict[str, int] = {NO_DATASET: self.no_dataset} if self.no_dataset else {}
        if frames:
            by_why = pl.concat(frames).group_by("reason").agg(pl.len()).sort("reason")
            counts |= dict(zip(by_why["reason"], by_why["len"], strict=True))
        return counts

    def released(self, plan: Scd2Plan, rows: pl.DataFrame, withdrawn_reason: str = WITHDRAWN) -> list[str]:
        """Quarantine ids to delete after the silver commit.

        A record now in silver (inserted, updated, deleted, unchanged, or a duplicate of one) leaves; so
        does a row that a row with a new reason replaces. A delete the plan found withdrawn is quarantined
        again with ``withdrawn_reason``: its row stays when that was its reason already, else it is replaced.
        """
        old_reason = dict(zip(rows["quarantine_id"], rows["reason"], strict=True))
        ids: set[str] = set()
        for d in self.datasets:
            withdrawn = plan.withdrawn.filter(agency=d.batch.agency, dataset=d.batch.dataset).select(ROW)
            ids.update(d.row_ids.join(withdrawn, on=ROW, how="anti")["quarantine_id"])
            moved = d.row_ids.join(withdrawn, on=ROW, how="semi")["quarantine_id"]
            ids.update(q for q in moved if old_reason.get(q) != withdrawn_reason)
            ids.update(d.superseded)
            ids.update(d.stale)
        return sorted(ids)

    def with_stale(self, counts: pl.DataFrame) -> pl.DataFrame:
        """A run report's counts (``RUN_COUNTS`` per agency/dataset) with the records kept out here added
        to ``stale``: older than the version of their violation that silver holds, as the silver plan's
        own stale records are."""
        stale = pl.DataFrame(
            {
                "agency": [d.batch.agency for d in self.datasets],
                "dataset": [d.batch.dataset for d in self.datasets],
                "_stale": [len(d.stale) for d in self.datasets],
            },
            schema={"agency": pl.String, "dataset": pl.String, "_stale": pl.Int64},
        )
        return (
            counts.join(stale, on=["agency", "dataset"], how="left")
            .with_columns(stale=pl.col("stale") + pl.col("_stale").fill_null(0))
            .drop("_stale")
        )


def drop_stale(replay: Replay, rows: pl.DataFrame, violations: Table) -> int:
    """Keep out of the batches the passing records with no as-of (``layout.source_as_of``: a historical
    load's rows) whose violation silver holds in a version written after the record was quarantined,
    with other content: a later delivery superseded them, and replaying the older content would make
    it current again. Same content passes on (unchanged: the re-run of a replay that crashed after its
    silver commit). A record with an as-of (a daily date, a feed message's sent time) is left to the
    silver plan's guard, which orders by source, not by when silver was written. Returns how many were
    kept out (``DatasetReplay.stale``).
    """
    quarantined_at = rows.select("quarantine_id", "quarantined_at")
    kept_out = 0
    for d in replay.datasets:
        valid = d.batch.valid
        if valid.is_empty():
            continue
        current = current_versions(
            violations,
            valid["violation_id"].unique().to_list(),
            ("violation_id", "record_hash", "valid_from"),
        ).rename({"record_hash": "_current_hash"})
        stale = (
            valid.filter(source_as_of(SOURCE_URI).is_null())
            .select(pl.col(ROW).cast(pl.UInt32), "violation_id", "record_hash")
            .join(d.row_ids, on=ROW)
            .join(quarantined_at, on="quarantine_id")
            .join(current, on="violation_id")
            .filter(
                (pl.col("valid_from") > pl.col("quarantined_at"))
                & (pl.col("_current_hash") != pl.col("record_hash"))
            )
        )
        if stale.is_empty():
            continue
        out = pl.col(ROW).is_in(stale[ROW].implode())
        d.batch.valid = valid.filter(~out)
        d.batch.deleted = d.batch.deleted.filter(~out)
        d.row_ids = d.row_ids.filter(~out)
        d.stale = stale["quarantine_id"].to_list()
        kept_out += stale.height
    return kept_out


def plan_replay(rows: pl.DataFrame) -> Replay:
    """Group the selected quarantine rows by agency/dataset and re-normalize each group (pure)."""
    known = pl.col("agency").is_not_null() & pl.col("dataset").is_not_null()
    # Oldest first: within a batch the last record of a violation wins, as in a daily batch.
    ordered = (
        rows.filter(known)
        .unique("quarantine_id", keep="first")  # one record per id, even if two writers stored it twice
        .sort("quarantined_at", "source_uri", "quarantine_id")
    )
    groups = ordered.group_by("agency", "dataset", maintain_order=True)
    datasets = [replay_dataset(str(agency), str(dataset), group) for (agency, dataset), group in groups]
    return Replay(datasets, no_dataset=rows.filter(~known).height)


def release(table: Table, quarantine_ids: list[str]) -> int:
    """Delete these rows from the quarantine table (one commit); returns how many were there."""
    if not quarantine_ids:
        return 0
    row_filter = In("quarantine_id", set(quarantine_ids))
    present = table.scan(row_filter=row_filter, selected_fields=("quarantine_id",)).to_arrow().num_rows
    if present:
        table.delete(row_filter)
    return present
