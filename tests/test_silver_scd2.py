"""SCD2 on a real SQLite-catalog Iceberg table: inserts, updates, deletes, idempotency, one commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from normalizers import get_dataset, normalize
from ventureos.batch import NormalizedBatch
from ventureos.bronze import read_raw_batch
from ventureos.feed import envelope_json
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import feed_record_uri, message_uri, source_as_of
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


def batch(rows: pl.DataFrame, uri: str = "s3://lake/b.csv") -> pl.DataFrame:
    raw = read_raw_batch([(uri, rows.write_csv().encode())])
    return normalize(raw.frame, "osha", "severe_injury").filter(pl.col("reject_reason").is_null())


def merge(
    rows: pl.DataFrame, now: datetime, deleted: set[str] = frozenset(), uri: str = "s3://lake/b.csv"
) -> dict[str, int]:
    """What write_silver does; the counts, plus how many deletes were withdrawn (for quarantine)."""
    table = current_lakehouse().violations()
    incoming = batch(rows, uri).with_columns(is_deleted=pl.col("source_id").is_in(list(deleted)))
    current = current_versions(table, incoming["violation_id"].to_list())
    plan = plan_scd2(incoming, current, now, "run", deleted_before(table, incoming, current))
    commit_scd2(table, plan, encode_versions(table, plan))
    return plan.counts.drop("agency", "dataset").row(0, named=True) | {"withdrawn": plan.withdrawn.height}


def counts_of(**nonzero: int) -> dict[str, int]:
    """What ``merge`` returns, with every count not given as 0."""
    return (
        dict.fromkeys(("inserted", "updated", "deleted", "unchanged", "stale", "duplicates", "withdrawn"), 0)
        | nonzero
    )


def sample() -> pl.DataFrame:
    return pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)


def daily(day: str) -> str:
    return f"s3://lake/bronze/daily/osha/severe_injury/{day}/reports.csv"


HISTORICAL = "s3://lake/bronze/historical/osha/severe_injury/part-1.csv"


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


def current_names() -> dict[str, str]:
    return dict(silver().filter("is_current").select("source_id", "company_name").iter_rows())


def named(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    return rows.with_columns(Employer=pl.lit(name))


def test_source_as_of_of_daily_feed_and_historical_versions() -> None:
    uris = [
        daily("2024-03-06") + "#line=3",
        "s3://lake/bronze/feed/osha/severe_injury/2024-03-07/run-1.jsonl#2024-03-06T21:15:00.250000Z/msg-1",
        "s3://lake/bronze/feed/osha/severe_injury/2024-03-07/run-1.jsonl#msg-1",  # before the sent time
        "feed://q/2024-03-06T21:15:00.250000Z/msg-1",  # replayed from quarantine
        "feed://q/msg-1",  # a poison message: no envelope, no sent time
        HISTORICAL,
        "s3://lake/bronze/daily/osha/severe_injury/2024-13-45/reports.csv",  # not a date
        None,
    ]
    as_of = pl.DataFrame({"meta_source_uri": uris}).select(source_as_of())["meta_source_uri"].to_list()
    assert as_of == [
        datetime(2024, 3, 6, tzinfo=UTC),
        datetime(2024, 3, 6, 21, 15, 0, 250000, tzinfo=UTC),
        None,
        datetime(2024, 3, 6, 21, 15, 0, 250000, tzinfo=UTC),
        None,
        None,
        None,
        None,
    ]
    sent = datetime(2024, 3, 6, 21, 15, 0, 250000, tzinfo=UTC)
    assert (
        feed_record_uri("s3://lake/b.jsonl", sent, "msg-1")
        == "s3://lake/b.jsonl#2024-03-06T21:15:00.250000Z/msg-1"
    )
    assert message_uri("q", "msg-1", sent) == "feed://q/2024-03-06T21:15:00.250000Z/msg-1"


def test_a_record_older_than_the_current_version_changes_nothing(home: Path) -> None:
    """Older as-of: stale; equal: the later ingest wins; newer: applies; no as-of (a historical load):
    older than any dated version, and replaced by any."""
    rows = sample().head(4)
    ids = rows["ID"].to_list()
    assert merge(named(rows, "NEWER NAME"), T1, uri=daily("2024-03-06")) == counts_of(inserted=4)

    assert merge(named(rows, "OLDER NAME"), T2, uri=daily("2024-03-05")) == counts_of(stale=4)
    assert set(current_names().values()) == {"NEWER NAME"} and silver().height == 4

    assert merge(named(rows.head(1), "CORRECTED"), T2, uri=daily("2024-03-06")) == counts_of(updated=1)
    assert merge(named(rows.slice(1, 1), "NEWEST"), T2, uri=daily("2024-03-07")) == counts_of(updated=1)
    assert merge(named(rows.slice(2, 2), "BACKFILL"), T3, uri=HISTORICAL) == counts_of(stale=2)
    assert current_names() == {
        ids[0]: "CORRECTED", ids[1]: "NEWEST", ids[2]: "NEWER NAME", ids[3]: "NEWER NAME"
    }  # fmt: skip

    # A version with no as-of (written by a historical load) is replaced by any dated one.
    unseen = sample().slice(4, 1)
    assert merge(named(unseen, "BACKFILL"), T1, uri=HISTORICAL) == counts_of(inserted=1)
    assert merge(named(unseen, "BACKFILL 2"), T2, uri=HISTORICAL) == counts_of(updated=1)
    assert merge(named(unseen, "DAILY"), T3, uri=daily("2000-01-01")) == counts_of(updated=1)
    assert current_names()[unseen["ID"][0]] == "DAILY"
    assert silver().filter("is_current")["violation_id"].is_duplicated().sum() == 0


def test_deletes_are_ordered_by_as_of_too(home: Path) -> None:
    """An older delete closes nothing; an older record never brings a deleted violation back; a newer
    one does."""
    rows = sample().head(2)
    gone = rows["ID"][0]
    assert merge(rows, T1, uri=daily("2024-03-05")) == counts_of(inserted=2)
    assert merge(rows.head(1), T2, deleted={gone}, uri=daily("2024-03-04")) == counts_of(stale=1)
    assert set(current_names()) == set(rows["ID"])

    assert merge(rows.head(1), T2, deleted={gone}, uri=daily("2024-03-07")) == counts_of(deleted=1)
    assert merge(rows.head(1), T3, uri=daily("2024-03-06")) == counts_of(stale=1)  # a replay of 03-06
    assert merge(rows.head(1), T3, deleted={gone}, uri=daily("2024-03-07")) == counts_of(unchanged=1)
    assert set(current_names()) == {rows["ID"][1]}

    assert merge(rows.head(1), T3, uri=daily("2024-03-08")) == counts_of(inserted=1)
    history = silver().filter(pl.col("source_id") == gone)
    assert history["change_type"].to_list() == ["INSERT", "DELETE", "INSERT"]
    assert history["is_current"].to_list() == [False, False, True]


def test_within_a_batch_the_latest_as_of_of_an_id_wins(home: Path) -> None:
    """Two files of one batch hold the same report: the newer date's wins, whatever the order."""
    row = sample().head(1)
    files = [
        (daily("2024-03-06"), named(row, "NEWER").write_csv().encode()),
        (daily("2024-03-05"), named(row, "OLDER").write_csv().encode()),
    ]
    raw = read_raw_batch(files)
    incoming = normalize(raw.frame, "osha", "severe_injury").filter(pl.col("reject_reason").is_null())
    plan = plan_scd2(incoming, current_versions(current_lakehouse().violations(), []), T1, "run")
    assert plan.counts.drop("agency", "dataset").row(0, named=True) == {
        "inserted": 1, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 0, "duplicates": 1
    }  # fmt: skip
    assert plan.added["company_name"].to_list() == ["NEWER"]


