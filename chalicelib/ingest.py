"""Streamed events in: the `ingest` handler, the producer, and POST /ingest.

- `Ingest` turns a Lambda Kinesis batch into gzip objects under `logs/stream/`
  (chalicelib.core.stream says how a redelivered or re-cut batch is written once); the
  trigger and worker then process each object like an upload.
- `EventProducer` puts packed records with PutRecords, trying failed records again with
  back-off; POST /ingest and `logctl send` both use it.
- `IngestApi` is POST /ingest: an NDJSON body packed into records and put on the stream.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.api import ApiResponse, error
from chalicelib.apimodels import IngestAccepted, dump
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.stream import (
    MIB,
    LineTooLarge,
    PackedRecord,
    StreamRecord,
    first_position,
    needed_lasts,
    numbered_lines,
    object_body,
    object_key,
    pack,
    partition_prefix,
    plan_objects,
    put_requests,
    records_from_kinesis_event,
    segments,
)
from chalicelib.telemetry import Telemetry

NDJSON = "application/x-ndjson"
MAX_INGEST_BODY_BYTES = 4 * MIB  # base64 in Lambda's event: 5.6 MB, under its 6 MB limit


@dataclass(frozen=True)
class IngestSettings:
    stream: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestSettings:
        if not env.get("INGEST_STREAM"):
            raise ConfigurationError("missing environment variable INGEST_STREAM: run with a "
                                     "stage from .chalice/config.json")
        return cls(env["INGEST_STREAM"])


# ---- the ingest handler -----------------------------------------------------------------

class ObjectStore(Protocol):
    def keys(self, prefix: str) -> list[str]: ...
    def last_sequence(self, key: str) -> str: ...
    def create(self, key: str, body: bytes, last_sequence: str) -> bool: ...


@dataclass
class BatchCounts:
    records: int = 0
    objects: int = 0
    duplicates: int = 0
    keys: list[str] = field(default_factory=list)


class Ingest:
    """A Kinesis batch -> objects. Raises when a write fails, so Lambda retries the batch;
    what was written before is then skipped, not written again."""

    def __init__(self, objects: ObjectStore, telemetry: Telemetry | None = None) -> None:
        self.objects = objects
        self.telemetry = telemetry or Telemetry()

    def handle(self, event: Mapping[str, Any]) -> dict[str, list[Any]]:
        records = records_from_kinesis_event(event)
        counts = BatchCounts(records=len(records))
        for segment in segments(records):
            self._write(segment, counts)
        self.telemetry.stream_batch(counts.records, counts.objects, counts.duplicates)
        self.telemetry.event("stream_batch", records=counts.records, objects=counts.objects,
                             duplicates=counts.duplicates, keys=counts.keys)
        return {"batchItemFailures": []}

    def _write(self, segment: Sequence[StreamRecord], counts: BatchCounts) -> None:
        existing: dict[int, str] = {}
        for key in self.objects.keys(partition_prefix(segment[0].shard_id, segment[0].arrived)):
            first = first_position(key)
            if first is not None:
                existing[first] = key
        covered = [(first, int(self.objects.last_sequence(existing[first])))
                   for first in needed_lasts(segment, existing)]
        runs, skipped = plan_objects(segment, covered)
        counts.duplicates += skipped
        for run in runs:
            self._create(run, counts)

    def _create(self, run: Sequence[StreamRecord], counts: BatchCounts) -> None:
        while run:
            key = object_key(run[0])
            if self.objects.create(key, object_body(run), run[-1].sequence):
                counts.objects += 1
                counts.keys.append(key)
                return
            # Written since the listing: continue after that object's last record.
            last = int(self.objects.last_sequence(key))
            rest = [record for record in run if record.position > last]
            counts.duplicates += len(run) - len(rest)
            run = rest


# ---- putting records on the stream ------------------------------------------------------

@dataclass
class PutOutcome:
    sent: list[PackedRecord] = field(default_factory=list)
    failed: list[PackedRecord] = field(default_factory=list)
    error: str | None = None  # the last error code Kinesis gave for a failed record

    def add(self, other: PutOutcome) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.error = other.error or self.error

    @property
    def lines_sent(self) -> int:
        return sum(record.lines for record in self.sent)

    def unsent_lines(self) -> str:
        """The failed records' line ranges, as `3-7, 12-15`."""
        ranges = sorted((r.first_line, r.last_line) for r in self.failed)
        return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


class EventProducer:
    """PutRecords with each failed record tried again (full-jitter exponential back-off);
    botocore's own retries cover a failed call."""

    def __init__(self, client: Any, stream: str, *, attempts: int = 8,
                 base_delay: float = 0.05, max_delay: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.client = client
        self.stream = stream
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.jitter = jitter

    def put(self, request: Sequence[PackedRecord]) -> PutOutcome:
        outcome = PutOutcome()
        pending = list(request)
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(min(self.max_delay, self.base_delay * 2 ** attempt) * self.jitter())
            response = self.client.put_records(StreamName=self.stream, Records=[
                {"Data": r.data, "PartitionKey": r.partition_key} for r in pending])
            failed = []
            for record, result in zip(pending, response["Records"], strict=True):
                if result.get("ErrorCode"):
                    failed.append(record)
                    outcome.error = str(result["ErrorCode"])
                else:
                    outcome.sent.append(record)
            pending = failed
            if not pending:
                break
        outcome.failed = pending
        return outcome


def random_partition_key() -> str:
    """Random keys spread records over the shards (events need no order across records)."""
    return uuid.uuid4().hex


# ---- POST /ingest -----------------------------------------------------------------------

class IngestApi:
    def __init__(self, producer: EventProducer,
                 partition_key: Callable[[], str] = random_partition_key,
                 max_body_bytes: int = MAX_INGEST_BODY_BYTES) -> None:
        self.producer = producer
        self.partition_key = partition_key
        self.max_body_bytes = max_body_bytes

    def post(self, content_type: str | None, body: bytes | str | None) -> ApiResponse:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != NDJSON:
            return error(400, "bad_request", f"Content-Type: send the events as {NDJSON} (one "
                         f"JSON object a line), not {content_type or 'no type'}",
                         "Content-Type")
        data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        if len(data) > self.max_body_bytes:
            return error(413, "too_large", f"body: {len(data)} bytes, over the "
                         f"{self.max_body_bytes}-byte limit of one request: split it", "body")
        try:
            records = list(pack(numbered_lines([data]), self.partition_key))
        except LineTooLarge as exc:
            return error(413, "too_large", f"body: {exc}; nothing was accepted", "body")
        outcome = PutOutcome()
        for request in put_requests(records):
            outcome.add(self.producer.put(request))
        if outcome.failed:
            return error(503, "unavailable", f"body: {outcome.lines_sent} of "
                         f"{sum(r.lines for r in records)} lines were put on the stream; lines "
                         f"{outcome.unsent_lines()} were not ({outcome.error}): send those "
                         "again", "body")
        return ApiResponse(202, dump(IngestAccepted(accepted=outcome.lines_sent,
                                                    records=len(outcome.sent))))
