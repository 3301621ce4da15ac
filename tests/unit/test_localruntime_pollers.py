"""Event source semantics of the local runtime's pollers, with an in-memory queue client."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from localruntime.functions.invoker import Invoker, Outcome
from localruntime.log import Console
from localruntime.sources.pollers import (
    ASYNC_RETRY_DELAYS_SECONDS,
    QueueRef,
    S3NotificationPoller,
    SqsPoller,
)

QUEUE = QueueRef("http://queue", "arn:aws:sqs:us-east-1:123456789012:jobs")


class FakeSqs:
    """Records deletes and visibility changes; receives what the test queued."""

    def __init__(self, batches: list[list[dict[str, Any]]] | None = None) -> None:
        self.batches = list(batches or [])
        self.deleted: list[str] = []
        self.visibility: dict[str, int] = {}
        self.receives: list[dict[str, Any]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives.append(kwargs)
        return {"Messages": self.batches.pop(0) if self.batches else []}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict:
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str,
                                  VisibilityTimeout: int) -> None:
        self.visibility[ReceiptHandle] = VisibilityTimeout


class FakeInvoker(Invoker):
    """Answers every invocation with `reply(event)` instead of running a process."""

    def __init__(self, reply: Any) -> None:
        super().__init__(Console(io.StringIO(), status_line=False))
        self.reply = reply
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, event: dict[str, Any], *, batch_size: int, source: str,
               judge: Any = None) -> Outcome:
        self.events.append(event)
        ok, result = self.reply(event)
        if not ok:
            return Outcome(False, None, "error", "req", None)
        failed = judge(result) if judge else []
        return Outcome(True, result, "ok", "req", failed)


def message(n: int, body: str = "{}", receives: int = 1) -> dict[str, Any]:
    return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "MD5OfBody": "",
            "Attributes": {"ApproximateReceiveCount": str(receives)}}


def sqs_poller(sqs: FakeSqs, invoker: Invoker, reports: bool = True,
               **kwargs: Any) -> SqsPoller:
    options = {"batch_size": 10, "batching_window_seconds": 0,
               "reports_item_failures": lambda: reports, **kwargs}
    return SqsPoller("worker", sqs, QUEUE, "us-east-1", lanes=1, invoker=invoker,
                     console=invoker.console, shutdown=threading.Event(), **options)


@pytest.mark.parametrize("reports", [True, False], ids=["with", "without"])
def test_a_successful_batch_is_deleted(reports: bool) -> None:
    sqs = FakeSqs()
    invoker = FakeInvoker(lambda event: (True, None))
    sqs_poller(sqs, invoker, reports).dispatch([message(1), message(2)])
    assert sqs.deleted == ["r1", "r2"]
    assert [r["messageId"] for r in invoker.events[0]["Records"]] == ["m1", "m2"]


def test_with_report_batch_item_failures_only_the_successes_are_deleted() -> None:
    sqs = FakeSqs()
    invoker = FakeInvoker(lambda event: (True, {"batchItemFailures": [{"itemIdentifier": "m2"}]}))
    sqs_poller(sqs, invoker, reports=True).dispatch([message(1), message(2), message(3)])
    assert sqs.deleted == ["r1", "r3"]


@pytest.mark.parametrize("reply", [
    lambda event: (True, {"batchItemFailures": [{"itemIdentifier": "m2"}]}),
    lambda event: (True, {"batchItemFailures": [{"itemIdentifier": "unknown"}]}),
], ids=["partial response", "malformed response"])
def test_without_report_batch_item_failures_a_normal_return_deletes_the_whole_batch(
        reply: Any) -> None:
    # GIVEN a mapping as `chalice deploy` creates it (no ReportBatchItemFailures)
    sqs = FakeSqs()
    # WHEN the handler returns, whatever it returns
    sqs_poller(sqs, FakeInvoker(reply), reports=False).dispatch(
        [message(1), message(2), message(3)])
    # THEN Lambda counts the batch a success: every message is deleted, the failed one too
    assert sqs.deleted == ["r1", "r2", "r3"]


@pytest.mark.parametrize("reports", [True, False], ids=["with", "without"])
def test_a_handler_error_leaves_the_batch_for_the_visibility_timeout(reports: bool) -> None:
    sqs = FakeSqs()
    sqs_poller(sqs, FakeInvoker(lambda event: (False, None)), reports).dispatch(
        [message(1), message(2)])
    assert sqs.deleted == [] and sqs.visibility == {}


def test_a_malformed_partial_response_fails_the_batch_when_reported() -> None:
    sqs = FakeSqs()
    reply = lambda event: (True, {"batchItemFailures": [{"itemIdentifier": "unknown"}]})  # noqa: E731
    sqs_poller(sqs, FakeInvoker(reply), reports=True).dispatch([message(1), message(2)])
    assert sqs.deleted == [] and sqs.visibility == {}


def test_batching_window_gathers_messages_until_the_batch_is_full() -> None:
    sqs = FakeSqs([[message(1)], [message(2)], [message(3), message(4)], [message(5)]])
    poller = sqs_poller(sqs, FakeInvoker(lambda event: (True, None)), batch_size=4,
                        batching_window_seconds=5)
    batch = poller.next_batch()
    assert [m["MessageId"] for m in batch] == ["m1", "m2", "m3", "m4"]
    assert all(r["WaitTimeSeconds"] >= 1 for r in sqs.receives)
    assert [r["MaxNumberOfMessages"] for r in sqs.receives] == [4, 3, 2]


def test_without_a_window_one_long_poll_makes_the_batch() -> None:
    sqs = FakeSqs([[message(1)], [message(2)]])
    batch = sqs_poller(sqs, FakeInvoker(lambda event: (True, None))).next_batch()
    assert [m["MessageId"] for m in batch] == ["m1"]
    assert sqs.receives[0]["WaitTimeSeconds"] > 0


def s3_body(key: str) -> str:
    return json.dumps({"Records": [{"eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})


def s3_poller(sqs: FakeSqs, invoker: Invoker) -> S3NotificationPoller:
    return S3NotificationPoller("trigger", sqs, QUEUE, "us-east-1", lanes=1, invoker=invoker,
                                console=invoker.console, shutdown=threading.Event())


def test_s3_events_are_invoked_one_by_one_and_test_events_skipped() -> None:
    sqs = FakeSqs()
    invoker = FakeInvoker(lambda event: (True, None))
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    s3_poller(sqs, invoker).dispatch(
        [message(1, s3_body("a")), message(2, test_event), message(3, s3_body("b"))])
    assert [e["Records"][0]["s3"]["object"]["key"] for e in invoker.events] == ["a", "b"]
    assert sqs.deleted == ["r1", "r2", "r3"]


def test_a_failed_s3_event_is_retried_after_one_then_two_minutes_then_set_aside() -> None:
    sqs = FakeSqs()
    poller = s3_poller(sqs, FakeInvoker(lambda event: (False, None)))
    poller.dispatch([message(1, s3_body("a"), receives=1), message(2, s3_body("b"), receives=2),
                     message(3, s3_body("c"), receives=3)])
    assert sqs.deleted == []
    assert sqs.visibility == {"r1": ASYNC_RETRY_DELAYS_SECONDS[0],
                              "r2": ASYNC_RETRY_DELAYS_SECONDS[1], "r3": 0}
    assert ASYNC_RETRY_DELAYS_SECONDS == (60, 120)


def test_a_queue_that_is_gone_is_reported_once_not_every_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a queue deleted under the poller (destroy-local while the runtime runs)
    monkeypatch.setattr("localruntime.sources.pollers.ERROR_PAUSE_SECONDS", 0)
    invoker = FakeInvoker(lambda event: (True, None))
    out = invoker.console.stream

    class GoneSqs(FakeSqs):
        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            self.receives.append(kwargs)
            if len(self.receives) >= 5:
                poller.stop()
            raise RuntimeError("QueueDoesNotExist: The specified queue does not exist.")

    poller = sqs_poller(GoneSqs(), invoker)
    # WHEN a lane keeps polling it
    poller._lane()
    # THEN five failed polls make one line
    lines = [line for line in out.getvalue().splitlines() if "polling" in line]
    assert len(lines) == 1 and "QueueDoesNotExist" in lines[0]


def wait_for(condition: Any, guard_seconds: float = 60) -> bool:
    """Poll `condition`; False after the hang guard."""
    pause = threading.Event()
    for _ in range(int(guard_seconds / 0.05)):
        if condition():
            return True
        pause.wait(0.05)
    return False


class VanishingSqs(FakeSqs):
    """A queue deleted under the pollers (destroy-local), then created again."""

    def __init__(self) -> None:
        super().__init__()
        self.gone = threading.Event()
        self.gone.set()
        self.failures = 0
        self._lock = threading.Lock()

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.gone.is_set():
            with self._lock:
                self.failures += 1
            raise RuntimeError("QueueDoesNotExist: The specified queue does not exist.")
        return super().receive_message(**kwargs)


def test_a_queue_that_goes_and_comes_back_is_reported_once_each_way() -> None:
    # GIVEN three lanes polling a queue that is gone
    sqs = VanishingSqs()
    stream = io.StringIO()
    invoker = FakeInvoker(lambda event: (True, None))
    invoker.console = Console(stream, status_line=False)
    shutdown = threading.Event()
    poller = SqsPoller("worker", sqs, QUEUE, "us-east-1", lanes=3, invoker=invoker,
                       console=invoker.console, shutdown=shutdown, batch_size=10,
                       batching_window_seconds=0, reports_item_failures=lambda: False)
    poller.start()
    try:
        # WHEN every lane has failed at least twice, and then the queue is back
        assert wait_for(lambda: sqs.failures >= 6)
        sqs.gone.clear()
        assert wait_for(lambda: "works again" in stream.getvalue())
    finally:
        shutdown.set()
    # THEN one line said it failed, and one that it works again
    lines = stream.getvalue().splitlines()
    assert len([line for line in lines if "failed: RuntimeError: QueueDoesNotExist" in line]) == 1
    assert len([line for line in lines if "works again" in line]) == 1
