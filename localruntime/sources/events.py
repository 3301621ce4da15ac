"""Lambda event payloads built from SQS messages, shaped as Lambda delivers them."""

from __future__ import annotations

import base64
import json
from typing import Any

SQS_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
)


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    def b64(raw: bytes | str) -> str:
        data = raw.encode() if isinstance(raw, str) else raw
        return base64.b64encode(data).decode("ascii")

    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [b64(v) for v in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = b64(value["BinaryValue"])
    return converted


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ReceiveMessage result message."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in SQS_SYSTEM_ATTRIBUTES if k in attributes},
        "messageAttributes": {name: _message_attribute(value)
                              for name, value in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn, region) for m in messages]}


def s3_event(body: str) -> dict[str, Any] | None:
    """The S3 event carried by a notification message; None for `s3:TestEvent`.

    Raises ValueError when the body is not an S3 notification at all.
    """
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not an S3 notification (not JSON): {body[:200]!r}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"not an S3 notification: {body[:200]!r}")
    if event.get("Event") == "s3:TestEvent":
        return None
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise ValueError(f"not an S3 notification (no Records): {body[:200]!r}")
    return event


def batch_item_failures(result: Any, message_ids: list[str]) -> list[str] | None:
    """Message ids a partial batch response reports as failed.

    None means the response is malformed, which Lambda treats as a failure of the whole
    batch; an empty list means every message succeeded.
    """
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return []
    failures = result["batchItemFailures"]
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    known = set(message_ids)
    failed: list[str] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        failed.append(identifier)
    return failed
