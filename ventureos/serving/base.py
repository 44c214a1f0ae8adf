"""One small key-value interface with the DynamoDB access patterns, for both shapes.

Every table has a string partition key ``PK`` and sort key ``SK``. Items are plain dicts; the wire
form is DynamoDB's typed JSON in both backends (SQLite stores it as text), so numbers come back as
``int`` or ``Decimal`` and the two backends return identical items.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ventureos.registry import Registry
from ventureos.settings import Settings

ENTITIES, LIVE_FEED, PROJECTS = "Entities", "Violations", "Projects"
TABLES = (ENTITIES, LIVE_FEED, PROJECTS)

Item = dict[str, Any]
Key = tuple[str, str]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class MissingServingTable(LookupError):
    """A serving table that does not exist yet (``ventureos serving init`` creates them)."""


def _plain_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items() if v is not None}
    return value


def item_key(item: Item) -> Key:
    pk, sk = item.get("PK"), item.get("SK")
    if not isinstance(pk, str) or not isinstance(sk, str) or not pk or not sk:
        raise ValueError(f"serving item needs string PK and SK: {item!r}")
    return pk, sk


def to_wire(item: Item) -> dict[str, Any]:
    """DynamoDB typed attributes; ``None`` attributes are left out, floats become exact decimals."""
    item_key(item)
    return {k: _SERIALIZER.serialize(_plain_value(v)) for k, v in item.items() if v is not None}


def wire_value(value: Any) -> dict[str, Any]:
    """One value in DynamoDB's typed form (for condition expressions)."""
    return _SERIALIZER.serialize(_plain_value(value))


def _number(text: str) -> int | Decimal:
    """A DynamoDB number: ``int`` when whole, else an exact ``Decimal``."""
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)  # most numbers (counts, years, whole dollars): no Decimal needed
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else value


def _from_typed(value: dict[str, Any]) -> Any:
    # The common types by hand (the entity answers' nested series and lists are most of an API
    # request's time with boto3's generic deserializer); sets and binary through boto3's.
    ((tag, inner),) = value.items()
    if tag == "S" or tag == "BOOL":
        return inner
    if tag == "N":
        return _number(inner)
    if tag == "M":
        return {k: _from_typed(v) for k, v in inner.items()}
    if tag == "L":
        return [_from_typed(v) for v in inner]
    if tag == "NULL":
        return None
    return _DESERIALIZER.deserialize(value)


def from_wire(attributes: dict[str, Any]) -> Item:
    """Plain values of DynamoDB typed attributes: whole numbers as ``int``, others as ``Decimal``."""
    return {k: _from_typed(v) for k, v in attributes.items()}


def unique_by_key(items: Iterable[Item]) -> list[Item]:
    """Last item per (PK, SK): one batch may not hold two writes of one key."""
    return list({item_key(i): i for i in items}.values())


class ServingStore(ABC):
    """Tables ``{prefix}-Entities``, ``{prefix}-Violations``, ``{prefix}-Projects``: the extension point
    for a serving backend, which registers ``factory(settings) -> ServingStore`` with
    ``@SERVING_BACKENDS.register(name)`` (plus its module in ``SERVING_BACKENDS``); then add it to the
    parameters of the contract tests (tests/test_serving_contract.py).

    Writes are batched and return how many items they wrote, so callers can report (and tests can
    assert) that a no-op run writes nothing.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def table_name(self, table: str) -> str:
        if table not in TABLES:
            raise ValueError(f"unknown serving table {table!r}; expected one of {', '.join(TABLES)}")
        return f"{self.prefix}-{table}"

    @abstractmethod
    def create_tables(self) -> list[str]:
        """Create the missing tables (idempotent); returns the names it created."""

    @abstractmethod
    def put_items(self, table: str, items: Sequence[Item]) -> int:
        """Insert or replace items in batches; returns the number of items written."""

    @abstractmethod
    def delete_items(self, table: str, keys: Sequence[Key]) -> int:
        """Delete by (PK, SK) in batches (absent keys are fine); returns the number of keys sent."""

    @abstractmethod
    def get_item(self, table: str, pk: str, sk: str) -> Item | None: ...

    @abstractmethod
    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        """Items of one partition whose SK starts with ``sk_prefix``, ascending by SK."""

    @abstractmethod
    def scan(self, table: str) -> list[Item]:
        """Every item of a table (small tables, tests and tooling only)."""

    def change_token(self) -> object | None:
        """A value that differs after any committed write to the tables, by any process, or None when
        the backend cannot tell cheaply (the default; DynamoDB). A reader may keep what it derived from
        items for as long as the token stays the same (the API's entity answers)."""
        return None

    @abstractmethod
    def put_if_newer(self, table: str, item: Item, attribute: str) -> bool:
        """Conditional put: only when the item is absent or its ``attribute`` is smaller than the new one.

        Concurrent writers then never move a value (e.g. a sync watermark) backwards.
        """

    @abstractmethod
    def put_if_absent_or_expired(self, table: str, item: Item, expires_attribute: str, now: Any) -> bool:
        """Conditional put: only when the item is absent or its ``expires_attribute`` is below ``now``.

        A lease: of concurrent writers at most one wins until the lease expires, so a worker that dies
        holding it blocks others only until then. An existing item without the attribute never expires.
        ``now`` and the attribute are compared as stored (use epoch seconds or ISO-8601 UTC strings).
        """


SERVING_BACKENDS = Registry[ServingStore](
    "serving backend", {"sqlite": "ventureos.serving.sqlite", "dynamodb": "ventureos.serving.dynamodb"}
)
"""Serving stores by ``VENTUREOS_SERVING_BACKEND``; a backend registers ``factory(settings) -> ServingStore``."""


def open_store(settings: Settings) -> ServingStore:
    """The serving store of ``settings.serving_backend``."""
    return SERVING_BACKENDS.create(settings.serving_backend, settings)
