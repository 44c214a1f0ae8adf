"""Feed steps: receive a batch from the queue, keep it raw in bronze/feed, normalize, delete when committed."""

from __future__ import annotations

from typing import NamedTuple

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from prefect import task
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, RESTError
from sqlalchemy.exc import SQLAlchemyError

from tasks.policy import IO_TASK, PURE_TASK
from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import REJECT_SCHEMA, RawBatch
from ventureos.feed import (
    POISON,
    FeedBatch,
    PoisonMessage,
    jsonl,
    parse_envelope,
    raw_batch,
    split_messages,
    stable_rejects,
)
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import feed_batch_key, message_uri
from ventureos.queue import Message, current_queue
from ventureos.report import RUN_COUNTS, RunReport
from ventureos.transient import is_transient

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


@task(name="receive-feed", **IO_TASK)
def receive_feed(max_messages: int, max_seconds: float) -> list[Message]:
    """Up to ``max_messages``, until the queue is empty or ``max_seconds`` have passed.

    A retry after a partial receive is safe: what the failed attempt received comes back after the
    visibility timeout.
    """
    return current_queue().receive(max_messages, max_seconds)


@task(name="split-feed", **PURE_TASK)
def split_feed(messages: list[Message]) -> FeedBatch:
    settings = current_lakehouse().settings
    return split_messages(messages, settings.queue_name, settings.feed_max_message_bytes)


class Staged(NamedTuple):
    agency: str
    dataset: str
    bronze_uri: str
    raw: RawBatch


@task(name="stage-feed", **IO_TASK)
def stage_feed(feed: FeedBatch, day: str, batch_id: str) -> list[Staged]:
    """Write each dataset's envelopes to ``bronze/feed/{agency}/{dataset}/{day}/{batch_id}.jsonl``
    before anything else happens to them; returns their raw frames, lineage pointing at those files."""
    storage = current_lakehouse().storage
    staged = []
    for (agency, dataset), envelopes in feed.groups.items():
        uri = storage.write_bytes(feed_batch_key(agency, dataset, day, batch_id), jsonl(envelopes))
        staged.append(Staged(agency, dataset, uri, raw_batch(envelopes, uri)))
    return staged


@task(name="normalize-feed", **PURE_TASK)
def normalize_feed(raw: RawBatch, agency: str, dataset: str) -> NormalizedBatch:
    """The daily path's normalization; rejects (and deletes that may turn out withdrawn) are keyed by
    message, so redeliveries quarantine once."""
    batch = normalize_raw_batch(raw, agency, dataset)
    queue = current_lakehouse().settings.queue_name
    batch.rejects, batch.deleted = stable_rejects(batch.rejects, queue), stable_rejects(batch.deleted, queue)
    return batch


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


def crashed_batch(message: Message, exc: BaseException) -> NormalizedBatch:
    """A message that fails ingestion on its own, as a reject of its dataset keyed by message (as its
    record's rejects are), so a redelivery quarantines it once."""
    settings = current_lakehouse().settings
    try:
        envelope = parse_envelope(message.body, message.message_id, settings.feed_max_message_bytes)
        (agency, dataset), message_id = (envelope.agency, envelope.dataset), envelope.message_id
    except PoisonMessage:
        (agency, dataset), message_id = POISON, message.message_id
    reject = {
        "source_uri": message_uri(settings.queue_name, message_id),
        "reason": crash_reason(exc),
        "raw_payload": message.body,
    }
    batch = NormalizedBatch.empty(agency, dataset)
    batch.rejects, batch.records_read = pl.DataFrame([reject], schema=REJECT_SCHEMA), 1
    return batch


def combine_reports(first: RunReport, second: RunReport) -> RunReport:
    """One report for a batch ingested in two parts: counts, quality, files and timings added up."""
    counts = (
        pl.concat([first.counts, second.counts])
        .group_by("agency", "dataset", maintain_order=True)
        .agg(pl.col(c).sum() for c in RUN_COUNTS)
    )
    quality = (
        pl.concat([first.quality, second.quality])
        .group_by("issue", maintain_order=True)
        .agg(pl.col("rows").sum())
        .sort("rows", descending=True, maintain_order=True)
    )
    timings = {
        k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0) for k in first.timings | second.timings
    }
    bronze = first.extra.get("bronze", []) + second.extra.get("bronze", [])
    return RunReport(
        first.flow,
        first.run_id,
        counts,
        quality,
        first.written + second.written,
        timings,
        first.extra | second.extra | {"bronze": bronze},
    )


@task(name="delete-messages", **IO_TASK)
def delete_messages(messages: list[Message]) -> list[str]:
    """Delete only after every commit of the batch; returns receipts that were no longer valid
    (a message redelivered meanwhile: its second processing is a no-op)."""
    return current_queue().delete(messages)
