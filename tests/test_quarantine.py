"""Quarantine tools: list what was set aside, and replay it into silver (once) after a normalizer fix."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import normalizers
from flows.daily_ingest import daily_ingest
from flows.quarantine_replay import quarantine_replay
from ventureos.feed import envelope_json
from ventureos.gold import read_gold
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import message_uri
from ventureos.quarantine import (
    NEEDS_LOOKUP,
    NOT_ONE_RECORD,
    Selection,
    plan_replay,
    read_quarantine,
    release,
)
from ventureos.serving import LIVE_FEED, open_store
from ventureos.silver import WITHDRAWN, Scd2Plan, append_quarantine, quarantine_frame

from .conftest import BUNDLED_SAMPLES, run_cli

DAY = "2024-03-05"
PREFIX = f"bronze/daily/osha/severe_injury/{DAY}"
BAD_ID = "2099000001"
EMPLOYER = "Acme Replay Corp"
BAD_DATE = "unparseable event date"
BROKEN_JSON = "unparseable JSON: Expecting value (line 1, column 18)"


def stage_day() -> str:
    """Three good reports, one with a dotted date (``2015.01.05``, a format the normalizer does not
    read), and a broken JSON file; returns the dotted record's URI."""
    storage = current_lakehouse().storage
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    ).head(4)
    records = reports.to_dicts()
    records[3] |= {"ID": BAD_ID, "EventDate": "2015.01.05", "Employer": EMPLOYER}
    for record in records:
        storage.write_bytes(f"{PREFIX}/{record['ID']}.json", json.dumps(record).encode())
    storage.write_bytes(f"{PREFIX}/broken.json", b'{"ID": "1", "E": ')
    return storage.uri(f"{PREFIX}/{BAD_ID}.json")


def fix_dotted_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's fix: the severe-injury normalizer reads ``YYYY.MM.DD`` too."""
    entry = normalizers.REGISTRY["osha/severe_injury"]

    def fixed(raw: pl.DataFrame, **lookups: pl.DataFrame) -> pl.DataFrame:
        dotted = pl.col("EventDate").str.replace(r"^(\d{4})\.(\d{2})\.(\d{2})$", "$1-$2-$3")
        return entry.normalize(raw.with_columns(dotted), **lookups)

    monkeypatch.setitem(normalizers.REGISTRY, entry.key, replace(entry, normalize=fixed))


def silver_of(source_id: str) -> pl.DataFrame:
    rows = pl.from_arrow(current_lakehouse().violations().scan().to_arrow())
    return rows.filter(pl.col("source_id") == source_id)  # type: ignore[union-attr]


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert run_cli(*args, "--json") == 0
    return json.loads(capsys.readouterr().out)


def counts_by_reason(listed: dict[str, Any]) -> dict[str, int]:
    return {row["reason"]: row["rows"] for row in listed["counts"]}


