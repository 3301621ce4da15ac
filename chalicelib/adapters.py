"""Storage adapters over injected boto3-style clients (S3, SQS, DynamoDB).

They take a client object and use only its methods and its `exceptions`, so tests pass
a moto-backed client or a twin, and this package never imports boto3.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job
from chalicelib.core.results import (
    KEPT_FIELDS,
    MAX_ERROR_CHARS,
    RETRIES_EXHAUSTED,
)
from chalicelib.core.schema import Status

log = logging.getLogger(__name__)
READ_SIZE = 64 * 1024
_DYNAMO_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
_DYNAMO_MIN = Decimal("1E-130")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# ---- DynamoDB attribute values ---------------------------------------------------------

def _number(value: int | float) -> dict[str, Any]:
    """A DynamoDB number, or its text when outside what a DynamoDB number can hold."""
    text = repr(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return {"S": text}
    digits = len(number.normalize().as_tuple().digits)
    if (number and not _DYNAMO_MIN <= abs(number) <= _DYNAMO_MAX) or digits > 38:
        return {"S": text}
    return {"N": text}


def to_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, dict):
        return {"M": {str(k): to_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_value(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_value(value: dict[str, Any]) -> Any:
    kind, inner = next(iter(value.items()))
    if kind == "NULL":
        return None
    if kind in ("S", "BOOL"):
        return inner
    if kind == "B":  # bytes from boto3; base64 text in a Lambda event's stream images
        return inner if isinstance(inner, bytes) else base64.b64decode(inner)
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "M":
        return {k: from_value(v) for k, v in inner.items()}
    if kind == "L":
        return [from_value(v) for v in inner]
    raise ValueError(f"unsupported DynamoDB type {kind}")


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    return {k: to_value(v) for k, v in record.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_value(v) for k, v in item.items()}


class ResultsStore:
    """Job and result records in the results table, written conditionally.

    Claims and final records are updates, not replacements: `created_at` keeps the value
    the trigger wrote, and `last_error` stays from the failed attempts before.
    """

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _write(self, record: dict[str, Any], condition: str,
               values: dict[str, Any] | None = None, *, replace: bool = False) -> bool:
        """A conditional write of the record; False when the condition does not hold."""
        condition_values = {k: to_value(v) for k, v in (values or {}).items()}
        try:
            if replace:
                extra: dict[str, Any] = {}
                if values:
                    extra["ExpressionAttributeValues"] = condition_values
                if "#status" in condition:
                    extra["ExpressionAttributeNames"] = {"#status": "status"}
                self.client.put_item(TableName=self.table, Item=to_item(record),
                                     ConditionExpression=condition, **extra)
            else:
                fields = [k for k in record if k != "job_id"]
                sets = [f"#{k} = if_not_exists(#{k}, :{k})" if k in KEPT_FIELDS
                        else f"#{k} = :{k}" for k in fields]
                self.client.update_item(
                    TableName=self.table, Key={"job_id": {"S": record["job_id"]}},
                    UpdateExpression="SET " + ", ".join(sets), ConditionExpression=condition,
                    ExpressionAttributeNames={f"#{k}": k for k in fields},
                    ExpressionAttributeValues={
                        **{f":{k}": to_value(record[k]) for k in fields}, **condition_values})
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def create(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Write a new job record; None if written, else the existing record."""
        if self._write(record, "attribute_not_exists(job_id)", replace=True):
            return None
        existing = self.get(record["job_id"])
        return existing if existing else {**record}

    def requeue(self, record: dict[str, Any], failed_at: str) -> bool:
        """Replace a failed record (completed at `failed_at`) with a new queued one."""
        return self._write(record, "#status = :failed AND completed_at = :failed_at",
                           {":failed": Status.FAILED, ":failed_at": failed_at}, replace=True)

    def claim(self, record: dict[str, Any], stale_before: str) -> bool:
        """Write the `processing` record. False when the job ended, or runs elsewhere now.

        A `processing` claim that started before `stale_before` belongs to an attempt that
        died (it ran past the worker's time limit) and may be taken over; a job that failed
        because its retries ran out may be claimed again (a redrive from the DLQ).
        """
        return self._write(
            record,
            "attribute_not_exists(job_id) OR #status = :queued "
            "OR (#status = :processing AND started_at < :stale) "
            "OR (#status = :failed AND begins_with(failure_reason, :exhausted))",
            {":queued": Status.QUEUED, ":processing": Status.PROCESSING, ":stale": stale_before,
             ":failed": Status.FAILED, ":exhausted": RETRIES_EXHAUSTED + ":"},
        )

    def finish(self, record: dict[str, Any]) -> bool:
        """Store the final record unless a completed one is already there."""
        return self._write(record, "attribute_not_exists(job_id) OR #status <> :completed",
                           {":completed": Status.COMPLETED})

    def reject(self, record: dict[str, Any]) -> bool:
        """Store a record for a file refused up front, unless the job already exists."""
        return self._write(record, "attribute_not_exists(job_id)", replace=True)

    def release(self, job_id: str, error: str) -> None:
        """Give a failed attempt's claim back (status queued, with the error) for the retry."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :queued, last_error = :e",
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":e": {"S": error[:MAX_ERROR_CHARS]},
                                           ":queued": {"S": Status.QUEUED},
                                           ":processing": {"S": Status.PROCESSING}},
            )
        except Exception:  # noqa: BLE001 - the claim then goes stale, which also frees it
            log.warning("could not release job %s", job_id)

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key={"job_id": {"S": job_id}},
                                    ConsistentRead=True).get("Item")
        return from_item(item) if item else None


class SqsJobQueue:
    """The jobs queue; the URL is looked up once, on first use."""

    def __init__(self, client: Any, queue_name: str) -> None:
        self.client = client
        self.queue_name = queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        return self._url

    def send(self, job: Job, delay_seconds: int = 0) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=job.to_message(),
                                 DelaySeconds=delay_seconds)

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_seconds)

    def delete(self, receipt_handles: list[str]) -> None:
        """Delete handled messages, ten at a time (SQS's batch limit)."""
        for start in range(0, len(receipt_handles), 10):
            batch = receipt_handles[start:start + 10]
            response = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)])
            if response.get("Failed"):
                raise RuntimeError(f"could not delete {len(response['Failed'])} handled "
                                   f"messages: {response['Failed'][0].get('Message', '')}")


