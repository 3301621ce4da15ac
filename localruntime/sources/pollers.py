"""Event source pollers with Lambda's semantics.

`SqsPoller` is an SQS event source mapping: long polling, batch size and batching
window, one lane per unit of concurrency; after an invocation it deletes the batch,
or, when the mapping has ReportBatchItemFailures, only the messages a partial batch
response did not report (`localruntime.sources.mapping`); a failed invocation
leaves the batch to reappear after the visibility timeout, and the queue's redrive
policy moves a message that keeps failing to its dead-letter queue.

`S3NotificationPoller` drains the queue that receives a bucket's notifications for one
function and invokes it once per S3 event, as S3 invokes a function asynchronously:
a failed event is retried twice, after 1 and 2 minutes, then set aside in a queue of
failed events.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localruntime.functions.invoker import Invoker
from localruntime.log import Console
from localruntime.sources.events import batch_item_failures, s3_event, sqs_event
from localruntime.sources.notificationfaults import NotificationFaults

LONG_POLL_SECONDS = 10
RECEIVE_MAX = 10
ERROR_PAUSE_SECONDS = 1.0
ASYNC_RETRY_DELAYS_SECONDS = (60, 120)
ASYNC_MAX_ATTEMPTS = len(ASYNC_RETRY_DELAYS_SECONDS) + 1


@dataclass(frozen=True)
class QueueRef:
    url: str
    arn: str


class Poller(ABC):
    """Lanes (threads) that receive from one queue until stopped."""

    def __init__(self, function: str, sqs: Any, queue: QueueRef, region: str, lanes: int,
                 invoker: Invoker, console: Console, shutdown: threading.Event) -> None:
        self.function = function
        self.sqs = sqs
        self.queue = queue
        self.region = region
        self.invoker = invoker
        self.console = console
        self.shutdown = shutdown
        self._stopping = threading.Event()
        self._last_error: str | None = None
        self._error_lock = threading.Lock()
        self._error_at = 0.0
        self._threads = [
            threading.Thread(target=self._lane, daemon=True, name=f"{function}-lane-{i}")
            for i in range(lanes)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop receiving; a lane finishes the batch it holds (within its long poll)."""
        self._stopping.set()

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue.url, MaxNumberOfMessages=min(RECEIVE_MAX, count),
            WaitTimeSeconds=wait_seconds, MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"])
        return response.get("Messages", [])

    def _lane(self) -> None:
        while not self._stopping.is_set() and not self.shutdown.is_set():
            started = time.monotonic()
            try:
                messages = self.next_batch()
                self._recovered(started)
                if messages and not self.shutdown.is_set():
                    self.dispatch(messages)
            except Exception as exc:  # noqa: BLE001 - a lane reports and keeps polling
                if self.shutdown.is_set():
                    return
                error = f"{type(exc).__name__}: {exc}"
                with self._error_lock:  # a queue that is gone is reported once, by one lane
                    first = error != self._last_error
                    self._last_error = error
                    self._error_at = time.monotonic()
                if first:
                    self.console.info(f"{self.function}: polling {self.queue.url} failed: "
                                      f"{error} (retrying every {ERROR_PAUSE_SECONDS:g} s)")
                self.shutdown.wait(ERROR_PAUSE_SECONDS)

    def _recovered(self, started: float) -> None:
        """A receive that began after the last failure worked: say so, once."""
        with self._error_lock:
            if self._last_error is None or started < self._error_at:
                return
            self._last_error = None
        self.console.info(f"{self.function}: polling {self.queue.url} works again")

    def next_batch(self) -> list[dict[str, Any]]:
        return self._receive(RECEIVE_MAX, LONG_POLL_SECONDS)

    @abstractmethod
    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function for a received batch and settle its messages."""

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), RECEIVE_MAX):
            chunk = messages[start:start + RECEIVE_MAX]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                         for i, m in enumerate(chunk)])
            for failure in response.get("Failed", []):
                self.console.info(f"{self.function}: could not delete a message: "
                                  f"{failure.get('Code')}: {failure.get('Message')}")


class SqsPoller(Poller):
    """`reports_item_failures` says whether the mapping has ReportBatchItemFailures: only
    then is a returned `batchItemFailures` read; otherwise any normal return deletes the
    whole batch, as Lambda does."""

    def __init__(self, *args: Any, batch_size: int, batching_window_seconds: float,
                 reports_item_failures: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.reports_item_failures = reports_item_failures

    def next_batch(self) -> list[dict[str, Any]]:
        messages = self._receive(self.batch_size, LONG_POLL_SECONDS)
        if not messages or self.batching_window_seconds <= 0:
            return messages
        deadline = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size and not self.shutdown.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages += self._receive(self.batch_size - len(messages),
                                      max(1, min(20, int(remaining))))
        return messages

    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        ids = [m["MessageId"] for m in messages]
        reports = self.reports_item_failures()
        outcome = self.invoker.invoke(
            self.function, sqs_event(messages, self.queue.arn, self.region),
            batch_size=len(messages), source=self.queue.arn,
            judge=(lambda result: batch_item_failures(result, ids)) if reports else None)
        if not outcome.ok or outcome.failed_items is None:
            return
        failed = set(outcome.failed_items)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._delete(done)


class S3NotificationPoller(Poller):
    def __init__(self, *args: Any, faults: NotificationFaults | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = faults

    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        settled: list[dict[str, Any]] = []
        for message in messages:
            if self.faults is not None:
                if self.faults.delayed(message):
                    settled.append(message)
                    continue
                self.faults.duplicate(message)
            try:
                event = s3_event(message.get("Body", ""))
            except ValueError as exc:
                self.console.info(f"{self.function}: dropping a message from "
                                  f"{self.queue.url}: {exc}")
                settled.append(message)
                continue
            if event is None:
                settled.append(message)
                continue
            outcome = self.invoker.invoke(self.function, event, batch_size=1,
                                          source=f"s3:{self.queue.arn}")
            if outcome.ok:
                settled.append(message)
            else:
                self._retry_later(message)
        if settled:
            self._delete(settled)

    def _retry_later(self, message: dict[str, Any]) -> None:
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if attempt >= ASYNC_MAX_ATTEMPTS:
            delay = 0
            self.console.info(f"{self.function}: S3 event failed {attempt} times; it moves to "
                              "the failed-events queue")
        else:
            delay = ASYNC_RETRY_DELAYS_SECONDS[attempt - 1]
        self.sqs.change_message_visibility(QueueUrl=self.queue.url,
                                           ReceiptHandle=message["ReceiptHandle"],
                                           VisibilityTimeout=delay)
