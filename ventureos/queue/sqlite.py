"""The embedded shape's feed queue: SQS semantics on one SQLite file (``$VENTUREOS_HOME/queue.db``).

Each queue is a set of rows keyed by queue name; the dead-letter queue is the queue ``{name}-dlq``.
Receives run in ``BEGIN IMMEDIATE`` transactions, so concurrent consumers never get the same
delivery; a receive hands out a fresh receipt, and only the latest receipt deletes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ventureos.queue.base import BATCH, QUEUE_BACKENDS, Depth, FeedQueue, Message
from ventureos.settings import Settings

SCHEMA = """
create table if not exists messages (
    seq integer primary key autoincrement,
    queue text not null,
    message_id text not null unique,
    body text not null,
    sent_at real not null,
    visible_at real not null,
    receive_count integer not null default 0,
    receipt text unique
);
create index if not exists messages_visible on messages (queue, visible_at, seq);
"""
POLL_INTERVAL = 0.1


@QUEUE_BACKENDS.register("sqlite")
class SqliteQueue(FeedQueue):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = settings.queue_db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection for the queue's lifetime: closing the last one checkpoints the WAL (an fsync).
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        # WAL + synchronous=normal: a commit survives a crash of the process (not of the machine).
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. This process's threads share the connection and take turns on a
        lock; other processes wait in SQLite's busy handler."""
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def send(self, bodies: Sequence[str]) -> list[str]:
        """All in one transaction: a local queue has no per-call size limit."""
        return self.send_batch(bodies)

    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        now = time.time()
        ids = [str(uuid.uuid4()) for _ in bodies]
        with self._transaction() as db:
            db.executemany(
                "insert into messages (queue, message_id, body, sent_at, visible_at) values (?, ?, ?, ?, ?)",
                [(self.name, mid, body, now, now) for mid, body in zip(ids, bodies, strict=True)],
            )
        return ids

    def _receive_once(self, count: int) -> list[Message]:
        """Deliver the oldest visible messages; like SQS's redrive, one already received
        ``max_receives`` times goes to the dead-letter queue instead (index range scans only)."""
        now = time.time()
        rows: list[tuple] = []
        with self._transaction() as db:
            while len(rows) < min(count, BATCH):
                candidates = db.execute(
                    "select seq, receive_count >= ? from messages where queue = ? and visible_at <= ?"
                    " order by visible_at, seq limit ?",
                    (self.max_receives, self.name, now, min(count, BATCH) - len(rows)),
                ).fetchall()
                if not candidates:
                    break
                dead = [(self.dlq_name, now, seq) for seq, is_dead in candidates if is_dead]
                db.executemany(
                    "update messages set queue = ?, visible_at = ?, receipt = null where seq = ?", dead
                )
                live = [seq for seq, is_dead in candidates if not is_dead]
                rows += db.execute(
                    "update messages set receive_count = receive_count + 1, visible_at = ?,"
                    f" receipt = lower(hex(randomblob(16))) where seq in ({', '.join('?' * len(live))})"
                    " returning seq, message_id, receipt, body, receive_count",
                    (now + self.visibility_timeout, *live),
                ).fetchall()
        return [Message(mid, receipt, body, n) for _, mid, receipt, body, n in sorted(rows)]

    def receive_batch(self, count: int, wait_seconds: int) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        while not (messages := self._receive_once(count)) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        return messages

    def _by_receipt(self, sql: str, params: tuple, receipts: Sequence[str]) -> list[str]:
        """Run ``sql`` (an update/delete ending in ``receipt in (...)``) and return unmatched receipts."""
        marks = ", ".join("?" * len(receipts))
        with self._transaction() as db:
            done = {r for (r,) in db.execute(f"{sql} ({marks}) returning receipt", (*params, *receipts))}
        return [r for r in receipts if r not in done]

    def delete_batch(self, receipts: Sequence[str]) -> list[str]:
        return self._by_receipt("delete from messages where queue = ? and receipt in", (self.name,), receipts)

    def change_visibility_batch(self, receipts: Sequence[str], seconds: int) -> list[str]:
        return self._by_receipt(
            "update messages set visible_at = ? where queue = ? and receipt in",
            (time.time() + seconds, self.name),
            receipts,
        )

    def redrive_batch(self, count: int) -> int:
        """One transaction: the oldest dead-lettered messages become new deliveries, ids unchanged."""
        with self._transaction() as db:
            moved = db.execute(
                "update messages set queue = ?, visible_at = ?, receive_count = 0, receipt = null"
                " where seq in (select seq from messages where queue = ? order by seq limit ?) returning seq",
                (self.name, time.time(), self.dlq_name, min(count, BATCH)),
            ).fetchall()
        return len(moved)

    def depth(self) -> Depth:
        now = time.time()
        with self._lock:
            visible, in_flight, dead = self._db.execute(
                "select coalesce(sum(queue = ? and visible_at <= ?), 0),"
                " coalesce(sum(queue = ? and visible_at > ?), 0), coalesce(sum(queue = ?), 0)"
                " from messages where queue in (?, ?)",
                (self.name, now, self.name, now, self.dlq_name, self.name, self.dlq_name),
            ).fetchone()
        return Depth(visible=visible, in_flight=in_flight, dead=dead)
