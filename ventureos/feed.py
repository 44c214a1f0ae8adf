"""Feed messages: the JSON envelope agencies' API feeds send, parsed and split into a batch (pure).

Envelope: ``{"agency", "dataset", "record", "sent_at", "message_id"?}`` where ``record`` is the
source's own row (the keys of its CSV export). A message that cannot be routed to a known dataset
(invalid JSON, not an envelope, unknown agency/dataset, oversized) is poison: it becomes a reject with
the reason and never blocks the rest of its batch. See docs/feed.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, RESTError
from sqlalchemy.exc import SQLAlchemyError

from normalizers import UnknownDatasetError, get_dataset
from ventureos.batch import NormalizedBatch
from ventureos.bronze import REJECT_SCHEMA, RawBatch, records_frame, without_reserved_fields
from ventureos.layout import feed_record_uri, message_uri
from ventureos.queue.base import Message
from ventureos.schemas import ROW, SOURCE_URI
from ventureos.transient import is_transient

REQUIRED = ("agency", "dataset", "record", "sent_at")
POISON = ("feed", "poison")
"""Agency/dataset under which unroutable messages are counted and quarantined."""


class PoisonMessage(ValueError):
    """A message that can never become a record; the message is the quarantine reason."""


@dataclass(frozen=True)
class Envelope:
    agency: str
    dataset: str
    record: dict[str, Any]
    sent_at: datetime
    message_id: str
    """The sender's id when given, else the queue's: the identity of the message across redeliveries."""

    def to_json(self) -> str:
        """One compact line, as kept in bronze/feed."""
        return json.dumps(
            {
                "agency": self.agency,
                "dataset": self.dataset,
                "record": self.record,
                "sent_at": self.sent_at.isoformat(),
                "message_id": self.message_id,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )


def envelope_json(
    agency: str,
    dataset: str,
    record: dict[str, Any],
    sent_at: datetime | None = None,
    message_id: str | None = None,
) -> str:
    """A message body for ``record`` (what ``ventureos feed send`` enqueues)."""
    body: dict[str, Any] = {
        "agency": agency,
        "dataset": dataset,
        "record": record,
        "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
    }
    if message_id is not None:
        body["message_id"] = message_id
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def parse_envelope(body: str, queue_message_id: str, max_bytes: int) -> Envelope:
    """Validate one message body; raises ``PoisonMessage`` with the reason."""
    size = len(body.encode())
    if size > max_bytes:
        raise PoisonMessage(f"oversized message: {size} bytes (limit {max_bytes})")
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(payload, dict):
        raise PoisonMessage("invalid envelope: not a JSON object")
    missing = [key for key in REQUIRED if payload.get(key) in (None, "")]
    if missing:
        raise PoisonMessage(f"invalid envelope: missing {', '.join(missing)}")
    agency, dataset, record = payload["agency"], payload["dataset"], payload["record"]
    if not isinstance(agency, str) or not isinstance(dataset, str):
        raise PoisonMessage("invalid envelope: agency and dataset must be strings")
    if not isinstance(record, dict) or not record:
        raise PoisonMessage("invalid envelope: record must be a non-empty JSON object")
    try:
        get_dataset(agency, dataset)
    except UnknownDatasetError as exc:
        raise PoisonMessage(str(exc)) from None
    try:
        sent_at = datetime.fromisoformat(str(payload["sent_at"]))
    except ValueError:
        raise PoisonMessage(
            f"invalid envelope: sent_at is not an ISO-8601 time: {payload['sent_at']!r}"
        ) from None
    message_id = payload.get("message_id")
    if message_id is not None and not isinstance(message_id, str | int):
        raise PoisonMessage("invalid envelope: message_id must be a string")
    sent_at = sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC)
    return Envelope(agency, dataset, record, sent_at, str(message_id or queue_message_id))


@dataclass
class FeedBatch:
    """One poll's messages: envelopes grouped by (agency, dataset), plus the poison as rejects."""

    groups: dict[tuple[str, str], list[Envelope]] = field(default_factory=dict)
    poison: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))


def split_messages(messages: Sequence[Message], queue_name: str, max_bytes: int) -> FeedBatch:
    """Parse every message; group the good ones (oldest ``sent_at`` first), reject the poison."""
    batch = FeedBatch()
    poison = []
    for message in messages:
        try:
            envelope = parse_envelope(message.body, message.message_id, max_bytes)
        except PoisonMessage as exc:
            uri = message_uri(queue_name, message.message_id)
            poison.append({"source_uri": uri, "reason": str(exc), "raw_payload": message.body})
            continue
        batch.groups.setdefault((envelope.agency, envelope.dataset), []).append(envelope)
    for envelopes in batch.groups.values():
        # Within a batch the last version of a violation wins: order by when the source sent it.
        envelopes.sort(key=lambda e: e.sent_at)
    batch.poison = pl.DataFrame(poison, schema=REJECT_SCHEMA)
    return batch


