"""feed-poll: SQS (or local) queue batches -> bronze/feed -> the daily path -> delete the messages."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from prefect import flow

from flows.common import Stopwatch, run_id, utc_now, write_daily_path
from tasks.feed import delete_messages, normalize_feed, receive_feed, split_feed, stage_feed
from tasks.report import publish_report
from ventureos.batch import NormalizedBatch
from ventureos.feed import by_sent_at, crashed_batch, message_caused, poison_batch
from ventureos.lakehouse import current_lakehouse
from ventureos.queue import Message, current_queue
from ventureos.report import RunReport, combine_reports

log = logging.getLogger(__name__)


def ingest_messages(messages: list[Message], rid: str, now: datetime) -> RunReport:
    """Everything up to the last commit (a crash after it means redelivery, which changes nothing)."""
    day, watch = now.date().isoformat(), Stopwatch()
    feed = split_feed(messages)
    # A retried flow run keeps its id: each attempt gets its own bronze file, so the rows an earlier
    # attempt committed keep pointing at the lines they came from.
    staged = stage_feed(feed, day, f"{rid}-{uuid.uuid4().hex[:8]}")
    batches: list[NormalizedBatch] = [normalize_feed(s.raw, s.agency, s.dataset) for s in staged]
    batches += poison_batch(feed)
    watch.lap("stage_and_normalize")
    report = write_daily_path("feed-poll", batches, rid, now, day, watch)
    report.extra["bronze"] = [s.bronze_uri for s in staged]
    return report


def ingest_isolating(messages: list[Message], rid: str, now: datetime) -> RunReport:
    """``ingest_messages``; when the batch fails because of a message, the batch is split in two
    halves (oldest sent first) ingested one after the other, recursively, so k bad messages among n
    cost about 2k·log2(n) extra attempts and never hold back the others. A message that fails alone is
    quarantined with the error's first line. Transient and environment errors propagate: the run
    fails (or its task retries) and the messages come back.
    """
    try:
        return ingest_messages(messages, rid, now)
    except Exception as exc:
        if not message_caused(exc):
            raise
        if len(messages) == 1:
            log.warning("message %s fails ingestion on its own: quarantined", messages[0].message_id)
            settings = current_lakehouse().settings
            crashed = crashed_batch(messages[0], exc, settings.queue_name, settings.feed_max_message_bytes)
            report = write_daily_path("feed-poll", [crashed], rid, now, now.date().isoformat(), Stopwatch())
            report.extra["bronze"] = []
            return report
        log.warning("a batch of %d messages failed (%s): ingesting it in halves", len(messages), exc)
        ordered = by_sent_at(messages, current_lakehouse().settings.feed_max_message_bytes)
        half = len(ordered) // 2
        # A fresh clock per part: a violation updated in both parts gets versions in order.
        first = ingest_isolating(ordered[:half], rid, utc_now())
        return combine_reports(first, ingest_isolating(ordered[half:], rid, utc_now()))


def _run_name() -> str:
    return f"feed-poll-{utc_now():%Y-%m-%dT%H%M}"


@flow(name="feed-poll", flow_run_name=_run_name)
def feed_poll(max_messages: int = 100, max_seconds: float = 60.0) -> dict[str, Any]:
    """One batch: receive up to ``max_messages`` (or for ``max_seconds``), ingest, then delete.

    Args:
        max_messages: Most messages to take in this run (1 or more).
        max_seconds: Longest time to keep receiving; must stay below the queue's visibility timeout.
    """
    queue = current_queue()
    if max_messages < 1 or not 0 < max_seconds < queue.visibility_timeout:
        # Receiving longer than the visibility timeout would let the first messages come back mid-batch.
        raise ValueError(
            f"max_messages must be >= 1 and 0 < max_seconds < the visibility timeout ({queue.visibility_timeout} s)"
        )
    rid, now = run_id(), utc_now()
    messages = receive_feed(max_messages, max_seconds)
    with queue.hold(messages):
        report = ingest_isolating(messages, rid, now)
    failed = delete_messages(messages)
    report.extra |= {"messages": len(messages), "deleted": len(messages) - len(failed)}
    publish_report(report, key="feed-poll")
    return report.as_dict()
