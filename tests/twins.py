"""In-memory twins of the results store, the job queue, the object source and the
streamed-event objects.

They keep the contracts of `chalicelib.adapters` (conditional writes, kept fields,
messages with receive counts and visibility), so Trigger and Worker logic runs in unit
tests without moto. `fail_next` makes the next call of a method raise, for fault tests.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job
from chalicelib.core.results import (
    KEPT_FIELDS,
    MAX_ERROR_CHARS,
    RETRIES_EXHAUSTED,
)
from chalicelib.core.schema import Status


class Faults:
    """Methods told to fail: name -> exceptions to raise, one per call, in order."""

    def __init__(self) -> None:
        self.pending: dict[str, list[Exception]] = {}

    def fail_next(self, method: str, error: Exception | None = None) -> None:
        self.pending.setdefault(method, []).append(error or ConnectionError(f"{method} failed"))

    def maybe_fail(self, method: str) -> None:
        errors = self.pending.get(method)
        if errors:
            raise errors.pop(0)


class MemoryStore(Faults):
    """ResultsStore's contract over a dict of records."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, dict[str, Any]]] = []
        # What the table's stream carries: (old image or None, new image), in write order.
        self.changes: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []

    def _put(self, method: str, record: dict[str, Any]) -> None:
        self.changes.append((copy.deepcopy(self.items.get(record["job_id"])),
                             copy.deepcopy(record)))
        self.items[record["job_id"]] = copy.deepcopy(record)
        self.writes.append((method, copy.deepcopy(record)))

    def _update(self, method: str, record: dict[str, Any]) -> None:
        old = self.items.get(record["job_id"], {})
        kept = {k: old[k] for k in KEPT_FIELDS if k in old}
        self._put(method, {**old, **record, **kept})

    def create(self, record: dict[str, Any]) -> dict[str, Any] | None:
        self.maybe_fail("create")
        existing = self.items.get(record["job_id"])
        if existing is not None:
            return copy.deepcopy(existing)
        self._put("create", record)
        return None

    def requeue(self, record: dict[str, Any], failed_at: str) -> bool:
        self.maybe_fail("requeue")
        old = self.items.get(record["job_id"])
        if old is None or old["status"] != Status.FAILED or old.get("completed_at") != failed_at:
            return False
        self._put("requeue", record)
        return True

    def claim(self, record: dict[str, Any], stale_before: str) -> bool:
        self.maybe_fail("claim")
        old = self.items.get(record["job_id"])
        if old is not None and not (
                old["status"] == Status.QUEUED
                or (old["status"] == Status.PROCESSING and old["started_at"] < stale_before)
                or (old["status"] == Status.FAILED
                    and str(old.get("failure_reason")).startswith(RETRIES_EXHAUSTED + ":"))):
            return False
        self._update("claim", record)
        return True

    def finish(self, record: dict[str, Any]) -> bool:
        self.maybe_fail("finish")
        old = self.items.get(record["job_id"])
        if old is not None and old["status"] == Status.COMPLETED:
            return False
        self._update("finish", record)
        return True

    def reject(self, record: dict[str, Any]) -> bool:
        self.maybe_fail("reject")
        if record["job_id"] in self.items:
            return False
        self._put("reject", record)
        return True

    def release(self, job_id: str, error: str) -> None:
        old = self.items.get(job_id)
        if self.pending.get("release"):
            self.pending["release"].pop(0)
            return  # ResultsStore.release swallows its errors
        if old is not None and old["status"] == Status.PROCESSING:
            self._put("release", {**old, "status": Status.QUEUED,
                                  "last_error": error[:MAX_ERROR_CHARS]})

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self.items.get(job_id)
        return copy.deepcopy(item) if item is not None else None


@dataclass
class Message:
    message_id: str
    body: str
    receive_count: int = 0
    visible_at: float = 0.0
    receipt: str | None = None


@dataclass
class MemoryQueue(Faults):
    """SqsJobQueue's contract plus what SQS does: receive counts, visibility, a DLQ."""

    max_receive_count: int = 5
    visibility_timeout: float = 60.0
    now: float = 0.0
    messages: dict[str, Message] = field(default_factory=dict)
    dead: list[Message] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        Faults.__init__(self)

    def send(self, job: Job, delay_seconds: int = 0) -> None:
        self.maybe_fail("send")
        self.send_body(job.to_message(), delay_seconds)

    def send_body(self, body: str, delay_seconds: int = 0) -> str:
        message_id = f"m{next(self._ids)}"
        self.messages[message_id] = Message(message_id, body, visible_at=self.now + delay_seconds)
        return message_id

    def receive(self, limit: int = 10) -> list[dict[str, Any]]:
        """Visible messages as an SQS event's records; over-received ones go to the DLQ."""
        records = []
        for message in list(self.messages.values()):
            if len(records) == limit:
                break
            if message.visible_at > self.now:
                continue
            if message.receive_count >= self.max_receive_count:
                del self.messages[message.message_id]
                self.dead.append(message)
                continue
            message.receive_count += 1
            message.visible_at = self.now + self.visibility_timeout
            message.receipt = f"{message.message_id}#{message.receive_count}"
            records.append({"messageId": message.message_id, "receiptHandle": message.receipt,
                            "body": message.body,
                            "attributes": {"ApproximateReceiveCount": str(message.receive_count)}})
        return records

    def _by_receipt(self, receipt: str) -> Message | None:
        message = self.messages.get(receipt.split("#", 1)[0])
        return message if message is not None and message.receipt == receipt else None

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        self.maybe_fail("retry_later")
        message = self._by_receipt(receipt_handle)
        if message is not None:
            message.visible_at = self.now + delay_seconds

    def delete(self, receipt_handles: list[str]) -> None:
        self.maybe_fail("delete")
        for receipt in receipt_handles:
            message = self._by_receipt(receipt)
            if message is not None:
                del self.messages[message.message_id]