@pytest.mark.usefixtures("prefect_harness")
def test_a_fixed_record_is_replayed_into_silver_and_gold_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_uri = stage_day()
    daily = daily_ingest(DAY)
    assert (daily["totals"]["inserted"], daily["totals"]["quarantined"]) == (3, 2)

    before = cli_json(capsys, "quarantine", "list", "--agency", "osha")
    assert before["total"] == 2
    assert counts_by_reason(before) == {BAD_DATE: 1, BROKEN_JSON: 1}
    dated = cli_json(capsys, "quarantine", "list", "--reason", "EVENT DATE", "--since", "2000-01-01")
    assert [(r["source_uri"], r["reason"]) for r in dated["rows"]] == [(bad_uri, BAD_DATE)]
    assert dated["rows"][0]["payload"].startswith('{"ID":"2099000001"')
    assert len(dated["rows"][0]["payload"]) == 80  # an excerpt
    assert cli_json(capsys, "quarantine", "list", "--since", "2999-01-01")["total"] == 0

    # Without a fix the record fails again, with the same reason: nothing changes.
    unfixed = cli_json(capsys, "quarantine", "replay")
    assert unfixed["totals"] == {
        "read": 2, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 0, "duplicates": 0,
        "quarantined": 2,
    }  # fmt: skip
    assert unfixed["released"] == 0 and unfixed["not_replayable"] == {NOT_ONE_RECORD: 1}

    fix_dotted_dates(monkeypatch)
    first = cli_json(capsys, "quarantine", "replay", "--agency", "osha", "--dataset", "severe_injury")
    assert first["reconciled"]
    assert first["totals"] == {
        "read": 2, "inserted": 1, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 0, "duplicates": 0,
        "quarantined": 1,
    }  # fmt: skip
    assert first["released"] == 1
    assert first["not_replayable"] == {NOT_ONE_RECORD: 1}
    assert first["flow"] == "quarantine-replay"

    replayed = silver_of(BAD_ID)
    assert replayed.height == 1
    row = replayed.row(0, named=True)
    assert row["event_date"].isoformat() == "2015-01-05" and row["is_current"]
    assert row["meta_source_uri"] == bad_uri and row["change_type"] == "INSERT"
    gold = read_gold(current_lakehouse().catalog, "company").filter(pl.col("entity_name") == EMPLOYER)
    assert gold["violation_count"].to_list() == [1] * gold.height and gold.height >= 1

    feed = open_store(current_lakehouse().settings).scan(LIVE_FEED)
    assert [i["violation_id"] for i in feed].count(row["violation_id"]) >= 1

    after = cli_json(capsys, "quarantine", "list")
    assert counts_by_reason(after) == {BROKEN_JSON: 1}

    second = cli_json(capsys, "quarantine", "replay")
    assert second["totals"] == {
        "read": 1, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 0, "duplicates": 0,
        "quarantined": 1,
    }  # fmt: skip
    assert second["released"] == 0
    assert silver_of(BAD_ID).height == 1
    assert counts_by_reason(cli_json(capsys, "quarantine", "list")) == {BROKEN_JSON: 1}