def by_sent_at(messages: Sequence[Message], max_bytes: int) -> list[Message]:
    """Oldest ``sent_at`` first (poison, which has none, first of all): ingested in this order, the
    parts of a split batch keep its rule that the latest version of a violation wins."""

    def sent_at(message: Message) -> datetime:
        try:
            return parse_envelope(message.body, message.message_id, max_bytes).sent_at
        except PoisonMessage:
            return datetime.min.replace(tzinfo=UTC)

    return sorted(messages, key=sent_at)


def jsonl(envelopes: Sequence[Envelope]) -> bytes:
    return "".join(e.to_json() + "\n" for e in envelopes).encode()


def raw_batch(envelopes: Sequence[Envelope], bronze_uri: str) -> RawBatch:
    """The records as a raw frame like bronze reads give; each row's source is its bronze line.

    The source URI is ``{bronze file}#{sent_at}/{message_id}`` (``layout.feed_record_uri``): lineage to
    the exact line in silver and the version's as-of instant; ``stable_rejects`` turns it into the
    message's own URI for the quarantine.
    """
    uris = [feed_record_uri(bronze_uri, e.sent_at, e.message_id) for e in envelopes]
    records, reserved = without_reserved_fields(records_frame([e.record for e in envelopes]))
    rejected = {bad.line for bad in reserved}
    frame = records.with_columns(
        pl.Series(SOURCE_URI, [u for i, u in enumerate(uris) if i not in rejected], dtype=pl.String)
    )
    rejects = pl.DataFrame(
        [{"source_uri": uris[bad.line], "reason": bad.reason, "raw_payload": bad.text} for bad in reserved],
        schema=REJECT_SCHEMA,
    )
    return RawBatch(frame=frame.with_row_index(ROW), rejects=rejects)


def stable_rejects(rejects: pl.DataFrame, queue_name: str) -> pl.DataFrame:
    """Rejects keyed by message (``message_uri``: its sent time and id), not by batch file, so a
    redelivered message is quarantined once and a replay from quarantine keeps the record's as-of."""
    return rejects.with_columns(
        pl.col("source_uri").str.replace(r"^[^#]*#", message_uri(queue_name, ""), literal=False)
    )


# A batch that fails: isolating the message that made it fail ------------------------------------

ENVIRONMENT_ERRORS = (
    ClientError,
    BotoCoreError,
    OSError,
    SQLAlchemyError,
    RESTError,
    NoSuchTableError,
    NoSuchNamespaceError,
)
"""Failures of the lake, catalog or AWS (permissions, missing tables, storage): no message's fault."""


def poison_batch(feed: FeedBatch) -> list[NormalizedBatch]:
    """The batch's unroutable messages as rejects of their own (counted under feed/poison)."""
    if feed.poison.is_empty():
        return []
    batch = NormalizedBatch.empty(*POISON)
    batch.rejects, batch.records_read = feed.poison, feed.poison.height
    return [batch]


def message_caused(exc: BaseException) -> bool:
    """Whether a failed batch may have failed because of one of its messages, so splitting it can
    isolate that message. Transient errors are retried instead, and errors of the environment fail
    the run (its messages come back): neither is blamed on a message and quarantined."""
    return isinstance(exc, Exception) and not is_transient(exc) and not isinstance(exc, ENVIRONMENT_ERRORS)


def crash_reason(exc: BaseException) -> str:
    """The quarantine reason of a message that fails ingestion on its own: the error's first line."""
    lines = str(exc).strip().splitlines()
    kind = f"ingest failed: {type(exc).__name__}"
    return f"{kind}: {lines[0]}" if lines else kind


def crashed_batch(message: Message, exc: BaseException, queue_name: str, max_bytes: int) -> NormalizedBatch:
    """A message that fails ingestion on its own, as a reject of its dataset keyed by message (as its
    record's rejects are), so a redelivery quarantines it once."""
    try:
        envelope = parse_envelope(message.body, message.message_id, max_bytes)
        (agency, dataset), uri = (
            (envelope.agency, envelope.dataset),
            message_uri(queue_name, envelope.message_id, envelope.sent_at),
        )
    except PoisonMessage:
        (agency, dataset), uri = POISON, message_uri(queue_name, message.message_id)
    reject = {
        "source_uri": uri,
        "reason": crash_reason(exc),
        "raw_payload": message.body,
    }
    batch = NormalizedBatch.empty(agency, dataset)
    batch.rejects, batch.records_read = pl.DataFrame([reject], schema=REJECT_SCHEMA), 1
    return batch
