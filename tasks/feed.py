"""Feed steps: receive a batch from the queue, keep it raw in bronze/feed, normalize, delete when committed."""

from __future__ import annotations

from typing import NamedTuple

from prefect import task

from tasks.policy import IO_TASK, PURE_TASK
from ventureos.batch import NormalizedBatch, normalize_raw_batch
from ventureos.bronze import RawBatch
from ventureos.feed import (
    FeedBatch,
    jsonl,
    raw_batch,
    split_messages,
    stable_rejects,
)
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import feed_batch_key
from ventureos.queue import Message, current_queue


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


@task(name="delete-messages", **IO_TASK)
def delete_messages(messages: list[Message]) -> list[str]:
    """Delete only after every commit of the batch; returns receipts that were no longer valid
    (a message redelivered meanwhile: its second processing is a no-op)."""
    return current_queue().delete(messages)
