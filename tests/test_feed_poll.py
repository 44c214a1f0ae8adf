"""feed-poll end to end: real OSHA rows as feed messages, poison, a crash before the delete, API call counts."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import typer

import flows.common
from flows.common import utc_now
from flows.feed_poll import feed_poll, ingest_messages
from ventureos.cli.feed import message_bodies
from ventureos.feed import PoisonMessage, envelope_json, parse_envelope
from ventureos.lakehouse import current_lakehouse
from ventureos.queue import Depth, current_queue
from ventureos.serving import open_store
from ventureos.settings import load_settings
from ventureos.silver import WITHDRAWN

from .conftest import BUNDLED_SAMPLES, run_cli
from .test_gold import assert_gold_equals_current_silver, current_silver
from .test_gold_sync import expected_feed, stored_feed

SAMPLE_CSV = BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv"
SENT_AT = "2024-03-05T10:00:00+00:00"


def sample_records(n: int) -> list[dict[str, str | None]]:
    reports = pl.read_csv(SAMPLE_CSV, infer_schema=False).filter(pl.col("ID").is_not_null())
    return reports.head(n).to_dicts()


def silver_rows() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().violations().scan().to_arrow())


def quarantine_rows() -> pl.DataFrame:
    return pl.from_arrow(current_lakehouse().quarantine().scan().to_arrow())


@pytest.fixture
def sqs_queue_home(home: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Embedded lake, feed queue on SQS (moto); returns the queue name."""
    name = f"feed-{uuid.uuid4().hex[:12]}"
    for key, value in {
        "VENTUREOS_QUEUE_BACKEND": "sqs",
        "VENTUREOS_QUEUE_NAME": name,
        "VENTUREOS_QUEUE_WAIT_SECONDS": "1",
        "VENTUREOS_AWS_ENDPOINT_URL": moto_endpoint,
        "VENTUREOS_AWS_ACCESS_KEY_ID": "testing",
        "VENTUREOS_AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    return name


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{oops", "invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("[1, 2]", "invalid envelope: not a JSON object"),
        (
            json.dumps({"agency": "osha", "dataset": "severe_injury", "sent_at": SENT_AT}),
            "invalid envelope: missing record",
        ),
        (envelope_json("osha", "nope", {"ID": "1"}), "unknown dataset 'osha/nope'; known: "),
        (
            envelope_json("osha", "severe_injury", []),
            "invalid envelope: record must be a non-empty JSON object",
        ),  # type: ignore[arg-type]
        (
            json.dumps(
                {"agency": "osha", "dataset": "severe_injury", "record": {"ID": "1"}, "sent_at": "yesterday"}
            ),
            "invalid envelope: sent_at is not an ISO-8601 time: 'yesterday'",
        ),
        (
            envelope_json("osha", "severe_injury", {"ID": "1", "Final Narrative": "x" * 2000}),
            "oversized message: 2",
        ),
    ],
)
def test_poison_reasons(body: str, reason: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        parse_envelope(body, "queue-id", max_bytes=2000)
    assert str(caught.value).startswith(reason)


def test_envelope_identity_is_the_senders_message_id() -> None:
    record = {"ID": "2015010015"}
    assert parse_envelope(envelope_json("osha", "severe_injury", record), "q-1", 2000).message_id == "q-1"
    given = envelope_json("osha", "severe_injury", record, message_id="osha-2015010015")
    parsed = parse_envelope(given, "q-2", 2000)
    assert parsed.message_id == "osha-2015010015" and parsed.record == record


def crash_and_redeliver(storage_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """36 messages (30 good, 1 record the normalizer rejects, 1 delete of a violation never loaded,
    4 poison). The run dies right after its
    silver commit; its retry (same flow-run id) repairs gold and the live feed, then dies before the
    delete; the redelivered batch must change nothing."""
    records = sample_records(31)
    good = [envelope_json("osha", "severe_injury", r, message_id=f"osha-{r['ID']}") for r in records[:10]]
    good += [envelope_json("osha", "severe_injury", r) for r in records[10:29]]
    # Keys that look like the pipeline's own columns are just source fields.
    good.append(envelope_json("osha", "severe_injury", {**records[29], "_row": "7", "_source_uri": "x"}))
    no_id = envelope_json("osha", "severe_injury", {**records[30], "ID": None})
    withdrawn = envelope_json(
        "osha", "enforcement",
        {"activity_nr": "316538985", "citation_id": "01002", "delete_flag": "D", "issuance_date": "20130215"},
        message_id="osha-enf-1",
    )  # fmt: skip
    poison = [
        "{oops",
        envelope_json("faa", "nope", records[0]),
        envelope_json("osha", "severe_injury", {**records[1], "Final Narrative": "x" * 20_000}),
        json.dumps({"agency": "osha", "dataset": "severe_injury", "sent_at": SENT_AT}),
    ]
    queue = current_queue()
    queue.send([*good, no_id, withdrawn, *poison])

    messages = queue.receive(max_messages=100, max_seconds=10)
    assert len(messages) == 36

    def die(plan: object) -> None:
        raise SystemExit("killed right after the silver commit")

    with monkeypatch.context() as patch:
        patch.setattr(flows.common, "update_gold", die)
        with pytest.raises(SystemExit):
            ingest_messages(messages, "run-that-crashed", utc_now())
    assert silver_rows().height == 30
    retried = ingest_messages(messages, "run-that-crashed", utc_now())
    assert retried.totals["unchanged"] == 30 and retried.totals["quarantined"] == 6 and retried.reconciled
    # Gold and the live feed caught up with silver although the retry changed nothing in it.
    assert_gold_equals_current_silver()
    store = open_store(load_settings())
    assert stored_feed(store) == expected_feed(current_silver())
    queue.release(messages)  # the crash: never deleted, and the visibility timeout has passed

    report = feed_poll()
    assert report["messages"] == 36 and report["deleted"] == 36
    assert report["totals"] == {
        "read": 36, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 30, "duplicates": 0, "quarantined": 6,
    }  # fmt: skip
    assert report["reconciled"]
    assert list(report["timings"]) == [
        "stage_and_normalize", "silver", "gold", "live_feed", "total",
    ]  # fmt: skip
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=0)

    silver = silver_rows()
    assert silver.height == 30 and silver["violation_id"].n_unique() == 30
    assert set(silver["source_id"]) == {r["ID"] for r in records[:30]}
    details = silver.filter(pl.col("source_id") == records[29]["ID"])["violation_details"].item()
    assert json.loads(details)["_row"] == "7" and json.loads(details)["_source_uri"] == "x"
    lineage = silver.filter(pl.col("source_id") == records[0]["ID"])["meta_source_uri"].item()
    assert lineage.startswith(f"{storage_prefix}/bronze/feed/osha/severe_injury/")
    assert lineage.endswith(f".jsonl#osha-{records[0]['ID']}")

    # Gold and the live feed followed silver through every delivery, without double counting.
    assert_gold_equals_current_silver()
    assert stored_feed(store) == expected_feed(current_silver())

    # Three deliveries, each message quarantined once (the withdrawn delete too: keyed by message).
    quarantined = quarantine_rows()
    assert quarantined.height == 6
    assert quarantined["source_uri"].str.starts_with(f"feed://{queue.name}/").all()
    reasons = sorted(quarantined["reason"])
    assert reasons[0] == WITHDRAWN
    assert reasons[1] == "invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"
    assert reasons[2] == "invalid envelope: missing record"
    assert reasons[3] == "missing ID"
    assert reasons[4].startswith("oversized message: ")
    assert reasons[5].startswith("unknown dataset 'faa/nope'")

    storage = current_lakehouse().storage
    batches = storage.list("bronze/feed/osha/severe_injury")
    # Both attempts of the crashed run and the redelivery: bronze keeps every batch as received, and
    # an attempt of the same flow run never overwrites the file an earlier attempt's rows point to.
    assert len(batches) == 3
    assert {storage.uri(key) for key in batches} >= {uri.split("#")[0] for uri in silver["meta_source_uri"]}
    lines = [json.loads(line) for line in storage.read_bytes(batches[0]).decode().splitlines()]
    assert len(lines) == 31
    assert {line["message_id"] for line in lines} >= {f"osha-{r['ID']}" for r in records[:10]}


@pytest.mark.usefixtures("prefect_harness")
def test_poison_and_crash_before_delete_embedded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "0")
    monkeypatch.setenv("VENTUREOS_FEED_MAX_MESSAGE_BYTES", "16384")
    crash_and_redeliver(current_lakehouse().storage.root, monkeypatch)


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_poison_and_crash_before_delete_on_aws(aws_home: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "1")
    monkeypatch.setenv("VENTUREOS_FEED_MAX_MESSAGE_BYTES", "16384")
    crash_and_redeliver(f"s3://{aws_home}", monkeypatch)


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_backlog_is_received_and_deleted_ten_at_a_time(sqs_queue_home: str) -> None:
    """Real HTTP calls counted on the client: one receive and one delete per ten messages.

    200 messages, not 10,000: moto recomputes queue attributes over every message for each message
    sent or received, so its cost grows with the square of the backlog. The count is linear: a
    10,000-message backlog is 1,000 receives and 1,000 deletes.
    """
    calls: Counter[str] = Counter()
    queue = current_queue()
    queue.client.meta.events.register("before-call.sqs.*", lambda event_name, **_: calls.update([event_name]))
    records = sample_records(200)
    queue.send([envelope_json("osha", "severe_injury", r) for r in records])
    assert calls["before-call.sqs.SendMessageBatch"] == 20

    report = feed_poll(max_messages=200)
    assert report["totals"]["inserted"] == 200 and report["deleted"] == 200
    # Moto's receive is not thread-safe: concurrent receives now and then hand out a message twice
    # (SQS may too); the batch keeps it once and tops up with one more receive round.
    receives = calls["before-call.sqs.ReceiveMessage"]
    assert 20 <= receives <= 24
    assert calls["before-call.sqs.DeleteMessageBatch"] == 20
    assert silver_rows()["violation_id"].n_unique() == 200
    assert queue.depth() == Depth(0, 0, 0)

    empty = feed_poll(max_messages=200)  # an empty queue: one round of long polls, nothing else
    assert empty["messages"] == 0 and empty["totals"]["read"] == 0 and empty["reconciled"]
    assert calls["before-call.sqs.ReceiveMessage"] == receives + 4
    assert calls["before-call.sqs.DeleteMessageBatch"] == 20


