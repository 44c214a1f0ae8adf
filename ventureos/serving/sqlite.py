"""The embedded serving store: one SQLite file, one table per serving table, same keys as DynamoDB."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ventureos.serving.base import (
    SERVING_BACKENDS,
    TABLES,
    Item,
    Key,
    MissingServingTable,
    ServingStore,
    from_wire,
    to_wire,
    unique_by_key,
)
from ventureos.settings import Settings


class SqliteStore(ServingStore):
    def __init__(self, path: Path, prefix: str) -> None:
        super().__init__(prefix)
        self.path = path
        self._readers = threading.local()
        self._watcher: tuple[int, sqlite3.Connection] | None = None
        self._watcher_lock = threading.Lock()

    def _open(self, shared: bool = False) -> sqlite3.Connection:
        """A new connection; ``shared``: usable from any thread (the caller serializes its use)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=not shared)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection per write: safe across Prefect's task threads and processes."""
        conn = self._open()
        try:
            with self._tables_named():
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for reads, kept open (an API process reads per request; opening a
        connection costs more than the query). Autocommit: each read sees the latest commit."""
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None or self._readers.pid != os.getpid():
            conn = self._readers.conn = self._open()
            self._readers.pid = os.getpid()
        with self._tables_named():
            yield conn

    def change_token(self) -> object | None:
        # SQLite's data_version changes whenever another connection commits (in any process). Its
        # values are per connection, so one connection that never writes answers for every thread.
        with self._watcher_lock:
            if self._watcher is None or self._watcher[0] != os.getpid():
                self._watcher = (os.getpid(), self._open(shared=True))
            return self._watcher[1].execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def _tables_named(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise MissingServingTable(
                    f"{exc} in {self.path}: create it with `ventureos serving init`"
                ) from None
            raise

    def _name(self, table: str) -> str:
        return '"' + self.table_name(table).replace('"', '""') + '"'

    def create_tables(self) -> list[str]:
        created = []
        with self._connect() as conn:
            existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in TABLES:
                if self.table_name(table) in existing:
                    continue
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._name(table)} "
                    "(pk TEXT NOT NULL, sk TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID"
                )
                created.append(self.table_name(table))
        return created

    def put_items(self, table: str, items: Sequence[Item]) -> int:
        rows = [(i["PK"], i["SK"], json.dumps(to_wire(i))) for i in unique_by_key(items)]
        if rows:
            with self._connect() as conn, conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(f"INSERT OR REPLACE INTO {self._name(table)} VALUES (?, ?, ?)", rows)
        return len(rows)

    def delete_items(self, table: str, keys: Sequence[Key]) -> int:
        unique = list(dict.fromkeys(keys))
        if unique:
            with self._connect() as conn, conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(f"DELETE FROM {self._name(table)} WHERE pk = ? AND sk = ?", unique)
        return len(unique)

    def get_item(self, table: str, pk: str, sk: str) -> Item | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT item FROM {self._name(table)} WHERE pk = ? AND sk = ?", (pk, sk)
            ).fetchone()
        return from_wire(json.loads(row[0])) if row else None

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        # BINARY collation compares UTF-8 bytes, the order DynamoDB sorts string keys in.
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT item FROM {self._name(table)} WHERE pk = ? AND substr(sk, 1, ?) = ? ORDER BY sk",
                (pk, len(sk_prefix), sk_prefix),
            ).fetchall()
        return [from_wire(json.loads(r[0])) for r in rows]

    def scan(self, table: str) -> list[Item]:
        with self._reader() as conn:
            rows = conn.execute(f"SELECT item FROM {self._name(table)} ORDER BY pk, sk").fetchall()
        return [from_wire(json.loads(r[0])) for r in rows]

    def put_if_newer(self, table: str, item: Item, attribute: str) -> bool:
        def newer(stored: Item) -> bool:
            current = stored.get(attribute)
            return current is None or current < item[attribute]

        return self._put_if(table, item, newer)

    def put_if_absent_or_expired(self, table: str, item: Item, expires_attribute: str, now: Any) -> bool:
        def expired(stored: Item) -> bool:
            expires = stored.get(expires_attribute)
            return expires is not None and expires < now

        return self._put_if(table, item, expired)

    def _put_if(self, table: str, item: Item, replaces: Callable[[Item], bool]) -> bool:
        """Put ``item`` when its key is absent or ``replaces(stored item)``, inside one write lock
        (``BEGIN IMMEDIATE``): DynamoDB's condition expression, in SQLite."""
        wire = to_wire(item)
        with self._connect() as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                f"SELECT item FROM {self._name(table)} WHERE pk = ? AND sk = ?", (item["PK"], item["SK"])
            ).fetchone()
            if row is not None and not replaces(from_wire(json.loads(row[0]))):
                return False
            conn.execute(
                f"INSERT OR REPLACE INTO {self._name(table)} VALUES (?, ?, ?)",
                (item["PK"], item["SK"], json.dumps(wire)),
            )
        return True


@SERVING_BACKENDS.register("sqlite")
def _from_settings(settings: Settings) -> ServingStore:
    return SqliteStore(settings.serving_db, settings.serving_prefix)
