"""Feed queues: one interface over SQS and a local SQLite queue, with the same delivery semantics.

Delivery is at least once. A received message stays invisible for the visibility timeout and comes
back unless it is deleted; every receive counts, and a message received ``max_receives`` times goes to
the dead-letter queue (``{name}-dlq``) instead of being delivered again. A redrive moves dead-lettered
messages back, with a fresh count of receives and the same identity (see ``redrive_batch``). Backends implement single
calls of at most ten messages; this class batches them, keeps several receives in flight and keeps a
slow batch invisible.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from ventureos.registry import Registry
from ventureos.settings import Settings, load_settings

BATCH = 10
"""Messages per send, receive, delete and visibility call (the SQS maximum)."""
BATCH_BYTES = 262_144
"""Total body bytes per send call (the SQS request limit)."""

T = TypeVar("T")
log = logging.getLogger(__name__)


class QueueError(RuntimeError):
    """A queue call failed for some messages; the message names them and why."""


@dataclass(frozen=True)
class Message:
    message_id: str
    """Assigned by the queue at send time; the same on every redelivery."""
    receipt: str
    """Handle of this delivery: deletes and visibility changes use it."""
    body: str
    receive_count: int


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int
    dead: int


def chunks(items: Sequence[T], size: int = BATCH) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def send_chunks(bodies: Sequence[str]) -> list[Sequence[str]]:
    """Groups of at most ten bodies and ``BATCH_BYTES`` (a larger body goes alone)."""
    groups: list[list[str]] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if not groups or len(groups[-1]) == BATCH or size + length > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(body)
        size += length
    return groups


class FeedQueue(ABC):
    """A queue and its dead-letter queue, created on first use: the extension point for a queue backend.

    A backend subclasses it, takes the settings in its constructor and registers the class with
    ``@QUEUE_BACKENDS.register(name)`` (plus its module in ``QUEUE_BACKENDS``); then add it to the
    parameters of the contract tests (tests/test_queue_contract.py).
    """

    def __init__(self, settings: Settings) -> None:
        self.name = settings.queue_name
        self.dlq_name = f"{settings.queue_name}-dlq"
        self.visibility_timeout = settings.queue_visibility_timeout
        self.max_receives = settings.queue_max_receives
        self.wait_seconds = settings.queue_wait_seconds
        self.concurrency = settings.queue_receive_concurrency

    # One call each (at most BATCH messages) -------------------------------------------------
    @abstractmethod
    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        """Enqueue; returns the message ids. Raises ``QueueError`` naming rejected bodies."""

    @abstractmethod
    def receive_batch(self, count: int, wait_seconds: int) -> list[Message]:
        """Up to ``count`` (at most ``BATCH``) visible messages, waiting up to ``wait_seconds`` for one."""

    @abstractmethod
    def delete_batch(self, receipts: Sequence[str]) -> list[str]:
        """Delete delivered messages; returns the receipts that no longer hold a message."""

    @abstractmethod
    def change_visibility_batch(self, receipts: Sequence[str], seconds: int) -> list[str]:
        """Hide delivered messages for ``seconds`` from now (0: visible again); returns failed receipts."""

    @abstractmethod
    def depth(self) -> Depth:
        """Approximate counts of the queue and its dead-letter queue."""

    @abstractmethod
    def redrive_batch(self, count: int) -> int:
        """Move up to ``count`` (at most ``BATCH``) dead-lettered messages back to the queue; returns how
        many moved (0: the dead-letter queue is empty, or there is none).

        A moved message is delivered again up to ``max_receives`` times and keeps its identity (the
        envelope's ``message_id``). At least once: a move that dies halfway may leave a copy in the
        dead-letter queue, which a later redrive moves again; feed-poll ingests the copy as a no-op.
        """

    # Batched operations ---------------------------------------------------------------------
    def _parallel(self, call: Callable[[Sequence[str]], list[T]], groups: list[Sequence[str]]) -> list[T]:
        if len(groups) <= 1 or self.concurrency == 1:
            return [x for g in groups for x in call(g)]
        with ThreadPoolExecutor(min(self.concurrency, len(groups))) as pool:
            return [x for result in pool.map(call, groups) for x in result]

    def send(self, bodies: Sequence[str]) -> list[str]:
        """Enqueue many bodies, ten per call."""
        return [mid for group in send_chunks(bodies) for mid in self.send_batch(group)]

    def receive(self, max_messages: int, max_seconds: float) -> list[Message]:
        """Receive until ``max_messages``, an empty queue or ``max_seconds``.

        Each round keeps up to ``concurrency`` receives of ten in flight; only a round that brings
        nothing ends early: SQS often answers with fewer messages than asked while more are queued.
        Delivery is at least once: a message that comes twice (SQS may do that, even across concurrent
        receives) is kept once.
        """
        deadline = time.monotonic() + max_seconds
        received: dict[str, Message] = {}
        with ThreadPoolExecutor(self.concurrency) as pool:
            while len(received) < max_messages and (left := deadline - time.monotonic()) > 0:
                wanted = max_messages - len(received)
                calls = min(self.concurrency, math.ceil(wanted / BATCH))
                counts = [min(BATCH, wanted - BATCH * i) for i in range(calls)]
                waits = [min(self.wait_seconds, int(left))] * len(counts)
                got = [m for batch in pool.map(self.receive_batch, counts, waits) for m in batch]
                if not got:
                    break
                received |= {m.message_id: m for m in got if m.message_id not in received}
        return list(received.values())

    def delete(self, messages: Sequence[Message]) -> list[str]:
        """Delete delivered messages, ten per call with several calls in flight; returns failed receipts."""
        return self._parallel(self.delete_batch, chunks([m.receipt for m in messages]))

    def extend(self, messages: Sequence[Message], seconds: int) -> list[str]:
        """Hide delivered messages for ``seconds`` more; returns failed receipts."""
        receipts = chunks([m.receipt for m in messages])
        return self._parallel(lambda group: self.change_visibility_batch(group, seconds), receipts)

    def redrive(self, max_messages: int | None = None) -> int:
        """Move dead-lettered messages back to the queue, ten per call, until the dead-letter queue is
        empty or ``max_messages`` have moved; returns how many moved."""
        moved = 0
        while max_messages is None or moved < max_messages:
            wanted = BATCH if max_messages is None else min(BATCH, max_messages - moved)
            if not (count := self.redrive_batch(wanted)):
                break
            moved += count
        return moved

    def release(self, messages: Sequence[Message]) -> list[str]:
        """Make messages visible again now (their receive still counts)."""
        return self.extend(messages, 0)

    @contextmanager
    def hold(self, messages: Sequence[Message]) -> Iterator[None]:
        """Keep ``messages`` invisible while a batch works on them, however long it takes.

        The timeout is renewed at once (the first messages were received a while ago: the receive
        loop may have taken most of a timeout) and then every half timeout, so a slow batch is not
        delivered to a second consumer; if this process dies, renewal stops and the messages come back.
        """
        stop = threading.Event()
        interval = self.visibility_timeout / 2

        def extend() -> None:
            try:
                self.extend(messages, self.visibility_timeout)
            except Exception:  # the batch goes on; at worst a message is delivered twice
                log.warning("could not extend the visibility of %d messages", len(messages), exc_info=True)

        def renew() -> None:
            while not stop.wait(interval):
                extend()

        if messages:
            extend()
        keeper = threading.Thread(target=renew, name=f"hold-{self.name}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()


QUEUE_BACKENDS = Registry[FeedQueue](
    "queue backend", {"sqlite": "ventureos.queue.sqlite", "sqs": "ventureos.queue.sqs"}
)
"""Feed queues by ``VENTUREOS_QUEUE_BACKEND``; a backend registers ``factory(settings) -> FeedQueue``."""


def open_queue(settings: Settings) -> FeedQueue:
    """The feed queue of the configured backend."""
    return QUEUE_BACKENDS.create(settings.queue_backend, settings)


@lru_cache(maxsize=8)
def _queue(settings: Settings) -> FeedQueue:
    return open_queue(settings)


def current_queue() -> FeedQueue:
    """The queue for the settings in the environment now (one client per process and settings)."""
    return _queue(load_settings())
