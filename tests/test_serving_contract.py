"""One contract for both serving backends: SQLite (embedded) and DynamoDB over HTTP on a moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from ventureos.serving import ENTITIES, LIVE_FEED, PROJECTS, TABLES, ServingStore, open_store
from ventureos.serving.dynamodb import DynamoDBStore
from ventureos.serving.projects import load_projects
from ventureos.settings import load_settings


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.aws)])
def store(request: pytest.FixtureRequest, home: Path) -> ServingStore:
    if request.param == "dynamodb":
        request.getfixturevalue("aws_home")
    store = open_store(load_settings())
    assert type(store).__name__ == {"sqlite": "SqliteStore", "dynamodb": "DynamoDBStore"}[request.param]
    assert store.create_tables() == [store.table_name(t) for t in TABLES]
    return store


def test_create_tables_is_idempotent_and_prefixed(store: ServingStore) -> None:
    assert store.create_tables() == []
    assert store.table_name(ENTITIES) == f"{store.prefix}-Entities"
    with pytest.raises(ValueError, match="unknown serving table"):
        store.table_name("Nope")


def test_items_round_trip_with_exact_numbers(store: ServingStore) -> None:
    item = {
        "PK": "COMPANY#walmart",
        "SK": "STATS#all",
        "violations": 3,
        "penalties": Decimal("12345.67"),
        "score": 0.85,
        "issues": ["missing_coordinates"],
        "name": "Walmart Inc.",
        "last_violation_date": None,
    }
    assert store.put_items(ENTITIES, [item]) == 1
    got = store.get_item(ENTITIES, "COMPANY#walmart", "STATS#all")
    assert got == {
        "PK": "COMPANY#walmart",
        "SK": "STATS#all",
        "violations": 3,
        "penalties": Decimal("12345.67"),
        "score": Decimal("0.85"),
        "issues": ["missing_coordinates"],
        "name": "Walmart Inc.",
    }
    assert type(got["violations"]) is int
    assert store.get_item(ENTITIES, "COMPANY#walmart", "STATS#osha") is None
    with pytest.raises(ValueError, match="string PK and SK"):
        store.put_items(ENTITIES, [{"PK": "COMPANY#x"}])


def test_batches_beyond_25_dedupe_query_order_and_delete(store: ServingStore) -> None:
    feed = [
        {"PK": "STATE#tx", "SK": f"AGENCY#osha#DATE#2015-01-{d:02d}#osha:severe_injury:{d}", "n": d}
        for d in range(30, 0, -1)
    ]
    feed.append({"PK": "STATE#tx", "SK": "AGENCY#faa#DATE#2015-02-01#faa:actions:1", "n": 99})
    feed.append({"PK": "STATE#ny", "SK": "AGENCY#osha#DATE#2015-02-01#osha:severe_injury:7", "n": 7})
    # The same key twice in one batch: the last write wins, counted once.
    feed.append({**feed[0], "n": 31})
    assert store.put_items(LIVE_FEED, feed) == 32

    osha = store.query(LIVE_FEED, "STATE#tx", "AGENCY#osha#")
    assert [i["n"] for i in osha] == [*range(1, 30), 31]
    assert [i["SK"] for i in osha] == sorted(i["SK"] for i in osha)
    assert len(store.query(LIVE_FEED, "STATE#tx")) == 31
    assert store.query(LIVE_FEED, "STATE#ca") == []

    doomed = [(i["PK"], i["SK"]) for i in osha[:27]]
    assert store.delete_items(LIVE_FEED, [*doomed, doomed[0], ("STATE#tx", "AGENCY#osha#DATE#absent")]) == 28
    assert [i["n"] for i in store.query(LIVE_FEED, "STATE#tx", "AGENCY#osha#")] == [28, 29, 31]
    assert len(store.scan(LIVE_FEED)) == 5
    assert store.put_items(LIVE_FEED, []) == 0 and store.delete_items(LIVE_FEED, []) == 0


def test_put_if_newer_never_moves_backwards(store: ServingStore) -> None:
    key = {"PK": "SYNC#gold", "SK": "WATERMARK"}
    assert store.put_if_newer(ENTITIES, {**key, "watermark": "2024-01-02T00:00:00+00:00"}, "watermark")
    assert not store.put_if_newer(ENTITIES, {**key, "watermark": "2024-01-01T00:00:00+00:00"}, "watermark")
    assert not store.put_if_newer(ENTITIES, {**key, "watermark": "2024-01-02T00:00:00+00:00"}, "watermark")
    assert store.put_if_newer(ENTITIES, {**key, "watermark": "2024-01-03T00:00:00+00:00"}, "watermark")
    assert store.get_item(ENTITIES, "SYNC#gold", "WATERMARK")["watermark"] == "2024-01-03T00:00:00+00:00"


def test_put_if_absent_or_expired_is_a_lease(store: ServingStore) -> None:
    key = {"PK": "VIOLATION#osha:enforcement:1-01001", "SK": "SUMMARY"}
    assert store.put_if_absent_or_expired(
        ENTITIES, {**key, "owner": "a", "pending_until": 100}, "pending_until", 50
    )
    # Held until it expires: a second writer loses at and before the expiry.
    assert not store.put_if_absent_or_expired(
        ENTITIES, {**key, "owner": "b", "pending_until": 200}, "pending_until", 60
    )
    assert not store.put_if_absent_or_expired(
        ENTITIES, {**key, "owner": "b", "pending_until": 200}, "pending_until", 100
    )
    assert store.get_item(ENTITIES, *key.values())["owner"] == "a"
    # Expired: the next writer takes it over.
    assert store.put_if_absent_or_expired(
        ENTITIES, {**key, "owner": "c", "pending_until": 300}, "pending_until", 101
    )
    assert store.get_item(ENTITIES, *key.values())["owner"] == "c"
    # An item without the attribute (a finished result) never expires.
    store.put_items(ENTITIES, [{**key, "owner": "done"}])
    assert not store.put_if_absent_or_expired(
        ENTITIES, {**key, "owner": "d", "pending_until": 9}, "pending_until", 10**9
    )
    assert store.get_item(ENTITIES, *key.values()) == {**key, "owner": "done"}


def test_change_token_moves_with_every_write_from_anywhere(store: ServingStore) -> None:
    token = store.change_token()
    if isinstance(store, DynamoDBStore):
        assert token is None  # DynamoDB cannot tell cheaply: readers read again
        return
    assert token is not None and store.change_token() == token  # reading changes nothing
    store.get_item(ENTITIES, "COMPANY#acme", "METADATA")
    assert store.change_token() == token
    store.put_items(ENTITIES, [{"PK": "COMPANY#acme", "SK": "METADATA", "name": "Acme"}])
    moved = store.change_token()
    assert moved != token
    # A write by another process (gold-sync, feed-poll) moves it too.
    code = (
        "from ventureos.serving import ENTITIES, open_store; from ventureos.settings import load_settings;"
        "open_store(load_settings()).delete_items(ENTITIES, [('COMPANY#acme', 'METADATA')])"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    assert store.change_token() != moved


def test_tables_are_separate(store: ServingStore) -> None:
    store.put_items(PROJECTS, [{"PK": "BRAND#oshatrail", "SK": "CONFIG", "name": "OSHA Trail"}])
    assert store.scan(ENTITIES) == [] and store.scan(LIVE_FEED) == []
    assert store.query(PROJECTS, "BRAND#oshatrail")[0]["name"] == "OSHA Trail"


def test_projects_load_from_the_repo_files(store: ServingStore, tmp_path: Path) -> None:
    assert load_projects(store) == ["BRAND#oshatrail", "BRAND#transporttrail"]
    osha = store.get_item(PROJECTS, "BRAND#oshatrail", "CONFIG")
    assert osha["name"] == "OSHA Trail" and osha["agencies"] == ["osha"]
    assert osha["theme"]["primary"] == "#B3261E"
    assert store.get_item(PROJECTS, "BRAND#transporttrail", "CONFIG")["agencies"] == ["faa"]
    # A bad file fails the whole load before anything is written.
    (tmp_path / "a.json").write_text('{"id": "a", "name": "A", "agencies": ["epa"]}')
    (tmp_path / "b.json").write_text('{"id": "other", "name": "B", "agencies": ["epa"]}')
    with pytest.raises(ValueError, match="does not match the file name"):
        load_projects(store, tmp_path)
    assert store.get_item(PROJECTS, "BRAND#a", "CONFIG") is None


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


@pytest.mark.aws
def test_dynamodb_resends_unprocessed_items_and_backs_off_on_throttling(home: Path, aws_home: str) -> None:
    """Real HTTP to moto; the server's capacity answers are injected with botocore's event hooks."""
    settings = load_settings()
    client = boto3.client("dynamodb", config=Config(retries={"max_attempts": 1}), **settings.boto3_kwargs())
    store = DynamoDBStore(client, settings.serving_prefix)
    store.create_tables()
    calls = {"sent": 0, "throttled": 0}
    held: list[dict[str, Any]] = []

    def hold_back_five(params: dict[str, Any], **_: Any) -> None:
        if calls["sent"] == 0:
            ((name, requests),) = params["RequestItems"].items()
            held.extend(requests[-5:])
            params["RequestItems"][name] = requests[:-5]
        calls["sent"] += 1

    def report_unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        if held and calls["sent"] == 1:
            parsed["UnprocessedItems"] = {store.table_name(ENTITIES): list(held)}

    def throttle_twice(request: Any, **_: Any) -> AWSResponse | None:
        if calls["sent"] == 2 and calls["throttled"] < 2:
            calls["throttled"] += 1
            body = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}
            return AWSResponse(request.url, 400, {}, _Body(json.dumps(body).encode()))
        return None

    events = client.meta.events
    events.register("provide-client-params.dynamodb.BatchWriteItem", hold_back_five)
    events.register("after-call.dynamodb.BatchWriteItem", report_unprocessed)
    events.register("before-send.dynamodb.BatchWriteItem", throttle_twice)

    items = [{"PK": f"COMPANY#c{n:02d}", "SK": "STATS#all", "violations": n} for n in range(20)]
    assert store.put_items(ENTITIES, items) == 20
    assert calls["throttled"] == 2
    assert len(held) == 5
    assert sorted(i["violations"] for i in store.scan(ENTITIES)) == list(range(20))