@pytest.mark.usefixtures("prefect_harness")
def test_a_replay_killed_after_its_silver_commit_releases_on_the_rerun(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_day()
    daily_ingest(DAY)
    fix_dotted_dates(monkeypatch)

    def killed(*_: object) -> int:
        raise RuntimeError("killed between the silver commit and the quarantine delete")

    monkeypatch.setattr("tasks.quarantine.release", killed)
    with pytest.raises(RuntimeError, match="killed"):
        quarantine_replay(reason="event date")
    assert silver_of(BAD_ID).height == 1
    assert read_quarantine(current_lakehouse().quarantine(), Selection(reason="event date")).height == 1

    monkeypatch.setattr("tasks.quarantine.release", release)
    rerun = quarantine_replay(reason="event date")
    assert rerun["totals"]["read"] == 1 and rerun["totals"]["unchanged"] == 1
    assert rerun["totals"]["inserted"] == 0 and rerun["released"] == 1 and rerun["reconciled"]
    assert silver_of(BAD_ID).height == 1
    assert read_quarantine(current_lakehouse().quarantine(), Selection(reason="event date")).is_empty()
    nothing = quarantine_replay(since="2999-01-01")
    assert nothing["totals"]["read"] == 0 and nothing["released"] == 0 and nothing["reconciled"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_record_a_later_delivery_superseded_is_not_replayed_over_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_day()
    daily_ingest(DAY)
    storage = current_lakehouse().storage
    newer = {"ID": BAD_ID, "EventDate": "1/6/2015", "Employer": "Acme Renamed", "State": "TEXAS"}
    storage.write_bytes(
        f"bronze/daily/osha/severe_injury/2024-03-06/{BAD_ID}.json", json.dumps(newer).encode()
    )
    assert daily_ingest("2024-03-06")["totals"]["inserted"] == 1
    fix_dotted_dates(monkeypatch)

    replayed = quarantine_replay(reason="event date")
    assert replayed["totals"] == {
        "read": 1, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 1, "duplicates": 0,
        "quarantined": 0,
    }  # fmt: skip
    # Its daily date (2024-03-05) is older than the current version's: the silver plan's guard.
    assert replayed["reconciled"] and replayed["released"] == 1
    assert silver_of(BAD_ID).select("company_name", "is_current").rows() == [("Acme Renamed", True)]
    assert read_quarantine(current_lakehouse().quarantine(), Selection(reason="event date")).is_empty()


@pytest.mark.usefixtures("prefect_harness")
def test_replayed_records_are_ordered_by_their_source(home: Path) -> None:
    """Replayed after the 2024-03-05 daily run: a feed record sent on 03-06 replaces the daily version,
    one sent on 03-04 is stale (their quarantine URIs keep the sent time); a historical record (no
    as-of) is kept out, as silver's version was written after it was quarantined."""
    stage_day()
    daily_ingest(DAY)
    records = (
        pl.read_csv(BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False)
        .head(3)
        .to_dicts()
    )

    later, earlier = datetime(2024, 3, 6, 8, tzinfo=UTC), datetime(2024, 3, 4, 8, tzinfo=UTC)

    def crashed(message_id: str, sent: datetime, record: dict[str, Any]) -> tuple[str, str, str, str, str]:
        """A feed message that crashed ingestion on its own: quarantined with its envelope."""
        body = envelope_json("osha", "severe_injury", record, sent, message_id)
        return ("osha", "severe_injury", message_uri("q", message_id, sent), "ingest failed: Boom", body)

    backfilled = records[2] | {"Employer": "Backfill"}
    historical = "lake/bronze/historical/osha/severe_injury/part-1.csv#record=1"
    append_quarantine(
        current_lakehouse().quarantine(),
        quarantine_rows(
            [
                crashed("m1", later, records[0] | {"Employer": "Sent Later"}),
                crashed("m2", earlier, records[1] | {"Employer": "Sent Earlier"}),
                ("osha", "severe_injury", historical, "ingest failed: Boom", json.dumps(backfilled)),
            ]
        ),
    )
    replayed = quarantine_replay(reason="ingest failed")
    assert replayed["totals"] == {
        "read": 3, "inserted": 0, "updated": 1, "deleted": 0, "unchanged": 0, "stale": 2, "duplicates": 0,
        "quarantined": 0,
    }  # fmt: skip
    assert replayed["reconciled"] and replayed["released"] == 3 and replayed["stale"] == 1
    names = [silver_of(r["ID"]).filter("is_current")["company_name"].item() for r in records]
    assert names == ["Sent Later", records[1]["Employer"], records[2]["Employer"]]


def quarantine_rows(rows: list[tuple[str, str, str, str, str]]) -> pl.DataFrame:
    """Quarantine rows from (agency, dataset, source_uri, reason, raw_payload)."""
    frames = [
        quarantine_frame(
            pl.DataFrame({"source_uri": [uri], "reason": [reason], "raw_payload": [payload]}),
            agency,
            dataset,
            "run-1",
            datetime(2024, 3, 5, tzinfo=UTC),
        )
        for agency, dataset, uri, reason, payload in rows
    ]
    return pl.concat(frames)


def test_still_failing_records_keep_their_row_or_get_their_new_reason() -> None:
    inspection_needed = json.dumps({"activity_nr": "1", "citation_id": "01001", "issuance_date": "x"})
    rows = quarantine_rows(
        [
            ("osha", "severe_injury", "lake/a.json", BAD_DATE, '{"ID":"7","EventDate":"2015.01.05"}'),
            ("osha", "severe_injury", "lake/b.json", "old reason", '{"ID":"8","EventDate":"notadate"}'),
            ("osha", "severe_injury", "lake/c.bin", "not a text file (binary content)", "base64:AAEC"),
            ("osha", "enforcement", "lake/v.csv#record=1", "missing event date", inspection_needed),
        ]
    )
    replay = plan_replay(rows)
    by_dataset = {d.batch.dataset: d for d in replay.datasets}
    injuries = by_dataset["severe_injury"]
    rejects = injuries.batch.rejects.sort("source_uri")
    assert rejects.rows() == [
        ("lake/a.json", BAD_DATE, '{"ID":"7","EventDate":"2015.01.05"}'),
        ("lake/b.json", BAD_DATE, '{"ID":"8","EventDate":"notadate"}'),
        ("lake/c.bin", "not a text file (binary content)", "base64:AAEC"),
    ]
    old_b = rows.filter(pl.col("source_uri") == "lake/b.json")["quarantine_id"].to_list()
    assert injuries.superseded == old_b  # a's row stays as it is: same reason, same id
    assert injuries.batch.records_read == 3 and injuries.batch.valid.is_empty()
    enforcement = by_dataset["enforcement"]
    assert enforcement.batch.rejects["reason"].to_list() == ["missing event date"]  # left as it was
    assert replay.not_replayable() == {
        NEEDS_LOOKUP.format(lookups="inspection"): 1,
        NOT_ONE_RECORD: 1,
    }


def test_quarantine_list_runs_without_prefect(home: Path) -> None:
    script = (
        "import sys\n"
        "from ventureos.cli import main\n"
        "main(['quarantine', 'list', '--json'])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows', 'tasks')], 'prefect'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 0, "counts": [], "rows": []}


def test_envelopes_feed_records_and_withdrawn_deletes() -> None:
    """A feed envelope is replayed from its record; a feed record of a lookup dataset is replayed (the
    feed never joins lookups); a delete of a violation silver never held is withdrawn again."""
    envelope = {
        "agency": "osha", "dataset": "severe_injury", "sent_at": "2024-03-05T00:00:00Z",
        "record": {"ID": "9", "EventDate": "1/5/2015", "Employer": "Envelope Inc", "Hospitalized": 1},
    }  # fmt: skip
    citation = {"activity_nr": "5", "citation_id": "01001", "issuance_date": "2015-01-05", "delete_flag": "D"}
    rows = quarantine_rows(
        [
            ("osha", "severe_injury", "feed://q/m1", "ingest failed: Boom", json.dumps(envelope)),
            ("osha", "enforcement", "feed://q/m2", WITHDRAWN, json.dumps(citation)),
            (
                "osha",
                "enforcement",
                "feed://q/m3",
                "some old reason",
                json.dumps(citation | {"citation_id": "2"}),
            ),
        ]
    )
    replay = plan_replay(rows)
    by_dataset = {d.batch.dataset: d for d in replay.datasets}
    injury = by_dataset["severe_injury"].batch
    assert injury.valid.select("source_id", "company_name", "__ventureos_source_uri").rows() == [
        ("9", "Envelope Inc", "feed://q/m1")
    ]
    enforcement = by_dataset["enforcement"]
    assert enforcement.batch.valid["is_deleted"].to_list() == [True, True]
    # Arrived without their inspections: recalled from silver by the lineage the valid rows carry.
    lineage = ["__ventureos_source_uri", "__ventureos_row"]
    assert (
        enforcement.batch.incomplete.select(lineage).rows() == enforcement.batch.valid.select(lineage).rows()
    )
    assert enforcement.batch.incomplete["__ventureos_source_uri"].to_list() == ["feed://q/m2", "feed://q/m3"]
    assert replay.not_replayable() == {}
    # The plan finds both deletes withdrawn (silver holds neither violation).
    plan = Scd2Plan.empty()
    plan.withdrawn = enforcement.row_ids.select(
        pl.lit("osha").alias("agency"), pl.lit("enforcement").alias("dataset"),
        pl.lit("x").alias("__ventureos_source_uri"), "__ventureos_row",
    )  # fmt: skip
    ids = dict(zip(rows["source_uri"], rows["quarantine_id"], strict=True))
    # m2 was quarantined as withdrawn: it stays; m3 gets a withdrawn row and its old row goes.
    assert replay.released(plan, rows) == sorted([ids["feed://q/m1"], ids["feed://q/m3"]])
    assert enforcement.batch.deleted["raw_payload"].to_list() == rows["raw_payload"].to_list()[1:]


def test_quarantine_list_prints_counts_then_rows(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = quarantine_rows(
        [
            (
                "osha",
                "severe_injury",
                "lake/a.json",
                BAD_DATE,
                json.dumps({"ID": "7", "Narrative": "x" * 200}),
            ),
            ("osha", "severe_injury", "lake/b.json", BAD_DATE, '{"ID":"8"}'),
            ("epa", "echo", "lake/c.csv#line=3", "CSV row has 4 fields, the header has 3", "a,b,c,d"),
        ]
    )
    append_quarantine(current_lakehouse().quarantine(), rows)
    capsys.readouterr()
    assert run_cli("quarantine", "list", "--limit", "2") == 0
    out = capsys.readouterr().out
    assert "3 rows by reason" in out and "newest 2 of 3:" in out and "lake/c.csv" not in out
    assert out.index(BAD_DATE) < out.index("lake/a.json")  # counts first
    assert '{"ID": "7", "Narrative": "xxx' in out and "x" * 100 not in out  # an excerpt
    assert run_cli("quarantine", "list", "--agency", "epa", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["counts"] == [
        {"agency": "epa", "dataset": "echo", "reason": "CSV row has 4 fields, the header has 3", "rows": 1}
    ]
    assert run_cli("quarantine", "list", "--since", "2024-13-45") == 1
    assert "--since must be a calendar day" in capsys.readouterr().err
    assert run_cli("quarantine", "replay", "--dataset", "echo") == 1
    assert "dataset needs agency" in capsys.readouterr().err
