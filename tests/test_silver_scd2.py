"""SCD2 on a real SQLite-catalog Iceberg table: inserts, updates, deletes, idempotency, one commit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from normalizers import normalize
from ventureos.bronze import read_raw_batch
from ventureos.lakehouse import current_lakehouse
from ventureos.silver import commit_scd2, current_versions, encode_versions, plan_scd2

from .conftest import BUNDLED_SAMPLES

T1, T2, T3 = (datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def batch(rows: pl.DataFrame) -> pl.DataFrame:
    raw = read_raw_batch([("s3://lake/b.csv", rows.write_csv().encode())])
    return normalize(raw.frame, "osha", "severe_injury").filter(pl.col("reject_reason").is_null())


def merge(rows: pl.DataFrame, now: datetime, deleted: set[str] = frozenset()) -> dict[str, int]:
    table = current_lakehouse().violations()
    incoming = batch(rows).with_columns(is_deleted=pl.col("source_id").is_in(list(deleted)))
    plan = plan_scd2(incoming, current_versions(table, incoming["violation_id"].to_list()), now, "run")
    commit_scd2(table, plan, encode_versions(table, plan))
    return plan.counts.drop("agency", "dataset").row(0, named=True)


def silver() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().violations().scan().to_arrow()).sort(
        "violation_id", "valid_from"
    )


def test_insert_update_delete_and_rerun(home: Path) -> None:
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    )
    first = reports.head(5)
    assert merge(first, T1) == {"inserted": 5, "updated": 0, "deleted": 0, "unchanged": 0, "duplicates": 0}
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
    assert counts == {"inserted": 0, "updated": 1, "deleted": 1, "unchanged": 3, "duplicates": 1}
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
    assert again == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 5, "duplicates": 1}
    assert silver().height == 7
    # Exactly one current version per live violation.
    assert silver().filter("is_current")["violation_id"].is_duplicated().sum() == 0
