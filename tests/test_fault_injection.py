"""Fault injection: each attack runs on a fresh embedded home, then ``check_invariants`` must be empty.

The attacks: two daily runs overlapping on shared ids, a replay of an older date (and of an older feed
message) after a newer one, a daily run during a historical load, a crash between the silver and gold
commits (another run, the re-run, ``gold-sync --rebuild``), a crash between the buffer write and the
commit (a different run, monthly-consolidate), and hostile files in one daily run. The session prints the table attack -> outcome -> invariants (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import ventureos.archive as archive
import ventureos.ingest
from flows.daily_ingest import daily_ingest
from flows.feed_poll import feed_poll
from flows.gold_sync import gold_sync
from flows.historical_load import historical_load
from flows.monthly_consolidate import monthly_consolidate
from ventureos.archive import COMMITTED_KEY
from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.buffer import encode_buffer_files, write_buffer_files
from ventureos.feed import envelope_json
from ventureos.gold import update_gold_tables
from ventureos.ingest import SilverTarget, SilverWrite, plan_batches, write_silver
from ventureos.invariants import check_invariants, read_silver, versions_in_source_order
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import ARCHIVE_PREFIX, BUFFER_PREFIX, HISTORICAL_PREFIX
from ventureos.queue import current_queue
from ventureos.serving import open_store
from ventureos.serving.live_feed import update_after_batch
from ventureos.settings import load_settings
from ventureos.silver import content_id

from .conftest import ATTACKS, BUNDLED_SAMPLES
from .test_concurrent_writers import delivery, write_concurrently
from .test_gold_sync import crash_after_the_silver_commit

pytestmark = pytest.mark.usefixtures("prefect_harness")

DAY1, DAY2, DAY3 = "2024-03-05", "2024-03-06", "2024-03-07"
CRASHED_AT, RAN_AT = datetime(2024, 3, 5, 6, tzinfo=UTC), datetime(2024, 3, 5, 7, tzinfo=UTC)
SEVERE = "bronze/daily/osha/severe_injury"


def reports() -> pl.DataFrame:
    return pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)


def stage(day: str, rows: pl.DataFrame | bytes, name: str = "reports.csv", folder: str = SEVERE) -> None:
    data = rows if isinstance(rows, bytes) else rows.write_csv().encode()
    current_lakehouse().storage.write_bytes(f"{folder}/{day}/{name}", data)


def current() -> pl.DataFrame:
    return read_silver(current_lakehouse()).filter("is_current")


def buffer_keys() -> list[str]:
    return sorted(k for k in current_lakehouse().storage.list(BUFFER_PREFIX) if k.endswith(".parquet"))


@dataclass
class Outcome:
    """What an attack did, in a few words, recorded before its own assertions run."""

    text: str = "raised before an outcome"
    notes: list[str] = field(default_factory=list)


@pytest.mark.parametrize("id_filter_limit", [archive.ID_FILTER_LIMIT, 0], ids=["id-filter", "agency-scan"])
def test_sweep_archives_only_silver_versions(
    home: Path, monkeypatch: pytest.MonkeyPatch, id_filter_limit: int
) -> None:
    """A run plans and writes its buffer file, then dies before its commit; a different run (2 of the
    same reports, 2 others) commits. The sweep reads silver by ids, or by agency above the limit."""
    monkeypatch.setattr(archive, "ID_FILTER_LIMIT", id_filter_limit)
    lakehouse, rows = current_lakehouse(), reports()
    table = lakehouse.violations()
    plan = plan_batches(table, delivery(rows.slice(0, 4), "crashed"), "run-crashed", CRASHED_AT)
    files = encode_buffer_files(table.schema(), plan.added)
    [orphan] = write_buffer_files(lakehouse.storage, files, DAY1, content_id(plan))
    write_silver(lakehouse, delivery(rows.slice(2, 4), "next"), SilverTarget(table, DAY1), "run-next", RAN_AT)

    result = archive.consolidate_month(lakehouse.storage, "2024-03", lakehouse.violations())
    assert result.reconciled and (result.rows_in, result.rows_added, result.orphaned) == (8, 4, 4)
    assert result.orphaned_files == [lakehouse.storage.key_of(orphan)]
    assert "orphaned 4" in result.summary_line() and lakehouse.storage.key_of(orphan) in result.markdown()
    archived = pl.concat([lakehouse.storage.read_parquet(k) for k in lakehouse.storage.list(ARCHIVE_PREFIX)])
    silver = read_silver(lakehouse)
    assert sorted(archived.select(COMMITTED_KEY).rows()) == sorted(silver.select(COMMITTED_KEY).rows())
    assert set(archived["valid_from"]) == {RAN_AT} and buffer_keys() == []


def test_the_checker_sees_a_version_older_than_the_one_it_replaced() -> None:
    """Invariant 6, on versions as a replay without the guard wrote them (DAY1 after DAY2), and as it
    may be (a daily version after a backfilled one, a re-run of the same date)."""
    daily = f"s3://lake/{SEVERE}/{{}}/reports.csv"
    ingested = [datetime(2024, 3, 7, hour, tzinfo=UTC) for hour in (1, 2, 3)]

    def versions(*uris: str) -> pl.DataFrame:
        return pl.DataFrame(
            {"violation_id": "v", "valid_from": ingested[: len(uris)], "meta_source_uri": list(uris)}
        )

    replayed = versions(daily.format(DAY1), daily.format(DAY2), daily.format(DAY1))
    assert versions_in_source_order(replayed) == [
        "silver: 1 id(s) with a version older than one it replaced, e.g. v"
    ]
    in_order = versions(
        "s3://lake/bronze/historical/osha/severe_injury/part-1.csv", daily.format(DAY1), daily.format(DAY1)
    )
    assert versions_in_source_order(in_order) == []


# Attacks ----------------------------------------------------------------------------------------


def follow_silver(writes: list[SilverWrite], now: datetime) -> None:
    """What a run does after its silver write (gold, the live feed), for writes made here directly;
    then gold-sync."""
    lakehouse = current_lakehouse()
    store = open_store(load_settings())
    store.create_tables()
    for write in writes:
        update_gold_tables(lakehouse.catalog, lakehouse.violations(), write.plan, now)
        update_after_batch(store, lakehouse.violations(), write.plan)
    gold_sync()


def batch_from(uri: str, rows: pl.DataFrame) -> list[NormalizedBatch]:
    """One normalized batch of the reports ``rows``, read as the bronze object ``uri``."""
    raw = read_raw_batch([(uri, rows.write_csv().encode())])
    return [normalize_raw_batch(raw, "osha", "severe_injury")]


def overlapping_runs(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two daily deliveries sharing 3 new ids plan against the same snapshot before either commits."""
    rows = reports()
    shared, only_a, only_b = rows.slice(0, 3), rows.slice(3, 2), rows.slice(5, 4)
    deliveries = {
        "a": delivery(pl.concat([shared, only_a]), "a"),
        "b": delivery(pl.concat([shared, only_b]), "b"),
    }
    now = datetime(2024, 3, 6, tzinfo=UTC)
    results = write_concurrently(deliveries, DAY2, now)
    follow_silver(list(results.values()), now)
    inserted = sorted(int(r.plan.counts["inserted"].sum()) for r in results.values())
    outcome.text = f"{sum(inserted)} inserted in all (shared ids once), {current().height} current"
    assert set(results) == {"a", "b"} and inserted in ([2, 7], [4, 5])  # whichever committed first
    assert current().height == 9


