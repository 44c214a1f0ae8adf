"""SCD2 on a real SQLite-catalog Iceberg table: inserts, updates, deletes, idempotency, one commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from normalizers import normalize
from ventureos.bronze import read_raw_batch
from ventureos.lakehouse import current_lakehouse
from ventureos.schemas import ROW, SOURCE_URI
from ventureos.silver import (
    commit_scd2,
    current_versions,
    deleted_before,
    encode_versions,
    plan_scd2,
)

from .conftest import BUNDLED_SAMPLES

T1, T2, T3 = (datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def batch(rows: pl.DataFrame) -> pl.DataFrame:
    raw = read_raw_batch([("s3://lake/b.csv", rows.write_csv().encode())])
    return normalize(raw.frame, "osha", "severe_injury").filter(pl.col("reject_reason").is_null())


def merge(rows: pl.DataFrame, now: datetime, deleted: set[str] = frozenset()) -> dict[str, int]:
    """What write_silver does; the counts, plus how many deletes were withdrawn (for quarantine)."""
    table = current_lakehouse().violations()
    incoming = batch(rows).with_columns(is_deleted=pl.col("source_id").is_in(list(deleted)))
    current = current_versions(table, incoming["violation_id"].to_list())
    plan = plan_scd2(incoming, current, now, "run", deleted_before(table, incoming, current))
    commit_scd2(table, plan, encode_versions(table, plan))
    return plan.counts.drop("agency", "dataset").row(0, named=True) | {"withdrawn": plan.withdrawn.height}


def counts_of(**nonzero: int) -> dict[str, int]:
    """What ``merge`` returns, with every count not given as 0."""
    return (
        dict.fromkeys(("inserted", "updated", "deleted", "unchanged", "stale", "duplicates", "withdrawn"), 0) | nonzero
    )


def silver() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().violations().scan().to_arrow()).sort(
        "violation_id", "valid_from"
    )


def test_insert_update_delete_and_rerun(home: Path) -> None:
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    )
    first = reports.head(5)
    counts = merge(first, T1)
    assert counts == counts_of(inserted=5)
    snapshots = len(current_lakehouse().violations().snapshots())

    # Second delivery: one report corrected, one withdrawn, one repeated twice in the batch.
    corrected = first.with_columns(
        pl.when(pl.col("ID") == first["ID"][0])
        .then(pl.lit("PATCHED EMPLOYER"))
        .otherwise("Employer")
        .alias("Employer")
    )
    second = pl.concat([corrected, corrected.slice(4, 1)])
    counts = merge(second, T2, deleted={first["ID"][1]})
    assert counts == counts_of(updated=1, deleted=1, unchanged=3, duplicates=1)
    # Closing and adding versions is one atomic commit.
    assert len(current_lakehouse().violations().snapshots()) - snapshots <= 2

    rows = silver()
    assert rows.height == 7
    current = rows.filter("is_current")
    assert current.height == 4
    assert current.filter(pl.col("source_id") == first["ID"][0])["company_name"].item() == "PATCHED EMPLOYER"
    history = rows.filter(pl.col("source_id") == first["ID"][0])
    assert history["change_type"].to_list() == ["INSERT", "UPDATE"]
    assert history["valid_to"].to_list() == [T2, None]
    assert history["is_current"].to_list() == [False, True]
    withdrawn = rows.filter(pl.col("source_id") == first["ID"][1])
    assert withdrawn["change_type"].to_list() == ["INSERT", "DELETE"]
    assert withdrawn["is_current"].to_list() == [False, False]

    # The same delivery again changes nothing; a delete of an already deleted id is a no-op.
    again = merge(second, T3, deleted={first["ID"][1]})
    assert again == counts_of(unchanged=5, duplicates=1)
    assert silver().height == 7

    # A delete of a report silver never held closes nothing: withdrawn (to quarantine), not unchanged.
    unseen = reports.slice(5, 2)
    fresh = merge(unseen, T3, deleted={unseen["ID"][0]})
    assert fresh == counts_of(inserted=1, withdrawn=1)
    assert silver().height == 8
    # Exactly one current version per live violation.
    assert silver().filter("is_current")["violation_id"].is_duplicated().sum() == 0


def test_daily_path_quarantines_withdrawn_deletes_and_reconciles(home: Path) -> None:
    """A citation deleted before silver ever held it lands in quarantine with its raw record."""
    from ventureos.batch import normalize_raw_batch
    from ventureos.bronze import RawBatch
    from ventureos.ingest import SilverTarget, write_silver
    from ventureos.report import build_report
    from ventureos.silver import WITHDRAWN

    def delivery(rows: list[dict[str, str]]) -> list:
        raw = pl.DataFrame(rows).with_row_index(ROW).with_columns(pl.lit("s3://lake/v.csv").alias(SOURCE_URI))
        inspection = pl.DataFrame({"activity_nr": ["1"], "estab_name": ["ACME"], "open_date": ["20240101"]})
        return [normalize_raw_batch(RawBatch(raw, lookups={"inspection": inspection}), "osha", "enforcement")]

    def run(batches: list, now: datetime) -> dict[str, int]:
        lakehouse = current_lakehouse()
        target = SilverTarget(lakehouse.violations(), now.date().isoformat())
        plan = write_silver(lakehouse, batches, target, "run", now).plan
        report = build_report("daily-ingest", "run", batches, plan, [])
        assert report.reconciled
        return {k: v for k, v in report.totals.items() if v}

    live = {"activity_nr": "1", "citation_id": "01001", "issuance_date": "20240102"}
    gone = {"activity_nr": "1", "citation_id": "01002", "issuance_date": "20240102", "delete_flag": "D"}
    assert run(delivery([live, gone]), T1) == {"read": 2, "inserted": 1, "quarantined": 1}
    quarantine = pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow())
    assert quarantine.select("source_uri", "reason").rows() == [("s3://lake/v.csv", WITHDRAWN)]
    assert json.loads(quarantine["raw_payload"].item())["citation_id"] == "01002"

    # The live one is deleted now (closed); delivered again, its delete is no news, not withdrawn.
    deleted = {**live, "delete_flag": "D"}
    assert run(delivery([deleted, gone]), T2) == {"read": 2, "deleted": 1, "quarantined": 1}
    assert run(delivery([deleted, gone]), T3) == {"read": 2, "unchanged": 1, "quarantined": 1}
    assert current_lakehouse().quarantine().scan().to_arrow().num_rows == 1  # stored once
