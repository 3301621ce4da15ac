"""Stream event source semantics (DynamoDB Streams and Kinesis share them), with an
in-memory stream and invoker."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from localruntime.functions.invoker import Invoker, Outcome
from localruntime.log import Console
from localruntime.sources.events import batch_item_failures
from localruntime.sources.mapping import stream_options
from localruntime.sources.streams import (
    BatchSettler,
    Read,
    Shard,
    StreamGone,
    StreamOptions,
    StreamPoller,
    StreamRecord,
)

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/events"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:app-local-ingest"


class FakeStream:
    """Shards of records in memory; iterators are `shard:index`."""

    kind = "kinesis"
    batch_info_key = "KinesisBatchInfo"
    max_read = 10_000
    idle_seconds = 0.01

    def __init__(self) -> None:
        self.records: dict[str, list[StreamRecord]] = {}
        self.meta: dict[str, Shard] = {}
        self.created = 1
        self.exists = True
        self.lock = threading.Lock()

    def add_shard(self, shard_id: str, parents: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.records[shard_id] = []
            self.meta[shard_id] = Shard(shard_id, parents)

    def close(self, shard_id: str) -> None:
        with self.lock:
            self.meta[shard_id] = Shard(shard_id, self.meta[shard_id].parents, closed=True)

    def put(self, shard_id: str, count: int, arrival: float | None = None) -> list[str]:
        with self.lock:
            records = self.records[shard_id]
            added = []
            for _ in range(count):
                sequence = str(len(records) + 1)
                event = {"kinesis": {"sequenceNumber": sequence}, "eventID":
                         f"{shard_id}:{sequence}"}
                records.append(StreamRecord(sequence, time.time() if arrival is None
                                            else arrival, event, 100))
                added.append(sequence)
            return added

    def recreate(self) -> None:
        with self.lock:
            self.records, self.meta = {}, {}
            self.created += 1

    def arn(self) -> str:
        return ARN

    def identity(self) -> str:
        if not self.exists:
            raise StreamGone("no stream")
        return f"{ARN}@{self.created}"

    def shards(self) -> list[Shard]:
        if not self.exists:
            raise StreamGone("no stream")
        with self.lock:
            return list(self.meta.values())

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        with self.lock:
            if after is not None:
                return f"{shard_id}:{int(after)}"
            start = len(self.records[shard_id]) if position == "LATEST" else 0
            return f"{shard_id}:{start}"

    def read(self, shard_id: str, iterator: str, limit: int) -> Read:
        with self.lock:
            index = int(iterator.rsplit(":", 1)[1])
            records = self.records.get(shard_id, [])[index:index + limit]
            end = index + len(records)
            closed = self.meta[shard_id].closed and end == len(self.records[shard_id])
            return Read(records, None if closed else f"{shard_id}:{end}")


class FakeInvoker(Invoker):
    """`reply(sequences)` answers (ok, result); records the sequences of every call."""

    def __init__(self, reply: Callable[[list[str]], tuple[bool, Any]]) -> None:
        super().__init__(Console(io.StringIO(), status_line=False))
        self.reply = reply
        self.calls: list[list[str]] = []
        self.sources: list[str] = []
        self.shards_in_flight: dict[str, int] = {}
        self.overlap = False
        self._guard = threading.Lock()

    def invoke(self, function: str, event: dict[str, Any], *, batch_size: int, source: str,
               judge: Any = None) -> Outcome:
        sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        with self._guard:
            self.calls.append(sequences)
            self.sources.append(source)
            self.shards_in_flight[source] = self.shards_in_flight.get(source, 0) + 1
            self.overlap |= self.shards_in_flight[source] > 1
        try:
            ok, result = self.reply(sequences)
        finally:
            with self._guard:
                self.shards_in_flight[source] -= 1
        if not ok:
            return Outcome(False, None, "error", "req-1", None)
        failed = judge(result) if judge else []
        return Outcome(True, result, "ok" if failed == [] else "partial", "req-1", failed)


class FakeQueue:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send(self, body: str) -> None:
        self.bodies.append(json.loads(body))


def settler(stream: FakeStream, invoker: FakeInvoker, options: StreamOptions,
            queue: FakeQueue | None = None, clock: Callable[[], float] = time.time
            ) -> BatchSettler:
    queue = queue or FakeQueue()
    return BatchSettler("ingest", FUNCTION_ARN, stream, invoker, invoker.console,
                        lambda: options, lambda arn: queue, threading.Event(), clock=clock,
                        retry_base_seconds=0.0)


def records(stream: FakeStream, shard: str, count: int, arrival: float | None = None
            ) -> list[StreamRecord]:
    stream.put(shard, count, arrival)
    return list(stream.records[shard])


def always(ok: bool, result: Any = None) -> Callable[[list[str]], tuple[bool, Any]]:
    return lambda sequences: (ok, result)


# ---- settling one batch ---------------------------------------------------------------


def test_a_failed_batch_is_retried_until_it_succeeds() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    answers = iter([(False, None), (False, None), (True, None)])
    invoker = FakeInvoker(lambda sequences: next(answers))
    done = settler(stream, invoker, StreamOptions()).settle("s0", records(stream, "s0", 3))
    assert invoker.calls == [["1", "2", "3"]] * 3
    assert done.succeeded == 3 and done.discarded == []


def test_retries_run_out_and_the_batch_metadata_goes_to_the_destination() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    queue = FakeQueue()
    invoker = FakeInvoker(always(False))
    options = StreamOptions(maximum_retry_attempts=2, on_failure="arn:aws:sqs:q")
    done = settler(stream, invoker, options, queue).settle("s0", records(stream, "s0", 3))
    assert len(invoker.calls) == 3  # the first attempt and two retries
    assert done.discarded == [("RetryAttemptsExhausted", 3)]
    [body] = queue.bodies
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 3
    assert body["requestContext"]["functionArn"] == FUNCTION_ARN
    assert body["responseContext"]["functionError"] == "Unhandled"
    info = body["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"],
            info["batchSize"], info["streamArn"]) == ("s0", "1", "3", 3, ARN)
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")


def test_zero_retries_means_one_invocation() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    invoker = FakeInvoker(always(False))
    settler(stream, invoker, StreamOptions(maximum_retry_attempts=0)).settle(
        "s0", records(stream, "s0", 2))
    assert len(invoker.calls) == 1


def test_bisect_isolates_the_poison_record_without_using_retries() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    queue = FakeQueue()
    invoker = FakeInvoker(lambda sequences: ("3" not in sequences, None))
    options = StreamOptions(bisect=True, maximum_retry_attempts=1, on_failure="q")
    done = settler(stream, invoker, options, queue).settle("s0", records(stream, "s0", 4))
    assert invoker.calls == [["1", "2", "3", "4"], ["1", "2"], ["3", "4"], ["3"], ["3"],
                             ["4"]]
    assert done.succeeded == 3
    assert [b["KinesisBatchInfo"]["startSequenceNumber"] for b in queue.bodies] == ["3"]
    assert queue.bodies[0]["requestContext"]["approximateInvokeCount"] == 2


def test_without_a_destination_records_given_up_are_skipped() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    invoker = FakeInvoker(always(False))
    done = settler(stream, invoker, StreamOptions(maximum_retry_attempts=0)).settle(
        "s0", records(stream, "s0", 2))
    assert done.discarded == [("RetryAttemptsExhausted", 2)]


def partial(failed: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}


def test_a_partial_batch_response_checkpoints_at_the_lowest_failed_record() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    answers = iter([(True, partial(["4", "2"])), (True, None)])
    invoker = FakeInvoker(lambda sequences: next(answers))
    done = settler(stream, invoker, StreamOptions(report_item_failures=True)).settle(
        "s0", records(stream, "s0", 5))
    assert invoker.calls == [["1", "2", "3", "4", "5"], ["2", "3", "4", "5"]]
    assert done.succeeded == 5


def test_a_partial_batch_response_is_ignored_unless_the_mapping_asks_for_it() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    invoker = FakeInvoker(always(True, partial(["2"])))
    done = settler(stream, invoker, StreamOptions()).settle("s0", records(stream, "s0", 3))
    assert invoker.calls == [["1", "2", "3"]]
    assert done.succeeded == 3


@pytest.mark.parametrize("result", [partial(["9"]), partial([""]),
                                    {"batchItemFailures": [{"id": "1"}]},
                                    {"batchItemFailures": "1"}])
def test_an_unusable_partial_response_fails_the_whole_batch(result: Any) -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    invoker = FakeInvoker(always(True, result))
    options = StreamOptions(report_item_failures=True, maximum_retry_attempts=1)
    done = settler(stream, invoker, options).settle("s0", records(stream, "s0", 2))
    assert invoker.calls == [["1", "2"], ["1", "2"]]
    assert done.discarded == [("RetryAttemptsExhausted", 2)]


@pytest.mark.parametrize("result", [None, {}, {"batchItemFailures": []},
                                    {"batchItemFailures": None}])
def test_success_responses(result: Any) -> None:
    assert batch_item_failures(result, ["1"]) == []


def test_records_older_than_the_maximum_age_are_given_up() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    now = [1000.0]
    stream.put("s0", 2, arrival=900.0)
    stream.put("s0", 2, arrival=990.0)
    queue = FakeQueue()
    invoker = FakeInvoker(always(True))
    options = StreamOptions(maximum_record_age_seconds=60, on_failure="q")
    done = settler(stream, invoker, options, queue, clock=lambda: now[0]).settle(
        "s0", list(stream.records["s0"]))
    assert invoker.calls == [["3", "4"]]
    assert done.discarded == [("RecordAgeExceeded", 2)]
    assert queue.bodies[0]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert queue.bodies[0]["KinesisBatchInfo"]["endSequenceNumber"] == "2"


def test_a_failing_batch_is_given_up_once_its_records_pass_the_maximum_age() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    now = [1000.0]

    def fail_and_age(sequences: list[str]) -> tuple[bool, Any]:
        now[0] += 30
        return False, None

    invoker = FakeInvoker(fail_and_age)
    stream.put("s0", 1, arrival=1000.0)
    done = settler(stream, invoker, StreamOptions(maximum_record_age_seconds=60),
                   clock=lambda: now[0]).settle("s0", list(stream.records["s0"]))
    assert len(invoker.calls) == 3 and done.discarded == [("RecordAgeExceeded", 1)]


def test_the_mapping_is_read_as_lambda_reads_it() -> None:
    declared = StreamOptions(batch_size=50, batching_window_seconds=2)
    assert stream_options(None, declared) == declared
    mapping = {"UUID": "u", "BatchSize": 500, "MaximumBatchingWindowInSeconds": 1,
               "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 3,
               "MaximumRecordAgeInSeconds": 3600,
               "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:x"}},
               "FunctionResponseTypes": ["ReportBatchItemFailures"]}
    assert stream_options(mapping, declared) == StreamOptions(500, 1, True, 3, 3600,
                                                              "arn:aws:sqs:x", True)
    assert stream_options({"UUID": "u", "BatchSize": 100}, declared) == StreamOptions(100)


# ---- polling shards ---------------------------------------------------------------------


def poller(stream: FakeStream, invoker: FakeInvoker, options: StreamOptions,
           position: str = "TRIM_HORIZON", **kwargs: Any) -> StreamPoller:
    shutdown = threading.Event()
    settle = BatchSettler("ingest", FUNCTION_ARN, stream, invoker, invoker.console,
                          lambda: options, lambda arn: FakeQueue(), shutdown,
                          retry_base_seconds=0.0)
    return StreamPoller("ingest", stream, settle, lambda: options, position,
                        invoker.console, shutdown, refresh_seconds=0.01, **kwargs)


def wait_for(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def delivered(invoker: FakeInvoker) -> list[str]:
    return [s for call in list(invoker.calls) for s in call]


def test_each_shard_is_read_in_order_in_batches_one_at_a_time() -> None:
    stream = FakeStream()
    for shard in ("s0", "s1"):
        stream.add_shard(shard)
        stream.put(shard, 25)

    def slow(sequences: list[str]) -> tuple[bool, Any]:
        time.sleep(0.002)
        return True, None

    invoker = FakeInvoker(slow)
    running = poller(stream, invoker, StreamOptions(batch_size=10))
    running.start()
    try:
        wait_for(lambda: len(delivered(invoker)) == 50, "every record")
        wait_for(lambda: running.activity()["batches"] == 6, "the batches counted")
    finally:
        running.stop()
    assert all(len(call) <= 10 for call in invoker.calls)
    for shard in ("s0", "s1"):
        got = [int(sequence) for source, call in zip(invoker.sources, invoker.calls,
                                                      strict=True)
               if source.endswith(f"#{shard}") for sequence in call]
        assert got == list(range(1, 26))
    assert not invoker.overlap


def test_a_poller_replacing_another_reads_only_once_its_batch_ended_and_goes_on_from_it(
        ) -> None:
    # GIVEN a poller in the middle of a slow batch of a shard
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 30)
    release = threading.Event()

    def slow_first(sequences: list[str]) -> tuple[bool, Any]:
        if "1" in sequences:
            release.wait(10)
        return True, None

    invoker = FakeInvoker(slow_first)
    checkpoints: dict[str, str] = {}
    first = poller(stream, invoker, StreamOptions(batch_size=10), checkpoints=checkpoints)
    first.start()
    wait_for(lambda: invoker.calls, "the first batch")
    # WHEN the mapping changes: the poller is stopped and another takes its place
    first.stop()
    second = poller(stream, invoker, StreamOptions(batch_size=4), checkpoints=checkpoints,
                    after=first)
    second.start()
    try:
        time.sleep(0.2)
        # THEN the new one waits for the batch in flight, then goes on after it
        assert len(invoker.calls) == 1
        release.set()
        wait_for(lambda: "30" in delivered(invoker), "the rest of the shard")
    finally:
        second.stop()
    assert invoker.calls[0] == [str(n) for n in range(1, 11)]
    assert delivered(invoker) == [str(n) for n in range(1, 31)]
    assert not invoker.overlap


def test_a_shard_does_not_move_on_while_its_batch_fails() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 4)
    failures = [3]

    def fail_first(sequences: list[str]) -> tuple[bool, Any]:
        if failures[0] and "1" in sequences:
            failures[0] -= 1
            return False, None
        return True, None

    invoker = FakeInvoker(fail_first)
    running = poller(stream, invoker, StreamOptions(batch_size=2))
    running.start()
    try:
        wait_for(lambda: "4" in delivered(invoker), "the second batch")
    finally:
        running.stop()
    assert invoker.calls == [["1", "2"]] * 4 + [["3", "4"]]


def test_latest_skips_what_was_there_and_new_shards_start_at_their_beginning() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 5)
    invoker = FakeInvoker(always(True))
    running = poller(stream, invoker, StreamOptions(batch_size=100), position="LATEST")
    running.start()
    try:
        wait_for(lambda: running.activity()["shards"] == 1, "the shard poller")
        time.sleep(0.05)
        stream.put("s0", 1)
        wait_for(lambda: delivered(invoker) == ["6"], "the new record")
        # Resharding: s0 closes, s1 and s2 take over; a child waits for its parent.
        stream.add_shard("s1", parents=("s0",))
        stream.add_shard("s2", parents=("s0",))
        stream.put("s1", 2)
        stream.put("s2", 1)
        time.sleep(0.1)
        assert delivered(invoker) == ["6"]
        stream.put("s0", 1)
        stream.close("s0")
        wait_for(lambda: len(delivered(invoker)) == 5, "the child shards")
    finally:
        running.stop()
    assert delivered(invoker)[:2] == ["6", "7"]
    assert sorted(delivered(invoker)[2:]) == ["1", "1", "2"]


def test_a_stream_created_anew_is_read_from_the_starting_position() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 2)
    invoker = FakeInvoker(always(True))
    running = poller(stream, invoker, StreamOptions(batch_size=100))
    running.start()
    try:
        wait_for(lambda: len(delivered(invoker)) == 2, "the first stream's records")
        stream.exists = False
        time.sleep(0.05)
        stream.recreate()
        stream.add_shard("s0")
        stream.put("s0", 3)
        stream.exists = True
        wait_for(lambda: len(delivered(invoker)) == 5, "the new stream's records")
    finally:
        running.stop()
    assert delivered(invoker) == ["1", "2", "1", "2", "3"]


def test_the_batching_window_gathers_records_up_to_the_batch_size() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    invoker = FakeInvoker(always(True))
    running = poller(stream, invoker, StreamOptions(batch_size=5,
                                                    batching_window_seconds=0.5))
    running.start()
    try:
        wait_for(lambda: running.activity()["shards"] == 1, "the shard poller")
        for _ in range(3):
            stream.put("s0", 1)
            time.sleep(0.05)
        wait_for(lambda: invoker.calls, "the batch")
        stream.put("s0", 7)
        wait_for(lambda: len(delivered(invoker)) == 10, "every record")
    finally:
        running.stop()
    assert invoker.calls[0] == ["1", "2", "3"]
    assert invoker.calls[1:] == [["4", "5", "6", "7", "8"], ["9", "10"]]


def test_a_poller_that_replaces_another_goes_on_from_its_checkpoints() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 3)
    invoker = FakeInvoker(always(True))
    checkpoints: dict[str, str] = {}
    first = poller(stream, invoker, StreamOptions(batch_size=100))
    first.checkpoints = checkpoints
    first.start()
    try:
        wait_for(lambda: checkpoints, "the first batch settled")
    finally:
        first.stop()
    assert first.join(5)
    stream.put("s0", 2)
    second = poller(stream, invoker, StreamOptions(batch_size=100))
    second.checkpoints = checkpoints
    second.start()
    try:
        wait_for(lambda: len(delivered(invoker)) == 5, "the new records")
    finally:
        second.stop()
    assert invoker.calls == [["1", "2", "3"], ["4", "5"]]


def test_stopping_abandons_a_failing_batch_unsettled() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 2)
    invoker = FakeInvoker(always(False))
    running = poller(stream, invoker, StreamOptions())
    running.start()
    wait_for(lambda: len(invoker.calls) >= 2, "a retry")
    running.stop()
    assert running.join(5)
    assert running.checkpoints == {}


def test_a_read_failing_within_the_batching_window_keeps_the_records_gathered() -> None:
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 3)
    read, failures = stream.read, iter([False, True, True])

    def flaky(shard_id: str, iterator: str, limit: int) -> Read:
        if next(failures, False):
            raise RuntimeError("InternalFailure")
        return read(shard_id, iterator, limit)

    stream.read = flaky  # type: ignore[method-assign]
    invoker = FakeInvoker(always(True))
    running = poller(stream, invoker, StreamOptions(batch_size=10,
                                                    batching_window_seconds=0.5))
    running.start()
    try:
        wait_for(lambda: len(delivered(invoker)) == 3, "the records read before the failure")
    finally:
        running.stop()
    assert delivered(invoker) == ["1", "2", "3"]


def test_a_batch_retried_past_a_thousand_times_keeps_its_poller_alive() -> None:
    # GIVEN a mapping that never gives up and a batch that always fails
    stream = FakeStream()
    stream.add_shard("s0")
    stream.put("s0", 1)
    invoker = FakeInvoker(always(False))
    running = poller(stream, invoker, StreamOptions(maximum_retry_attempts=-1))
    running.start()
    try:
        # THEN the backoff's exponent does not overflow (it did past 1,024): retries go on
        wait_for(lambda: len(invoker.calls) >= 1_200, "1,200 invocations")
    finally:
        running.stop()
        assert running.join(5)