def replay_older_date(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """DAY2 renamed a company; DAY1's older file, run afterwards, must not make the old name current."""
    rows = reports().head(5)
    stage(DAY1, rows)
    stage(
        DAY2,
        rows.with_columns(
            Employer=pl.when(pl.int_range(5) == 0).then(pl.lit("Newer Name Inc")).otherwise("Employer")
        ),
    )
    daily_ingest(DAY2)
    daily_ingest(DAY1)
    gold_sync()
    first = f"osha:severe_injury:{rows['ID'][0]}"
    name = current().filter(pl.col("violation_id") == first)["company_name"].item()
    outcome.text = "newer name kept" if name == "Newer Name Inc" else "older name current again"
    assert name == "Newer Name Inc"


def daily_run_during_historical_load(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append load's first batch (reports 0-5, as backfilled) and a daily run of DAY2 (reports 3-8,
    as current) plan against the same snapshot before either commits; the load's second batch (reports
    6-11) commits after the daily run. Whatever order the commits take, the daily versions of the
    shared reports stay current: a backfill has no as-of, older than any daily date."""
    rows, now = reports(), datetime(2024, 3, 6, 12, tzinfo=UTC)
    backfilled = rows.with_columns(Employer=pl.lit("Backfilled Name Co"))
    source = f"{current_lakehouse().storage.uri(HISTORICAL_PREFIX)}/osha/severe_injury"
    deliveries = {
        "load": batch_from(f"{source}/part-1.csv", backfilled.slice(0, 6)),
        "daily": batch_from(
            f"{current_lakehouse().storage.uri(SEVERE)}/{DAY2}/reports.csv", rows.slice(3, 6)
        ),
    }
    raced = write_concurrently(deliveries, DAY2, now)
    second = write_silver(
        current_lakehouse(),
        batch_from(f"{source}/part-2.csv", backfilled.slice(6, 6)),
        SilverTarget(current_lakehouse().violations(), DAY2),
        "run-load-2",
        now,
    )
    follow_silver([*raced.values(), second], now)
    counts = {
        name: write.plan.counts.row(0, named=True) for name, write in (*raced.items(), ("load-2", second))
    }
    names = dict(current().select("source_id", "company_name").iter_rows())
    first = "daily" if counts["daily"]["updated"] == 0 else "load"
    shared = "daily" if all(names[i] != "Backfilled Name Co" for i in rows["ID"][3:9]) else "backfilled"
    outcome.text = (
        f"{first} committed first; shared reports {shared}; later batch stale {counts['load-2']['stale']}"
    )
    assert current().height == 12
    assert {i: names[i] for i in rows["ID"][3:9]} == dict(
        zip(rows["ID"][3:9], rows["Employer"][3:9], strict=True)
    )
    assert {names[i] for i in [*rows["ID"][:3], *rows["ID"][9:12]]} == {"Backfilled Name Co"}
    assert (counts["load-2"]["inserted"], counts["load-2"]["stale"]) == (3, 3)
    # Daily first: the load's shared reports are stale; load first: the daily run updates them.
    assert (counts["load"]["stale"], counts["daily"]["updated"]) in [(3, 0), (0, 3)]


def replay_older_feed_message(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feed-poll ingests a report renamed at 11:00; the 10:00 message of the same report, redelivered
    afterwards (SQS does not keep order), must not make the old name current."""
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "0")
    record = reports().head(1).to_dicts()[0]
    at_ten, at_eleven = (datetime(2024, 3, 6, hour, tzinfo=UTC) for hour in (10, 11))
    queue = current_queue()
    queue.send(
        [envelope_json("osha", "severe_injury", {**record, "Employer": "Newer Name Inc"}, at_eleven, "v2")]
    )
    first = feed_poll()
    queue.send([envelope_json("osha", "severe_injury", record, at_ten, "v1")])
    replay = feed_poll()
    gold_sync()
    name = current().filter(pl.col("source_id") == record["ID"])["company_name"].item()
    kept = "newer" if name == "Newer Name Inc" else "older"
    outcome.text = f"{kept} name current, replay stale {replay['totals']['stale']}"
    assert first["totals"]["inserted"] == 1 and name == "Newer Name Inc"
    assert replay["reconciled"] and replay["totals"]["stale"] == 1 and replay["deleted"] == 1


