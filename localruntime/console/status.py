"""The live status line: files queued / processing / done / failed, and the DLQ depth."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.core.schema import Status
from chalicelib.jobindex import JobIndex
from localruntime.log import Console
from logctl.stage import Stage

REFRESH_SECONDS = 1.0
# moto reads the whole table for each of the 4 counting Queries: recount every 5 s only.
COUNT_SECONDS = 5.0
STATUSES = tuple(status.value for status in Status)


class InvocationCounts(Protocol):
    """What the status line reads of the invoker."""

    @property
    def totals(self) -> dict[str, int]: ...

    @property
    def in_flight(self) -> int: ...


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def _statuses(ddb: Any, table: str) -> Counter[str]:
    """Live jobs by status, counted on the status index (never a Scan)."""
    index, now = JobIndex(ddb, table), time.time()
    return Counter({status: index.count(status, now) for status in STATUSES})


class StatusBoard(threading.Thread):
    """Redraws the status line once a second; only on a terminal."""

    def __init__(self, console: Console, invoker: InvocationCounts, sqs: Any, ddb: Any, *,
                 stage: Callable[[], Stage], stop: threading.Event,
                 streams: Callable[[], dict[str, int]] | None = None) -> None:
        super().__init__(daemon=True, name="status")
        self.console = console
        self.invoker = invoker
        self.sqs = sqs
        self.ddb = ddb
        self.stage = stage
        self.streams = streams
        self._queue_urls: dict[str, str] = {}
        self.stop_event = stop
        self._files: Counter[str] = Counter()
        self._counted_at = float("-inf")

    def line(self) -> str:
        stage = self.stage()
        if time.monotonic() - self._counted_at >= COUNT_SECONDS:
            self._files = _statuses(self.ddb, stage.results_table)
            self._counted_at = time.monotonic()
        files = self._files
        name = stage.dead_letter_queue
        if name not in self._queue_urls:
            self._queue_urls[name] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        dlq = _depth(self.sqs, self._queue_urls[name])
        totals = self.invoker.totals
        streams = self.streams() if self.streams is not None else {}
        shards = (f" | stream shards {streams['shards']}, batches {streams['batches']}"
                  if streams.get("shards") or streams.get("batches") else "")
        return (f"files queued {files['queued']} | processing {files['processing']} | "
                f"done {files['completed']} | failed {files['failed']} | DLQ {dlq} || "
                f"invocations {totals['invocations']} ({totals['errors']} failed, "
                f"{totals['cold_starts']} cold) | in flight {self.invoker.in_flight}{shards}")

    def run(self) -> None:
        while not self.stop_event.wait(REFRESH_SECONDS):
            try:
                self.console.status(self.line())
            except Exception:  # noqa: BLE001 - the endpoint may be stopping; try again
                continue
        self.console.clear_status()
