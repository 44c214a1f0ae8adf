"""feed-poll end to end: real OSHA rows as feed messages, poison, a crash before the delete, API call counts."""

from __future__ import annotations

import io
import json
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import typer
from botocore.exceptions import ClientError

import flows.common
import normalizers
from flows.common import utc_now
from flows.feed_poll import feed_poll, ingest_isolating, ingest_messages
from normalizers.osha import severe_injury
from ventureos.cli.feed import message_bodies
from ventureos.feed import PoisonMessage, envelope_json, message_caused, parse_envelope, raw_batch
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
        "read": 36, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 30, "stale": 0, "duplicates": 0, "quarantined": 6,
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
    # The line of the batch file, with the message's sent time (its versions' as-of) and its id.
    assert re.search(rf"\.jsonl#\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z/osha-{records[0]['ID']}$", lineage)

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


def refuse_marked(raw: pl.DataFrame) -> pl.DataFrame:
    """Severe-injury records, except that a record with a ``Refuse`` field crashes the batch."""
    if "Refuse" in raw.columns and raw["Refuse"].is_not_null().any():
        refused = raw.filter(pl.col("Refuse").is_not_null())["ID"].to_list()
        raise ValueError(f"refusing records {refused}\nsecond line of the error")
    return severe_injury.normalize(raw)