class MemorySource(Faults):
    """Objects by (bucket, key): bytes, served in chunks; a missing one reads as not_found."""

    def __init__(self, chunk_size: int = 64 * 1024) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str], bytes] = {}
        self.chunk_size = chunk_size

    def open(self, job: Job) -> Iterator[bytes]:
        self.maybe_fail("open")
        data = self.objects.get((job.bucket, job.key))
        if data is None:
            raise JobRejected("not_found", f"s3://{job.bucket}/{job.key} no longer exists")
        return iter([data[i:i + self.chunk_size] for i in range(0, len(data), self.chunk_size)])


class Applied500(ConnectionError):
    """The write was applied, and the answer lost (a 500, a timeout): the SDK retries it."""


class MemoryRollupItems(Faults):
    """DynamoRollupItems' contract over a dict of items (chalicelib.rollups.RollupItems).

    `fail_next(method, error)` fails a method's next call before it acts; with an
    `Applied500` it acts, then raises, as DynamoDB does when a write's answer is lost.
    `fail_at(n, error)` does the same to the n-th call (0-based), whatever its method.
    """

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0
        self.trace: list[str] = []
        self._at: tuple[int, Exception] | None = None

    def fail_at(self, call: int, error: Exception) -> None:
        self._at = (call, error)

    def heal(self) -> None:
        """No planned fault any more."""
        self._at = None
        self.pending.clear()

    def _before(self, method: str) -> None:
        self.calls += 1
        self.trace.append(method)
        if self._at is not None and self._at[0] == self.calls - 1 \
                and not isinstance(self._at[1], Applied500):
            error, self._at = self._at[1], None
            raise error
        errors = self.pending.get(method)
        if errors and not isinstance(errors[0], Applied500):
            raise errors.pop(0)

    def _after(self, method: str) -> None:
        if self._at is not None and self._at[0] == self.calls - 1:
            error, self._at = self._at[1], None
            raise error
        errors = self.pending.get(method)
        if errors and isinstance(errors[0], Applied500):
            raise errors.pop(0)

    def apply(self, write: Any) -> int:
        from chalicelib.core.rollup import fold, marker, pack
        self._before("apply")
        key = (write.target.series, write.target.hour)
        item = copy.deepcopy(self.items.get(key, {"series": key[0], "hour": key[1]}))
        applied = 0
        for change in write.changes:
            name = marker(change.job_id)
            if item.get(name, "") < change.position:
                item["figures"] = fold(write.target, item.get("figures", {}), change.delta)
                item[name] = change.position
                applied += 1
        if applied:
            pack(write.target, item["figures"])  # cuts a document too large, as when stored
            item["v"] = item.get("v", 0) + 1
            item.setdefault("expires_at", write.expires_at)
            self.items[key] = item
        self._after("apply")
        return applied

    def forget(self, target: Any, markers: Any) -> None:
        from chalicelib.core.rollup import marker
        self._before("forget")
        item = self.items.get((target.series, target.hour))
        for job_id, upto in markers.items():
            name = marker(job_id)
            if item is not None and name in item and item[name] <= upto:
                del item[name]
                item["v"] += 1
        self._after("forget")

    def ledgers(self, job_ids: Any) -> dict[str, str | None]:
        found = dict.fromkeys(job_ids)
        if not found:
            return {}
        self._before("ledgers")
        for job_id in found:
            item = self.items.get((f"ledger#{job_id}", "-"))
            found[job_id] = item["applied"] if item else None
        self._after("ledgers")
        return found

    def mark_done(self, done: Any, expires_at: int) -> None:
        if not done:
            return
        self._before("mark_done")
        for job_id, sequence in done.items():
            key = (f"ledger#{job_id}", "-")
            self.items[key] = {"series": key[0], "hour": "-", "applied": sequence,
                               "expires_at": expires_at}
        self._after("mark_done")

    def items_between(self, kind: str, first: str, last: str) -> list[Any]:
        from chalicelib.core.rollup import Target, pack, unpack
        from chalicelib.rollups import month_ranges
        wanted = {(f"{kind}#{month}", low, high + "~")
                  for month, low, high in month_ranges(first, last)}
        return [(Target(s, h), unpack(pack(Target(s, h), item["figures"])))
                for (s, h), item in sorted(self.items.items())
                if "figures" in item and any(s == series and low <= h <= high
                                             for series, low, high in wanted)]


class MemoryStreamObjects(Faults):
    """Streamed-event objects: key -> (gzip body, last sequence), written only when absent.

    `before_create` runs at the start of each create, so a test can slip in another
    writer's object between the handler's listing and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.before_create: list[Any] = []

    def keys(self, prefix: str) -> list[str]:
        self.maybe_fail("keys")
        return sorted(key for key in self.objects if key.startswith(prefix))

    def last_sequence(self, key: str) -> str:
        return self.objects[key][1]

    def create(self, key: str, body: bytes, last_sequence: str) -> bool:
        while self.before_create:
            self.before_create.pop(0)(self)
        self.maybe_fail("create")
        if key in self.objects:
            return False
        self.objects[key] = (body, last_sequence)
        return True