def crash_between_silver_and_gold(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """DAY2 dies right after its silver commit; DAY3 runs (its gold step catches up DAY2's change too);
    DAY2 is re-run; gold-sync --rebuild finds nothing to change."""
    rows = reports()
    stage(DAY1, rows.slice(0, 20))
    daily_ingest(DAY1)
    stage(DAY2, rows.head(1).with_columns(Employer=pl.lit("Brand New Employer LLC")))

    crash_after_the_silver_commit(DAY2, monkeypatch)
    stage(DAY3, rows.slice(20, 5))
    assert daily_ingest(DAY3)["totals"]["inserted"] == 5
    stale = [
        p for p in check_invariants(current_lakehouse(), open_store(load_settings())) if p.startswith("gold")
    ]
    rerun = daily_ingest(DAY2)
    rebuilt = {c["level"]: c["changed"] + c["removed"] for c in gold_sync(rebuild=True)["rebuilt"]}
    outcome.text = (
        f"gold right after DAY3: {not stale}; re-run unchanged {rerun['totals']['unchanged']}; "
        f"rebuild rewrote {sum(rebuilt.values())} rows"
    )
    assert stale == []
    assert rerun["reconciled"] and rerun["totals"]["unchanged"] == 1
    assert rebuilt == {"company": 0, "city": 0, "state": 0}


def crash_between_buffer_and_commit(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """DAY1's run dies after writing its buffer file, before its commit; the operator fixes the file
    (one report renamed, one withdrawn) and runs DAY1 again; then monthly-consolidate."""
    rows = reports().head(6)
    stage(DAY1, rows)

    def killed(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed between the buffer write and the commit")

    with monkeypatch.context() as patch:
        patch.setattr(ventureos.ingest, "commit_scd2", killed)
        with pytest.raises(RuntimeError, match="killed between"):
            daily_ingest(DAY1)
    [crashed] = buffer_keys()
    assert read_silver(current_lakehouse()).is_empty()

    fixed = rows.head(5).with_columns(
        Employer=pl.when(pl.int_range(5) == 0).then(pl.lit("Corrected Employer LLC")).otherwise("Employer")
    )
    stage(DAY1, fixed)
    assert daily_ingest(DAY1)["totals"]["inserted"] == 5
    store = open_store(load_settings())
    before = check_invariants(current_lakehouse(), store)
    assert [p.split(":")[0] for p in before if p.startswith("buffer")] == [
        "buffer + archive versions vs silver"
    ]

    report = monthly_consolidate(month="2024-03")
    gold_sync()
    outcome.text = f"orphaned {report['orphaned']} in {len(report['orphaned_files'])} file, archived {report['rows_added']}"
    assert report["reconciled"] and (report["rows_in"], report["rows_added"], report["orphaned"]) == (
        11,
        5,
        6,
    )
    assert report["orphaned_files"] == [crashed]
    assert buffer_keys() == []
    storage = current_lakehouse().storage
    archived = pl.concat([storage.read_parquet(k) for k in storage.list(ARCHIVE_PREFIX)])
    silver = read_silver(current_lakehouse())
    assert sorted(archived.select(COMMITTED_KEY).rows()) == sorted(silver.select(COMMITTED_KEY).rows())


def replace_after_daily_run(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daily run buffers 6 versions; a historical *replace* then swaps the dataset for 6 rows (3 of the
    same reports): the daily versions are no longer silver's, so consolidation leaves them out."""
    rows = reports()
    stage(DAY1, rows.slice(0, 6))
    daily_ingest(DAY1)
    [daily] = buffer_keys()
    storage = current_lakehouse().storage
    storage.write_bytes(
        "bronze/historical/osha/severe_injury/part-1.csv", rows.slice(3, 6).write_csv().encode()
    )
    assert historical_load("osha", "severe_injury", mode="replace")["reconciled"]
    report = monthly_consolidate(month=datetime.now(UTC).strftime("%Y-%m"))
    gold_sync()
    outcome.text = (
        f"orphaned {report['orphaned']} (the replaced daily versions), archived {report['rows_added']}"
    )
    assert report["reconciled"] and (report["orphaned"], report["rows_added"]) == (6, 6)
    assert report["orphaned_files"] == [daily] and buffer_keys() == []
    archived = pl.concat([storage.read_parquet(k) for k in storage.list(ARCHIVE_PREFIX)])
    silver = read_silver(current_lakehouse())
    assert silver.height == 6
    assert sorted(archived.select(COMMITTED_KEY).rows()) == sorted(silver.select(COMMITTED_KEY).rows())


FAA_HEADER = "CASE NUMBER,NAME,ENTITY TYPE,DATE KNOWN,ACTION,SANCTION AMOUNT,SANCTION,CASE TYPE,CLOSED DATE\n"
BIG_FIELD_BYTES = 50 * 1024 * 1024
NON_LATIN = (
    "株式会社トヨタ自動車",
    "\u041e\u041e\u041e \u0413\u0430\u0437\u043f\u0440\u043e\u043c",
)  # Toyota; OOO Gazprom


def hostile_files(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    """One daily run over every kind of hostile file at once (generated here, the 50 MB one too)."""
    rows = reports().select("ID", "EventDate", "Employer", "City", "State")

    def csv(frame: pl.DataFrame) -> str:
        return frame.write_csv()

    stage(DAY1, csv(rows.slice(0, 2)).replace("\n", "\r").encode(), "mac.csv")
    stage(DAY1, b"\xef\xbb\xbf" + csv(rows.slice(2, 2)).encode(), "bom.csv")
    stage(DAY1, csv(rows.slice(4, 2)).replace("\n2", "\n\x002", 1).encode(), "nul.csv")
    quote = csv(rows.slice(6, 3)).splitlines()
    quote[2] = quote[2].replace(",", ',"never closed,', 1)
    stage(DAY1, "\n".join(quote).encode() + b"\n", "quote.csv")
    stage(DAY1, b"ID,EventDate,Employer,City,State\n", "header.csv")
    stage(DAY1, b'{"ID": "2015010015", "EventDate": "1/1/2015", "Employer": "Json Doc Co"}', "doc.csv")
    years = rows.slice(9, 2).with_columns(EventDate=pl.Series(["1/1/0000", "12/31/9999"]))
    stage(DAY1, csv(years).encode(), "years.csv")
    stage(
        DAY1,
        b'{"ID": "77", "EventDate": "1/2/2015", "Employer": "X", "__ventureos_row": "0"}',
        "lineage.json",
    )
    big = rows.slice(11, 1).with_columns(
        Employer=pl.lit("Big Field Co"), **{"Final Narrative": pl.lit("x" * BIG_FIELD_BYTES)}
    )
    stage(DAY1, csv(big).encode(), "big.csv")
    names = rows.slice(12, 2).with_columns(Employer=pl.Series(NON_LATIN))
    stage(DAY1, csv(names).encode(), "names.csv")
    faa = FAA_HEADER + (
        "2015CE100001,FEDEX,A/C OR COMM OPER,3/1/2016,ORD ASSESS CIVIL PENALTY,1e30,DOLLARS,OTHER,3/1/2016\n"
        "2015CE100002,UPS,A/C OR COMM OPER,3/2/2016,ORD ASSESS CIVIL PENALTY,2500,DOLLARS,OTHER,3/2/2016\n"
    )
    stage(DAY1, faa.encode(), "faa.csv", "bronze/daily/faa/enforcement")

    report = daily_ingest(DAY1)
    gold_sync()
    totals = report["totals"]
    outcome.text = (
        f"read {totals['read']}: inserted {totals['inserted']}, quarantined {totals['quarantined']}"
        f", reconciled {report['reconciled']}"
    )
    assert report["reconciled"] and (totals["read"], totals["inserted"], totals["quarantined"]) == (17, 11, 6)
    loaded = current().with_columns(file=pl.col("meta_source_uri").str.extract(r"/([^/#]+)(#|$)"))
    assert dict(loaded.group_by("file").len().iter_rows()) == {
        "mac.csv": 2, "bom.csv": 2, "nul.csv": 1, "quote.csv": 1, "big.csv": 1, "names.csv": 2, "faa.csv": 2,
    }  # fmt: skip
    quarantine = pl.DataFrame(pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow()))
    assert sorted(
        (uri.rsplit("/", 1)[1], reason) for uri, reason in quarantine.select("source_uri", "reason").rows()
    ) == [
        ("doc.csv", "not CSV: the file holds a JSON document (a .json file is read as JSON)"),
        ("lineage.json", "source field __ventureos_row has the name of a lineage column"),
        ("nul.csv#line=2", "CSV row has a NUL byte"),
        ("quote.csv#line=3", "CSV quote opened on line 3 is never closed (its lines to the end)"),
        ("years.csv", "event date before 1900-01-01"),
        ("years.csv", "event date more than a year ahead"),
    ]
    by_name = {r["company_name"]: r for r in loaded.to_dicts()}
    assert len(by_name["Big Field Co"]["description"]) == BIG_FIELD_BYTES
    assert (
        by_name["FEDEX"]["penalty_amount"] is None and "invalid_penalty" in by_name["FEDEX"]["quality_issues"]
    )
    # Non-Latin names load as written, get a transliterated slug and a flag for a human to check.
    assert [(by_name[n]["company_slug"], by_name[n]["quality_issues"][0]) for n in NON_LATIN] == [
        ("zhu-shi-hui-she-toyotazi-dong-che", "unreadable_company_name"),
        ("ooo-gazprom", "unreadable_company_name"),
    ]


Attack = Callable[[Outcome, pytest.MonkeyPatch], None]
ATTACK_TABLE: list[tuple[str, Attack]] = [
    ("two daily runs overlapping on shared ids", overlapping_runs),
    ("replay of an older date after a newer one", replay_older_date),
    ("replay of an older feed message after a newer one", replay_older_feed_message),
    ("a daily run during a historical load", daily_run_during_historical_load),
    ("crash silver->gold, another run, re-run, gold-sync --rebuild", crash_between_silver_and_gold),
    ("crash buffer->commit, a different run, monthly-consolidate", crash_between_buffer_and_commit),
    ("historical replace after a daily run, monthly-consolidate", replace_after_daily_run),
    ("hostile files in one daily run", hostile_files),
]
NOT_FIXED: dict[str, str] = {}
"""Attacks known to break an invariant (name -> why): run as strict xfails until fixed."""


@pytest.mark.parametrize(
    ("name", "attack"),
    [
        pytest.param(
            name,
            attack,
            id=attack.__name__,
            marks=[pytest.mark.xfail(strict=True, reason=NOT_FIXED[name])] if name in NOT_FIXED else [],
        )
        for name, attack in ATTACK_TABLE
    ],
)
def test_invariants_hold_after(
    name: str, attack: Attack, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = Outcome()
    problems: list[str] = []
    try:
        attack(outcome, monkeypatch)
    finally:  # the invariants are checked (and the row recorded) even when the attack's own check fails
        problems = check_invariants(current_lakehouse(), open_store(load_settings()))
        held = "hold" if not problems else f"{len(problems)} broken"
        expected = f" (xfail: {NOT_FIXED[name]})" if name in NOT_FIXED else ""
        ATTACKS.append((name, outcome.text + expected, held))
    assert problems == [], "\n".join(problems)