@pytest.mark.usefixtures("prefect_harness")
def test_cli_send_csv_poll_and_status(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance path: real severe-injury rows through `feed send`, `run feed-poll`, `feed status`."""
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "0")
    expected = pl.read_csv(SAMPLE_CSV, infer_schema=False)
    assert run_cli("feed", "send", str(SAMPLE_CSV), "--agency", "osha", "--dataset", "severe_injury") == 0
    assert capsys.readouterr().out.startswith(f"sent {expected.height} messages")
    assert run_cli("feed", "status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["visible"] == expected.height

    assert run_cli("run", "feed-poll", "--max-messages", "1000", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["read"] == expected.height == report["totals"]["inserted"]
    silver = silver_rows()
    assert silver.height == expected.height and silver["violation_id"].n_unique() == expected.height
    assert sorted(silver["source_id"]) == sorted(expected["ID"])
    [bronze] = current_lakehouse().storage.list("bronze/feed/osha/severe_injury")
    assert len(current_lakehouse().storage.read_bytes(bronze).splitlines()) == expected.height

    # JSON lines on stdin: one bare record, an update of a violation already in silver.
    changed = {**expected.row(0, named=True), "Final Narrative": "Corrected narrative."}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(changed).encode())))
    assert run_cli("feed", "send", "-", "--agency", "osha", "--dataset", "severe_injury") == 0
    capsys.readouterr()
    assert run_cli("run", "feed-poll", "--json") == 0
    assert json.loads(capsys.readouterr().out)["totals"]["updated"] == 1
    current = silver_rows().filter(pl.col("is_current"))
    assert current.height == expected.height
    assert (
        current.filter(pl.col("source_id") == changed["ID"])["description"].item() == "Corrected narrative."
    )

    assert run_cli("feed", "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["visible"], status["in_flight"], status["dead"]) == (0, 0, 0)


def test_send_accepts_envelopes_bare_records_and_csv() -> None:
    envelope = envelope_json("osha", "severe_injury", {"ID": "1"}, message_id="m-1")
    assert message_bodies(f"{envelope}\n\n{envelope}\n".encode(), False, None, None) == [envelope, envelope]
    # Bare records without --agency/--dataset would all be poison: refused at send, naming the line.
    with pytest.raises(ValueError, match=r"^line 3 is not a feed envelope \(invalid JSON: .*--agency and"):
        message_bodies(f"{envelope}\n\n{{oops\n".encode(), False, None, None)
    with pytest.raises(
        ValueError, match=r"^line 1 is not a feed envelope \(invalid envelope: missing agency"
    ):
        message_bodies(b'{"ID": "7"}\n', False, None, None)
    with pytest.raises(typer.BadParameter, match="--agency and --dataset go together"):
        message_bodies(b'{"ID": "7"}\n', False, "osha", None)
    [wrapped] = message_bodies(b'{"ID": "7"}\n', False, "osha", "severe_injury")
    assert parse_envelope(wrapped, "q", 2000).record == {"ID": "7"}
    csv = "ID,Employer\n8,Caf\xe9 Inc\n".encode("cp1252")
    [row] = message_bodies(csv, True, "osha", "severe_injury")
    assert parse_envelope(row, "q", 2000).record == {"ID": "8", "Employer": "Caf\xe9 Inc"}
    with pytest.raises(typer.BadParameter, match="--agency and --dataset"):
        message_bodies(csv, True, None, None)
    with pytest.raises(
        ValueError, match=r"^line 3 is not JSON: Expecting property name enclosed in double quotes"
    ):
        message_bodies(b'{"ID": "7"}\n\n{oops\n', False, "osha", "severe_injury")
