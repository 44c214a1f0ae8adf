"""The AWS shape's feed queue: an SQS standard queue with a redrive policy to ``{name}-dlq``.

Both queues are created on first use when they do not exist (infrastructure code may create them
first; an existing queue's own redrive policy is then what counts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from ventureos.queue.base import BATCH, QUEUE_BACKENDS, Depth, FeedQueue, Message, QueueError
from ventureos.settings import Settings

log = logging.getLogger(__name__)
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
REDRIVE_VISIBILITY_SECONDS = 60
"""How long a message being moved stays hidden in the dead-letter queue: a move that dies halfway
leaves it to come back there, to be moved by the next redrive."""


def with_identity(body: str, message_id: str) -> str:
    """The body of a message sent anew: an envelope without ``message_id`` gets the id SQS gave the
    original (its identity, as feed-poll defaults it), so the copy's quarantine rows de-duplicate with
    the original's. Other bodies go as they are."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return body
    if not isinstance(payload, dict) or payload.get("message_id") not in (None, ""):
        return body
    return json.dumps({**payload, "message_id": message_id}, ensure_ascii=False, separators=(",", ":"))


@QUEUE_BACKENDS.register("sqs")
class SqsQueue(FeedQueue):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Long polls hold a connection open: the read timeout must outlast the wait.
        config = Config(
            max_pool_connections=max(10, 2 * self.concurrency),
            read_timeout=self.wait_seconds + 30,
            retries={"mode": "standard"},
        )
        self.client: Any = boto3.client("sqs", config=config, **settings.boto3_kwargs())

    def _url(self, name: str) -> str | None:
        try:
            return self.client.get_queue_url(QueueName=name)["QueueUrl"]
        except self.client.exceptions.QueueDoesNotExist:
            return None

    @cached_property
    def url(self) -> str:
        """The queue's URL, creating it (and its dead-letter queue) when missing."""
        if url := self._url(self.name):
            return url
        dlq = self.client.create_queue(
            QueueName=self.dlq_name, Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
        )["QueueUrl"]
        dlq_arn = self.client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receives)}
        return self.client.create_queue(
            QueueName=self.name,
            Attributes={
                "VisibilityTimeout": str(self.visibility_timeout),
                "ReceiveMessageWaitTimeSeconds": str(self.wait_seconds),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]

    @cached_property
    def dlq_url(self) -> str | None:
        """The dead-letter queue named by the queue's redrive policy (None without one)."""
        attributes = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        return self._url(json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[1]) if policy else None

    @staticmethod
    def _failed(response: dict[str, Any], ids: dict[str, str]) -> list[tuple[str, str]]:
        return [(ids[f["Id"]], f"{f['Code']}: {f.get('Message', '')}") for f in response.get("Failed", [])]

    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
        failed = self._failed(response, {e["Id"]: e["MessageBody"][:80] for e in entries})
        if failed:
            raise QueueError("; ".join(f"{reason} ({body!r}...)" for body, reason in failed))
        sent = {s["Id"]: s["MessageId"] for s in response["Successful"]}
        return [sent[e["Id"]] for e in entries]

    def receive_batch(self, count: int, wait_seconds: int) -> list[Message]:
        response = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(count, BATCH),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Message(
                message_id=m["MessageId"],
                receipt=m["ReceiptHandle"],
                body=m["Body"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    def _by_receipt(self, call: Any, receipts: Sequence[str], **extra: Any) -> list[str]:
        entries = [{"Id": str(i), "ReceiptHandle": r, **extra} for i, r in enumerate(receipts)]
        response = call(QueueUrl=self.url, Entries=entries)
        return [r for r, _ in self._failed(response, {e["Id"]: e["ReceiptHandle"] for e in entries})]

    def delete_batch(self, receipts: Sequence[str]) -> list[str]:
        return self._by_receipt(self.client.delete_message_batch, receipts)

    def change_visibility_batch(self, receipts: Sequence[str], seconds: int) -> list[str]:
        return self._by_receipt(
            self.client.change_message_visibility_batch, receipts, VisibilityTimeout=seconds
        )

    def redrive_batch(self, count: int) -> int:
        """Receive from the dead-letter queue, send to the queue, then delete from the dead-letter queue
        (SQS's own move task, ``StartMessageMoveTask``, is not available everywhere, moto included)."""
        if self.dlq_url is None:
            return 0
        dead = self.client.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=min(count, BATCH),
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=REDRIVE_VISIBILITY_SECONDS,
        ).get("Messages", [])
        if not dead:
            return 0
        self.send_batch([with_identity(m["Body"], m["MessageId"]) for m in dead])
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(dead)]
        response = self.client.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)
        if failed := response.get("Failed"):
            log.warning(
                "%d moved messages are still in %s: a later redrive moves them again",
                len(failed),
                self.dlq_name,
            )
        return len(dead)

    def depth(self) -> Depth:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return Depth(
            visible=int(attributes["ApproximateNumberOfMessages"]),
            in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            dead=int(
                self.client.get_queue_attributes(
                    QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
            )
            if self.dlq_url
            else 0,
        )
