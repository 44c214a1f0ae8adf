"""The AWS serving store: DynamoDB tables (on-demand), batch writes with resends and backoff.

Throttling and 5xx answers are retried with exponential backoff and full jitter (tenacity, on top of
botocore's own few retries); ``UnprocessedItems`` of a batch write are resent the same way until the
batch is done or the attempts run out, which fails loudly instead of losing writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ventureos.serving.base import (
    SERVING_BACKENDS,
    TABLES,
    Item,
    Key,
    ServingStore,
    from_wire,
    to_wire,
    unique_by_key,
    wire_value,
)
from ventureos.settings import Settings
from ventureos.transient import is_transient

BATCH = 25
"""DynamoDB's limit of write requests per BatchWriteItem."""
ATTEMPTS = 8


class UnprocessedItemsError(RuntimeError):
    """DynamoDB left part of a batch unprocessed (capacity); resent with backoff."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UnprocessedItemsError) or is_transient(exc)


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception(_retryable),
        wait=wait_random_exponential(multiplier=0.05, max=5),
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
    )


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class DynamoDBStore(ServingStore):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(prefix)
        self.client = client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in _retrying():
            with attempt:
                return getattr(self.client, operation)(**kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def create_tables(self) -> list[str]:
        created = []
        for table in TABLES:
            name = self.table_name(table)
            try:
                self._call("describe_table", TableName=name)
                continue
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
            try:
                self._call(
                    "create_table",
                    TableName=name,
                    KeySchema=[
                        {"AttributeName": "PK", "KeyType": "HASH"},
                        {"AttributeName": "SK", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "PK", "AttributeType": "S"},
                        {"AttributeName": "SK", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
                created.append(name)
            except ClientError as exc:  # created concurrently by another run
                if exc.response["Error"]["Code"] != "ResourceInUseException":
                    raise
        for name in created:
            self.client.get_waiter("table_exists").wait(TableName=name)
        return created

    def _batch_write(self, table: str, requests: list[dict[str, Any]]) -> None:
        name = self.table_name(table)
        for chunk in _chunks(requests, BATCH):
            pending = list(chunk)
            for attempt in _retrying():
                with attempt:
                    response = self.client.batch_write_item(RequestItems={name: pending})
                    pending = response.get("UnprocessedItems", {}).get(name, [])
                    if pending:
                        raise UnprocessedItemsError(f"{len(pending)} unprocessed writes to {name}")

    def put_items(self, table: str, items: Sequence[Item]) -> int:
        unique = unique_by_key(items)
        self._batch_write(table, [{"PutRequest": {"Item": to_wire(i)}} for i in unique])
        return len(unique)

    def delete_items(self, table: str, keys: Sequence[Key]) -> int:
        unique = list(dict.fromkeys(keys))
        self._batch_write(
            table, [{"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}} for pk, sk in unique]
        )
        return len(unique)

    def get_item(self, table: str, pk: str, sk: str) -> Item | None:
        response = self._call(
            "get_item",
            TableName=self.table_name(table),
            Key={"PK": {"S": pk}, "SK": {"S": sk}},
            ConsistentRead=True,
        )
        return from_wire(response["Item"]) if "Item" in response else None

    def _pages(self, operation: str, **kwargs: Any) -> list[Item]:
        items: list[Item] = []
        while True:
            response = self._call(operation, **kwargs)
            items.extend(from_wire(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        condition, values = "PK = :pk", {":pk": {"S": pk}}
        if sk_prefix:
            condition += " AND begins_with(SK, :sk)"
            values[":sk"] = {"S": sk_prefix}
        return self._pages(
            "query",
            TableName=self.table_name(table),
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )

    def scan(self, table: str) -> list[Item]:
        items = self._pages("scan", TableName=self.table_name(table), ConsistentRead=True)
        return sorted(items, key=lambda i: (i["PK"], i["SK"]))

    def put_if_newer(self, table: str, item: Item, attribute: str) -> bool:
        try:
            self._call(
                "put_item",
                TableName=self.table_name(table),
                Item=to_wire(item),
                ConditionExpression="attribute_not_exists(PK) OR #a < :v",
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues={":v": to_wire(item)[attribute]},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_if_absent_or_expired(self, table: str, item: Item, expires_attribute: str, now: Any) -> bool:
        try:
            self._call(
                "put_item",
                TableName=self.table_name(table),
                Item=to_wire(item),
                ConditionExpression="attribute_not_exists(PK) OR #e < :now",
                ExpressionAttributeNames={"#e": expires_attribute},
                ExpressionAttributeValues={":now": wire_value(now)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


@SERVING_BACKENDS.register("dynamodb")
def _from_settings(settings: Settings) -> ServingStore:
    config = Config(retries={"mode": "standard", "max_attempts": 3})
    return DynamoDBStore(
        boto3.client("dynamodb", config=config, **settings.boto3_kwargs()), settings.serving_prefix
    )
