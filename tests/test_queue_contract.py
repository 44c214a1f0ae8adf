"""One contract for both feed queues: the local SQLite queue and SQS (over HTTP on the moto server)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ventureos.queue import BATCH, Depth, FeedQueue, open_queue
from ventureos.queue.base import Message, send_chunks
from ventureos.queue.sqlite import SqliteQueue
from ventureos.settings import load_settings

MakeQueue = Callable[..., FeedQueue]


@pytest.fixture(params=["sqlite", pytest.param("sqs", marks=pytest.mark.aws)])
def make_queue(request: pytest.FixtureRequest, home: Path) -> MakeQueue:
    """Queues of one backend on one fresh queue name; keyword arguments override settings."""
    base = {
        "queue_backend": request.param,
        "queue_name": f"feed-{uuid.uuid4().hex[:12]}",
        "queue_wait_seconds": 1,
    }
    if request.param == "sqs":
        endpoint = request.getfixturevalue("moto_endpoint")
        base |= {
            "aws_endpoint_url": endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
    return lambda **overrides: open_queue(load_settings(**(base | overrides)))


def test_send_receive_delete(make_queue: MakeQueue) -> None:
    queue = make_queue()
    bodies = [f'{{"n": {i}}}' for i in range(25)]
    ids = queue.send(bodies)
    assert len(set(ids)) == 25
    assert queue.depth() == Depth(visible=25, in_flight=0, dead=0)

    got = queue.receive(max_messages=100, max_seconds=10)
    assert sorted(m.body for m in got) == sorted(bodies)
    assert {m.message_id for m in got} == set(ids)
    assert all(m.receive_count == 1 for m in got)
    assert queue.depth() == Depth(visible=0, in_flight=25, dead=0)

    assert queue.delete(got) == []
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=0)


def test_receive_stops_at_max_messages(make_queue: MakeQueue) -> None:
    queue = make_queue()
    queue.send([f"m{i}" for i in range(35)])
    first = queue.receive(max_messages=23, max_seconds=10)
    assert len(first) == 23
    rest = queue.receive(max_messages=100, max_seconds=10)
    assert len(rest) == 12
    assert {m.body for m in first}.isdisjoint({m.body for m in rest})


def test_long_poll_on_empty_queue_waits_then_returns_nothing(make_queue: MakeQueue) -> None:
    queue = make_queue()
    start = time.monotonic()
    assert queue.receive_batch(BATCH, wait_seconds=1) == []
    assert time.monotonic() - start >= 0.9


def test_unacknowledged_messages_come_back_with_a_new_receipt(make_queue: MakeQueue) -> None:
    queue = make_queue()
    queue.send(["a", "b", "c"])
    first = queue.receive(max_messages=10, max_seconds=5)
    assert queue.receive_batch(BATCH, wait_seconds=0) == []  # invisible while in flight

    assert queue.release(first) == []  # as if the visibility timeout had passed
    again = queue.receive(max_messages=10, max_seconds=5)
    assert sorted(m.body for m in again) == ["a", "b", "c"]
    assert {m.message_id for m in again} == {m.message_id for m in first}
    assert all(m.receive_count == 2 for m in again)
    assert {m.receipt for m in again}.isdisjoint({m.receipt for m in first})
    assert queue.delete(again) == []
    assert queue.depth() == Depth(0, 0, 0)


def test_visibility_timeout_expires_and_redelivers(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_visibility_timeout=1)
    queue.send(["slow"])
    [first] = queue.receive(max_messages=1, max_seconds=5)
    time.sleep(1.2)
    [again] = queue.receive(max_messages=1, max_seconds=5)
    assert again.message_id == first.message_id and again.receive_count == 2


def test_hold_keeps_a_slow_batch_invisible(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_visibility_timeout=1)
    queue.send(["slow"])
    held = queue.receive(max_messages=1, max_seconds=5)
    with queue.hold(held):
        time.sleep(1.6)  # longer than the visibility timeout: only renewal keeps it hidden
        assert queue.receive_batch(BATCH, wait_seconds=0) == []
    assert queue.delete(held) == []
    assert queue.depth() == Depth(0, 0, 0)


def test_hold_renews_at_once_after_a_long_receive(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_visibility_timeout=2)
    queue.send(["slow"])
    held = queue.receive(max_messages=1, max_seconds=5)
    time.sleep(1.5)  # the rest of a long receive loop, before the batch starts
    with queue.hold(held):
        time.sleep(0.9)  # past the first receive's timeout, before the first periodic renewal
        assert queue.receive_batch(BATCH, wait_seconds=0) == []
    assert queue.delete(held) == []


def test_receive_goes_on_after_short_answers(home: Path) -> None:
    """SQS often answers with fewer messages than asked while more are queued: only nothing ends a receive."""

    class Stingy(SqliteQueue):
        def receive_batch(self, count: int, wait_seconds: int) -> list[Message]:
            return super().receive_batch(min(count, 3), wait_seconds)

    queue = Stingy(load_settings(queue_wait_seconds=0))
    queue.send([f"m{i}" for i in range(25)])
    assert sorted(m.body for m in queue.receive(max_messages=100, max_seconds=10)) == sorted(
        f"m{i}" for i in range(25)
    )


def test_dead_letter_after_max_receives(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_max_receives=2)
    queue.send(["poison", "fine"])
    for attempt in (1, 2):
        got = queue.receive(max_messages=10, max_seconds=5)
        assert sorted(m.body for m in got) == ["fine", "poison"]
        assert {m.receive_count for m in got} == {attempt}
        if attempt == 2:
            assert queue.delete([m for m in got if m.body == "fine"]) == []
        queue.release([m for m in got if attempt == 1 or m.body == "poison"])

    assert queue.receive(max_messages=10, max_seconds=2) == []  # moved on this receive, not delivered
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=1)

    dead = make_queue(queue_name=queue.dlq_name).receive(max_messages=10, max_seconds=5)
    assert [m.body for m in dead] == ["poison"]


def dead_letter(queue: FeedQueue, bodies: list[str]) -> list[str]:
    """Send ``bodies`` to a queue with ``max_receives`` 1 and let them expire into its dead-letter queue;
    returns their message ids."""
    ids = queue.send(bodies)
    queue.release(queue.receive(max_messages=100, max_seconds=5))
    assert queue.receive(max_messages=100, max_seconds=2) == []  # moved to the DLQ on this receive
    assert queue.depth() == Depth(visible=0, in_flight=0, dead=len(bodies))
    return ids


def test_redrive_moves_dead_letters_back_with_their_identity(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_max_receives=1)
    bodies = [f'{{"n": {i}}}' for i in range(13)]
    ids = dead_letter(queue, bodies)

    assert queue.redrive(max_messages=4) == 4
    assert queue.depth() == Depth(visible=4, in_flight=0, dead=9)
    assert queue.redrive() == 9
    assert queue.redrive() == 0
    assert queue.depth() == Depth(visible=13, in_flight=0, dead=0)

    back = queue.receive(max_messages=100, max_seconds=5)
    assert all(m.receive_count == 1 for m in back)  # a fresh set of deliveries
    # Envelopes without a message_id carry the original id: feed-poll's identity for the message.
    identities = [json.loads(m.body) for m in back]
    assert sorted(b["n"] for b in identities) == list(range(13))
    by_n = dict(zip((json.loads(b)["n"] for b in bodies), ids, strict=True))
    assert all(
        b.get("message_id", m.message_id) == by_n[b["n"]] for b, m in zip(identities, back, strict=True)
    )
    assert queue.delete(back) == []
    assert queue.depth() == Depth(0, 0, 0)


def test_redrive_keeps_bodies_that_are_not_envelopes_or_carry_an_id(make_queue: MakeQueue) -> None:
    queue = make_queue(queue_max_receives=1)
    bodies = ["{oops", '{"message_id": "m-7", "n": 7}', "[1, 2]"]
    dead_letter(queue, bodies)
    assert queue.redrive() == 3
    assert sorted(m.body for m in queue.receive(max_messages=10, max_seconds=5)) == sorted(bodies)


def test_batches_of_ten_and_the_request_size_limit() -> None:
    assert [len(g) for g in send_chunks(["x"] * 25)] == [10, 10, 5]
    big = "y" * 100_000
    assert [len(g) for g in send_chunks([big, big, big, "z"])] == [2, 2]


def test_local_queue_drains_10000_messages_in_1000_receives_and_1000_deletes(home: Path) -> None:
    """The batching is the backends' shared code; counted here on the local queue at full scale."""
    calls: Counter[str] = Counter()

    class Counted(SqliteQueue):
        def receive_batch(self, count: int, wait_seconds: int) -> list[Message]:
            calls["receive"] += 1
            return super().receive_batch(count, wait_seconds)

        def delete_batch(self, receipts: Sequence[str]) -> list[str]:
            calls["delete"] += 1
            return super().delete_batch(receipts)

    queue = Counted(load_settings(queue_wait_seconds=0))
    queue.send([f"m{i}" for i in range(10_000)])
    drained = 0
    while batch := queue.receive(max_messages=100, max_seconds=30):  # feed-poll's default batch
        assert queue.delete(batch) == []
        drained += len(batch)
    assert drained == 10_000
    assert calls == {"receive": 1000 + 4, "delete": 1000}  # + the last round that found nothing
    assert queue.depth() == Depth(0, 0, 0)