class S3Source:
    """Streams an uploaded object, pinned to the version the job was created for."""

    def __init__(self, client: Any, read_size: int = READ_SIZE) -> None:
        self.client = client
        self.read_size = read_size

    def open(self, job: Job) -> ObjectStream:
        kwargs: dict[str, Any] = {"Bucket": job.bucket, "Key": job.key}
        if job.version_id:
            kwargs["VersionId"] = job.version_id
        elif job.etag:
            kwargs["IfMatch"] = f'"{job.etag}"'
        try:
            body = self.client.get_object(**kwargs)["Body"]
        except Exception as exc:
            code = _error_code(exc)
            if code in ("NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket"):
                raise JobRejected("not_found", f"s3://{job.bucket}/{job.key} no longer exists"
                                  ) from exc
            if code in ("PreconditionFailed", "412"):
                raise JobRejected("changed", f"s3://{job.bucket}/{job.key} was overwritten after "
                                  "upload; the new version is a job of its own") from exc
            raise
        return ObjectStream(body, self.read_size)


class ObjectStream:
    """An object's bytes in blocks; closing it (or reading to the end) frees the connection."""

    def __init__(self, body: Any, read_size: int) -> None:
        self.body = body
        self.read_size = read_size

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body.iter_chunks(self.read_size)
        finally:
            self.body.close()

    def close(self) -> None:
        self.body.close()



class StreamObjects:
    """Streamed-event objects under `logs/stream/`, each written at most once.

    A write is a PutObject with `If-None-Match: *`: S3 answers 412 when the key exists (in
    a versioned bucket too), and 409 ConditionalRequestConflict when a write of the same key
    is in flight, which is tried again.
    """

    LAST_SEQUENCE = "last-sequence"

    def __init__(self, client: Any, bucket: str, *, conflict_attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.bucket = bucket
        self.conflict_attempts = conflict_attempts
        self.sleep = sleep

    def keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        return keys

    def last_sequence(self, key: str) -> str:
        metadata = self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        if self.LAST_SEQUENCE not in metadata:
            raise RuntimeError(f"s3://{self.bucket}/{key} has no {self.LAST_SEQUENCE} metadata: "
                               "only the ingest handler may write under logs/stream/")
        return str(metadata[self.LAST_SEQUENCE])

    def create(self, key: str, body: bytes, last_sequence: str) -> bool:
        """Write the object unless the key exists; False when it does."""
        for attempt in range(self.conflict_attempts):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*",
                    ContentType="application/gzip",
                    Metadata={self.LAST_SEQUENCE: last_sequence})
                return True
            except self.client.exceptions.ClientError as exc:
                code = _error_code(exc)
                if code in ("PreconditionFailed", "412"):
                    return False
                if code != "ConditionalRequestConflict" or attempt + 1 == self.conflict_attempts:
                    raise
                self.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")