def test_an_update_that_moves_the_event_year_closes_the_version_in_the_old_year(home: Path) -> None:
    """The lookup searches an id first in its incoming row's event-year partition: a correction that
    moves the date to another year must still find (and close) the version filed under the old year."""
    first = sample().head(2)
    assert merge(first, T1, uri=daily("2024-03-01")) == counts_of(inserted=2)
    moved = first.with_columns(
        pl.when(pl.col("ID") == first["ID"][0])
        .then(pl.lit("6/30/2019"))
        .otherwise("EventDate")
        .alias("EventDate")
    )
    assert merge(moved, T2, uri=daily("2024-03-02")) == counts_of(updated=1, unchanged=1)
    rows = silver().filter(pl.col("source_id") == first["ID"][0])
    assert rows["is_current"].to_list() == [False, True]
    assert [d.year for d in rows["event_date"]] == [2015, 2019]
    assert rows["valid_to"].to_list() == [T2, None]


def test_a_violation_re_sent_without_its_inspection_keeps_its_company_and_site(
    home: Path, tmp_path: Path
) -> None:
    """A feed message carries one osha_violation row, never its inspection: the new version takes the
    site from the current one (``normalizers.Recall``), so a settled penalty does not move the
    violation away from its company, city and state; a resent unchanged one stays unchanged."""
    from ventureos.batch import normalize_raw_batch
    from ventureos.feed import parse_envelope, raw_batch
    from ventureos.generate import generate_osha_enforcement
    from ventureos.ingest import SilverTarget, write_silver
    from ventureos.report import build_report

    spec = get_dataset("osha", "enforcement")
    generated = generate_osha_enforcement(40, tmp_path, seed=5)
    files = [(str(p), p.read_bytes()) for p in (*generated.inspection_files, *generated.violation_files)]
    daily_raw = read_raw_batch(files, spec.lookup_of)
    lakehouse = current_lakehouse()

    reports = []

    def write(batch: NormalizedBatch, now: datetime) -> dict[str, int]:
        target = SilverTarget(lakehouse.violations(), now.date().isoformat())
        written = write_silver(lakehouse, [batch], target, "run", now)
        reports.append(build_report("feed-poll", "run", [batch], written.plan, written.written))
        counts = written.plan.counts
        return {k: v for k, v in counts.drop("agency", "dataset").row(0, named=True).items() if v}

    loaded = write(normalize_raw_batch(daily_raw, "osha", "enforcement"), T1)
    before = (
        silver()
        .filter("is_current")
        .filter(
            pl.col("penalty_amount").is_not_null(),
            pl.col("company_name").is_not_null(),
            pl.col("state").is_not_null(),
        )
    )
    same, settled = before.row(0, named=True), before.row(1, named=True)
    raw_rows = pl.read_csv(generated.violation_files[0], infer_schema=False)

    def record(source_id: str, **changed: str) -> dict[str, str | None]:
        activity_nr, citation_id = source_id.split("-", 1)
        row = raw_rows.filter(activity_nr=activity_nr, citation_id=citation_id).row(0, named=True)
        return row | changed

    unknown = {"activity_nr": "999", "citation_id": "01001", "issuance_date": "20240301", "viol_type": "S"}
    records = [record(same["source_id"]), record(settled["source_id"], current_penalty="1.00"), unknown]
    envelopes = [
        parse_envelope(
            envelope_json("osha", "enforcement", r, sent_at=T2, message_id=f"m{i}"), f"q{i}", 10_000
        )
        for i, r in enumerate(records)
    ]
    feed = normalize_raw_batch(
        raw_batch(envelopes, "s3://lake/bronze/feed/osha/enforcement/x.jsonl"), "osha", "enforcement"
    )
    assert feed.valid["quality_issues"].list.contains("missing_inspection").all()  # as the message came

    assert write(feed, T3) == {"updated": 1, "unchanged": 1, "inserted": 1}
    now = silver().filter("is_current")
    site = ["company_name", "company_slug", "address", "city", "state", "zip", "naics_code"]
    new = now.filter(source_id=settled["source_id"]).row(0, named=True)
    assert {c: new[c] for c in site} == {c: settled[c] for c in site}
    assert (new["penalty_amount"], new["quality_issues"]) == (Decimal("1.00"), settled["quality_issues"])
    assert now.filter(source_id=same["source_id"])["valid_from"].item() == T1
    fresh = now.filter(source_id="999-01001").row(0, named=True)
    assert (fresh["company_name"], fresh["quality_issues"][0]) == (None, "missing_inspection")
    assert loaded["inserted"] == now.height - 1
    # The run report counts the issues silver holds: only the unknown one lacks its inspection.
    assert reports[-1].as_dict()["quality_issues"].get("missing_inspection") == 1