@pytest.fixture
def crashing_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only dataset ``test/refusing``, registered like any dataset, whose normalizer crashes a
    batch holding a marked record: a crash that does not depend on a bug of the real normalizers."""
    dataset = normalizers.Dataset("test", "refusing", refuse_marked, id_columns=("ID",))
    monkeypatch.setitem(normalizers.REGISTRY, dataset.key, dataset)


@pytest.mark.usefixtures("prefect_harness", "crashing_dataset")
def test_a_crashing_message_is_quarantined_alone_and_the_rest_ingested(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 messages: 15 good OSHA reports, 2 good and 2 crashing ones of the test dataset, 1 poison.
    Delivered twice (max 2 receives): nothing is dead-lettered, the second delivery changes nothing."""
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "0")
    monkeypatch.setenv("VENTUREOS_QUEUE_MAX_RECEIVES", "2")
    records = sample_records(19)
    good = [envelope_json("osha", "severe_injury", r, message_id=f"osha-{r['ID']}") for r in records[:15]]
    good += [envelope_json("test", "refusing", r, message_id=f"test-{r['ID']}") for r in records[15:17]]
    crashing = [
        envelope_json(
            "test", "refusing", {**r, "Refuse": "yes"}, datetime.fromisoformat(SENT_AT), f"crash-{r['ID']}"
        )
        for r in records[17:19]
    ]
    queue = current_queue()
    queue.send([*good[:8], crashing[0], "{oops", *good[8:], crashing[1]])

    messages = queue.receive(max_messages=100, max_seconds=10)
    assert len(messages) == 20
    first = ingest_isolating(messages, "run-before-a-crash", utc_now())
    assert first.totals == {
        "read": 20, "inserted": 17, "updated": 0, "deleted": 0, "unchanged": 0, "stale": 0, "duplicates": 0, "quarantined": 3,
    }  # fmt: skip
    assert first.reconciled
    counts = {(row["agency"], row["dataset"]): row for row in first.counts.to_dicts()}
    assert counts["test", "refusing"]["inserted"] == 2 and counts["test", "refusing"]["quarantined"] == 2
    assert counts["feed", "poison"]["quarantined"] == 1
    queue.release(messages)  # the process died before the delete: all 20 come back

    report = feed_poll()
    assert report["messages"] == 20 and report["deleted"] == 20 and report["reconciled"]
    assert report["totals"] == {
        "read": 20, "inserted": 0, "updated": 0, "deleted": 0, "unchanged": 17, "stale": 0, "duplicates": 0, "quarantined": 3,
    }  # fmt: skip
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=0)

    silver = silver_rows()
    assert silver.height == 17
    assert sorted(silver["violation_id"]) == sorted(
        [f"osha:severe_injury:{r['ID']}" for r in records[:15]]
        + [f"test:refusing:{r['ID']}" for r in records[15:17]]
    )
    quarantined = quarantine_rows().sort("source_uri")
    assert quarantined.height == 3  # once each, across both deliveries
    crashed = quarantined.filter(pl.col("reason").str.starts_with("ingest failed"))
    assert crashed["source_uri"].to_list() == [
        f"feed://{queue.name}/2024-03-05T10:00:00.000000Z/crash-{r['ID']}" for r in records[17:19]
    ]
    assert crashed["reason"].to_list() == [
        f"ingest failed: ValueError: refusing records ['{r['ID']}']" for r in records[17:19]
    ]
    assert crashed["raw_payload"].to_list() == crashing
    assert_gold_equals_current_silver()


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_messages_that_crash_the_real_pipeline_never_dead_letter_their_batch(
    sqs_queue_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records found to crash ingestion (a key named like the pipeline's row column, a year-0 date):
    whether a fix makes them rows or rejects, or they still crash and are isolated, the good messages
    of their batch load and nothing reaches the dead-letter queue."""
    monkeypatch.setenv("VENTUREOS_QUEUE_MAX_RECEIVES", "1")
    records = sample_records(12)
    bad = {
        "bad-row-key": {**records[10], "__ventureos_row": "5"},
        "bad-year-0": {**records[11], "EventDate": "0000-01-01"},
    }
    queue = current_queue()
    queue.send(
        [envelope_json("osha", "severe_injury", r, message_id=f"osha-{r['ID']}") for r in records[:10]]
        + [envelope_json("osha", "severe_injury", r, message_id=mid) for mid, r in bad.items()]
    )
    report = feed_poll()
    assert report["messages"] == 12 and report["deleted"] == 12 and report["reconciled"]
    assert report["totals"]["read"] == 12
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=0)
    loaded = set(silver_rows()["meta_source_uri"].str.extract(r"([^/#]+)$"))
    assert loaded >= {f"osha-{r['ID']}" for r in records[:10]}
    quarantined = {uri.rsplit("/", 1)[1] for uri in quarantine_rows()["source_uri"]}
    assert (loaded | quarantined) - {f"osha-{r['ID']}" for r in records[:10]} == set(bad)
    assert not (loaded & quarantined)


def test_only_failures_a_message_can_cause_split_the_batch() -> None:
    assert message_caused(OverflowError("date value out of range"))
    assert message_caused(pl.exceptions.DuplicateError("column with name '__ventureos_row'"))
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject"
    )
    throttled = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"
    )
    assert not message_caused(denied)  # the lake refuses every message alike
    assert not message_caused(throttled)  # transient: retried
    assert not message_caused(PermissionError("/lake/bronze"))
    assert not message_caused(KeyboardInterrupt())


@pytest.mark.aws
@pytest.mark.usefixtures("prefect_harness")
def test_backlog_is_received_and_deleted_ten_at_a_time(sqs_queue_home: str) -> None:
    """The real HTTP calls, seen on the client: every message received and deleted once, ten per call.

    200 messages, not 10,000: moto recomputes queue attributes over every message for each message
    sent or received, so its cost grows with the square of the backlog. How many receives a backlog
    takes depends on timing (SQS may answer short, or hand a message to two concurrent receives; so
    does moto, whose receive is not thread-safe): what holds is at least one per ten messages, none
    with more than ten, and each message kept and deleted once.
    """
    received: list[list[dict[str, str]]] = []
    deleted: list[list[str]] = []

    def after_receive(parsed: dict, **_: object) -> None:
        received.append(parsed.get("Messages", []))

    def before_delete(params: dict, **_: object) -> None:
        deleted.append([entry["ReceiptHandle"] for entry in params["Entries"]])

    queue = current_queue()
    events = queue.client.meta.events
    events.register("after-call.sqs.ReceiveMessage", after_receive)
    events.register("before-parameter-build.sqs.DeleteMessageBatch", before_delete)
    records = sample_records(200)
    sent = queue.send([envelope_json("osha", "severe_injury", r) for r in records])

    report = feed_poll(max_messages=200)
    assert report["messages"] == 200 and report["deleted"] == 200
    assert report["totals"]["read"] == report["totals"]["inserted"] == 200
    assert len(received) >= 20 and all(len(answer) <= 10 for answer in received)
    message_of = {m["ReceiptHandle"]: m["MessageId"] for answer in received for m in answer}
    assert set(message_of.values()) == set(sent)
    assert len(deleted) == 20 and all(len(call) == 10 for call in deleted)
    assert sorted(message_of[r] for call in deleted for r in call) == sorted(sent)  # each once
    assert silver_rows()["violation_id"].n_unique() == 200
    assert queue.depth() == Depth(0, 0, 0)

    receives = len(received)
    empty = feed_poll(max_messages=200)  # an empty queue: one round of long polls, nothing else
    assert empty["messages"] == 0 and empty["totals"]["read"] == 0 and empty["reconciled"]
    assert received[receives:] == [[]] * 4
    assert len(deleted) == 20


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


@pytest.mark.usefixtures("prefect_harness")
def test_cli_redrive_moves_dead_letters_back_for_feed_poll(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENTUREOS_QUEUE_WAIT_SECONDS", "0")
    monkeypatch.setenv("VENTUREOS_QUEUE_MAX_RECEIVES", "1")
    records = sample_records(3)
    queue = current_queue()
    queue.send([envelope_json("osha", "severe_injury", r) for r in records])
    queue.release(queue.receive(max_messages=10, max_seconds=1))  # a batch that died, once too often
    assert queue.receive(max_messages=10, max_seconds=1) == []
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=3)

    assert run_cli("feed", "redrive", "--max", "2") == 0
    assert capsys.readouterr().out == f"moved 2 messages from {queue.name}-dlq to {queue.name}\n"
    assert run_cli("feed", "redrive", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "queue": queue.name, "dead_letter_queue": f"{queue.name}-dlq", "moved": 1,
    }  # fmt: skip
    assert run_cli("feed", "redrive") == 0
    assert capsys.readouterr().out.startswith("moved 0 messages")

    report = feed_poll()
    assert report["totals"]["inserted"] == 3 and report["deleted"] == 3
    assert sorted(silver_rows()["source_id"]) == sorted(r["ID"] for r in records)
    assert queue.depth() == Depth(0, 0, 0)


LIMIT = 262_144


def test_send_accepts_envelopes_bare_records_and_csv() -> None:
    envelope = envelope_json("osha", "severe_injury", {"ID": "1"}, message_id="m-1")
    assert message_bodies(f"{envelope}\n\n{envelope}\n".encode(), False, None, None, LIMIT) == [
        envelope,
        envelope,
    ]
    # Bare records without --agency/--dataset would all be poison: refused at send, naming the line.
    with pytest.raises(ValueError, match=r"^line 3 is not a feed envelope \(invalid JSON: .*--agency and"):
        message_bodies(f"{envelope}\n\n{{oops\n".encode(), False, None, None, LIMIT)
    with pytest.raises(
        ValueError, match=r"^line 1 is not a feed envelope \(invalid envelope: missing agency"
    ):
        message_bodies(b'{"ID": "7"}\n', False, None, None, LIMIT)
    with pytest.raises(typer.BadParameter, match="--agency and --dataset go together"):
        message_bodies(b'{"ID": "7"}\n', False, "osha", None, LIMIT)
    [wrapped] = message_bodies(b'{"ID": "7"}\n', False, "osha", "severe_injury", LIMIT)
    assert parse_envelope(wrapped, "q", 2000).record == {"ID": "7"}
    csv = "ID,Employer\n8,Caf\xe9 Inc\n".encode("cp1252")
    [row] = message_bodies(csv, True, "osha", "severe_injury", LIMIT)
    assert parse_envelope(row, "q", 2000).record == {"ID": "8", "Employer": "Caf\xe9 Inc"}
    with pytest.raises(typer.BadParameter, match="--agency and --dataset"):
        message_bodies(csv, True, None, None, LIMIT)
    with pytest.raises(
        ValueError, match=r"^line 3 is not JSON: Expecting property name enclosed in double quotes"
    ):
        message_bodies(b'{"ID": "7"}\n\n{oops\n', False, "osha", "severe_injury", LIMIT)


def test_send_refuses_a_message_over_the_limit_naming_the_line() -> None:
    """feed-poll quarantines a message over feed_max_message_bytes: it is refused at send instead."""
    big = json.dumps({"ID": "9", "Final Narrative": "x" * 300_000})
    lines = f'{{"ID": "8"}}\n\n{big}\n'.encode()
    with pytest.raises(
        ValueError, match=r"^line 3 makes a 300\d{3}-byte message, over the 262144-byte limit"
    ):
        message_bodies(lines, False, "osha", "severe_injury", LIMIT)
    envelope = envelope_json("osha", "severe_injury", json.loads(big))
    with pytest.raises(ValueError, match=r"^line 2 makes a .* \(feed_max_message_bytes\)"):
        message_bodies(
            f"{envelope_json('osha', 'severe_injury', {'ID': '1'})}\n{envelope}".encode(),
            False,
            None,
            None,
            LIMIT,
        )
    csv = f"ID,Final Narrative\n1,short\n9,{'x' * 2000}\n".encode()
    with pytest.raises(ValueError, match=r"^CSV row 2 makes a \d+-byte message, over the 1024-byte limit"):
        message_bodies(csv, True, "osha", "severe_injury", 1024)
    assert len(message_bodies(csv, True, "osha", "severe_injury", LIMIT)) == 2


def test_send_reads_a_csv_as_the_daily_path_does() -> None:
    """A CR-only CSV sent 0 messages; a bad row or a JSON document is refused, naming it."""
    rows = [
        json.loads(body)["record"]
        for body in message_bodies(b"ID,Employer\r1,A\r2,B\r", True, "osha", "severe_injury", LIMIT)
    ]
    assert rows == [{"ID": "1", "Employer": "A"}, {"ID": "2", "Employer": "B"}]
    with pytest.raises(ValueError, match=r"^line 3: CSV row has 3 fields, the header has 2$"):
        message_bodies(b"ID,Employer\n1,A\n2,B,C\n", True, "osha", "severe_injury", LIMIT)
    with pytest.raises(ValueError, match=r"^not CSV: the file holds a JSON document"):
        message_bodies(b'{"ID": "1"}', True, "osha", "severe_injury", LIMIT)


def test_a_record_with_a_lineage_field_name_is_rejected_alone() -> None:
    """A ``__ventureos_row`` key failed the whole batch's row index (and the batch went to the DLQ)."""
    sent = datetime.fromisoformat(SENT_AT)
    bodies = [envelope_json("osha", "severe_injury", {"ID": "1", "__ventureos_row": "9"}, sent, "m1"),
              envelope_json("osha", "severe_injury", {"ID": "2"}, sent, "m2")]  # fmt: skip
    raw = raw_batch([parse_envelope(body, "q", 1 << 18) for body in bodies], "s3://lake/bronze/feed/b.jsonl")
    line = "s3://lake/bronze/feed/b.jsonl#2024-03-05T10:00:00.000000Z"
    assert raw.frame.select("ID", "__ventureos_source_uri").rows() == [("2", f"{line}/m2")]
    assert raw.rejects.rows() == [
        (f"{line}/m1", "source field __ventureos_row has the name of a lineage column",
         '{"ID": "1", "__ventureos_row": "9"}'),
    ]  # fmt: skip
    assert raw.records_read == 2
