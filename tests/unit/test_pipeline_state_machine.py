"""Random interleavings of everything at-least-once delivery and failures can do, against
the in-memory twins: duplicate notifications, duplicate deliveries, crashes between any two
calls, failed writes, stale-claim takeovers by a second worker while the first still runs,
retries, deleted and re-uploaded objects.

The results table's stream feeds the rollups handler, with its own faults: duplicate and
retried batches, a crash at any call, a write applied and then answered with an error.

Invariant: once the faults stop and the queues drain, every uploaded object version has
exactly one record, and it is terminal (`completed` equal to the reference, or `failed` with
a reason the version allows) or its message is in the dead-letter queue; a `completed`
record is never written again; and once the stream is drained, the rollups equal the sum of
f(record) over the records (every count exact).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chalicelib.adapters import to_item
from chalicelib.core.reference import summarize_bytes
from chalicelib.core.results import RETRIES_EXHAUSTED, iso
from chalicelib.core.rollup import Contribution, add_into, contribution, fold
from chalicelib.core.schema import Status
from chalicelib.pipeline import Settings, Trigger, Worker
from chalicelib.rollups import RollupsHandler
from tests.twins import Applied500, MemoryQueue, MemoryRollupItems, MemorySource, MemoryStore

BUCKET = "logs-bucket"
T0 = 1_714_521_600.0
WORKER_TIMEOUT = 60
CONTENTS = (
    b"",
    b'{"timestamp":"2024-05-01T00:00:00Z","level":"INFO","endpoint":"/a",'
    b'"response_time_ms":3,"status_code":200,"user_id":"u"}\n',
    b'{"timestamp":"2024-05-01T00:00:01Z","level":"error","endpoint":"/b",'
    b'"response_time_ms":7.5,"status_code":503,"user_id":"v"}\nnot json\n',
    b"\x1f\x8b broken gzip",
)
STORE_CALLS = ("create", "requeue", "claim", "finish", "reject", "release")
QUEUE_CALLS = ("send", "retry_later", "delete")


def etag_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # what S3's ETag of a single-part upload is


def content_of(etag: str) -> bytes:
    return next(data for data in CONTENTS if etag_of(data) == etag)


class Crash(BaseException):
    """The handler process dies here (SIGKILL, out of memory): nothing after it runs."""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class CrashPoint:
    """Counts the calls made to the store and queue; at the chosen one the process dies.
    At most one armed at a time."""

    def __init__(self) -> None:
        self.left: int | None = None

    def tick(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left < 0:
            self.left = None
            raise Crash


class Gate:
    """Holds one invocation before its next final write, to let another run meanwhile."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.release = threading.Event()

    def wait_if_armed(self) -> None:
        if self.armed:
            self.armed = False
            self.reached.set()
            self.release.wait(30)


class Calls:
    """A twin seen through the crash point (and, for the store's finish, the gate)."""

    def __init__(self, twin: Any, crash: CrashPoint, gate: Gate | None = None) -> None:
        self._twin = twin
        self._crash = crash
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._twin, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._gate is not None and name == "finish" and \
                    threading.current_thread() is not threading.main_thread():
                self._gate.wait_if_armed()
            self._crash.tick()
            return method(*args, **kwargs)
        return call


class PipelineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.settings = Settings(bucket=BUCKET, jobs_queue="jobs", results_table="results",
                                 worker_timeout_seconds=WORKER_TIMEOUT)
        self.store = MemoryStore()
        self.queue = MemoryQueue(max_receive_count=self.settings.max_receive_count,
                                 visibility_timeout=6 * WORKER_TIMEOUT)
        self.source = MemorySource()
        self.crash = CrashPoint()
        self.gate = Gate()
        store = Calls(self.store, self.crash, self.gate)
        queue = Calls(self.queue, self.crash)
        self.trigger = Trigger(self.settings, store, queue, self.clock)
        # The object is opened on the worker's fetch thread, concurrently with the claim:
        # crashes are counted on the store's and queue's calls only, so a sequence replays.
        self.worker = Worker(self.settings, store, self.source, queue, self.clock)
        self.notifications: list[dict[str, Any]] = []  # every S3 event, for duplicates
        self.pending: list[dict[str, Any]] = []  # events S3 still has to deliver
        self.versions: dict[str, bytes] = {}  # job id -> bytes
        self.deleted: set[str] = set()  # job ids whose object was deleted at some time
        self.completed: dict[str, dict[str, Any]] = {}
        self.paused: threading.Thread | None = None
        self.uploads = 0
        self.rollup_items = MemoryRollupItems()
        self.rollups = RollupsHandler(self.rollup_items)
        self.stream_applied = 0  # stream records before this one were handled

    # ---- time ---------------------------------------------------------------------------

    def tick(self, seconds: float = 0.001) -> None:
        self.clock.now += seconds
        self.queue.now = self.clock.now

    @rule(seconds=st.sampled_from([1, 5, 30, WORKER_TIMEOUT + 1, 6 * WORKER_TIMEOUT + 1]))
    def time_passes(self, seconds: int) -> None:
        self.tick(seconds)

    # ---- S3 ------------------------------------------------------------------------------

    @rule(content=st.sampled_from(range(len(CONTENTS))), gzip_name=st.booleans())
    def upload(self, content: int, gzip_name: bool) -> None:
        self.uploads += 1
        key = f"logs/f{self.uploads}.ndjson" + (".gz" if gzip_name and content == 3 else "")
        self._put(key, CONTENTS[content])

    def _put(self, key: str, data: bytes) -> None:
        self.tick()
        etag = etag_of(data)
        self.source.objects[(BUCKET, key)] = data
        event = {"Records": [{"eventName": "ObjectCreated:Put",
                              "eventTime": iso(self.clock.now),
                              "s3": {"bucket": {"name": BUCKET},
                                     "object": {"key": key, "size": len(data),
                                                "eTag": etag}}}]}
        self.notifications.append(event)
        self.pending.append(event)

    @precondition(lambda self: self.notifications)
    @rule(data=st.data())
    def delete_object(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.notifications))
        key = event["Records"][0]["s3"]["object"]["key"]
        if self.source.objects.pop((BUCKET, key), None) is not None:
            self.deleted.add(key)

    @precondition(lambda self: any(
        (BUCKET, e["Records"][0]["s3"]["object"]["key"]) not in self.source.objects
        for e in self.notifications))
    @rule(data=st.data())
    def upload_same_bytes_again(self, data: st.DataObject) -> None:
        gone = [e for e in self.notifications
                if (BUCKET, e["Records"][0]["s3"]["object"]["key"]) not in self.source.objects]
        event = data.draw(st.sampled_from(gone))
        obj = event["Records"][0]["s3"]["object"]
        self._put(obj["key"], content_of(obj["eTag"]))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def deliver_notification(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.pending))
        self.tick()
        try:
            self.trigger.handle(event)
        except (Crash, ConnectionError):
            return  # S3 retries the event
        self.pending.remove(event)

    @precondition(lambda self: self.notifications)
    @rule(data=st.data())
    def duplicate_notification(self, data: st.DataObject) -> None:
        self.pending.append(data.draw(st.sampled_from(self.notifications)))

    # ---- SQS and the worker --------------------------------------------------------------

    def _invoke(self, records: list[dict[str, Any]]) -> None:
        """One invocation; like Lambda, a normal return deletes the batch."""
        try:
            self.worker.handle({"Records": records})
        except (Exception, Crash):  # noqa: BLE001 - a failed invocation: SQS keeps the batch
            return
        # The platform deletes the batch: not a call of the handler's, so no fault meets it.
        planned = self.queue.pending.pop("delete", None)
        self.queue.delete([r["receiptHandle"] for r in records])
        if planned:
            self.queue.pending["delete"] = planned

    @rule(limit=st.integers(1, 10))
    def deliver_batch(self, limit: int) -> None:
        self.tick()
        records = self.queue.receive(limit)
        if records:
            self._invoke(records)

    @precondition(lambda self: self.queue.messages)
    @rule(data=st.data())
    def duplicate_delivery(self, data: st.DataObject) -> None:
        """SQS hands a copy of a message to a second consumer (no receipt of its own)."""
        message = data.draw(st.sampled_from(list(self.queue.messages.values())))
        self.tick()
        self._invoke([{"messageId": message.message_id + "-copy", "receiptHandle": "",
                       "body": message.body,
                       "attributes": {"ApproximateReceiveCount": str(message.receive_count or 1)}}])

    @rule(calls=st.integers(0, 8))
    def crash_at_a_later_call(self, calls: int) -> None:
        self.crash.left = calls

    @rule(method=st.sampled_from((*STORE_CALLS, *QUEUE_CALLS, "open")))
    def next_call_fails(self, method: str) -> None:
        twin = (self.store if method in STORE_CALLS
                else self.source if method == "open" else self.queue)
        twin.fail_next(method, ConnectionError(f"injected: {method} failed"))

    @precondition(lambda self: self.paused is None)
    @rule(limit=st.integers(1, 3))
    def slow_worker_pauses_before_its_final_write(self, limit: int) -> None:
        """An invocation stops just before its final write (a long GC pause, a slow
        network); meanwhile its claim can go stale and another worker take the job over."""
        self.tick()
        records = self.queue.receive(limit)
        if not records:
            return
        self.gate.armed = True
        self.gate.reached.clear()
        self.gate.release.clear()
        thread = threading.Thread(target=self._invoke, args=(records,), daemon=True)
        thread.start()
        while thread.is_alive() and not self.gate.reached.wait(0.01):
            continue
        if self.gate.reached.is_set():
            self.paused = thread
        else:
            self.gate.armed = False
            thread.join(30)

    @precondition(lambda self: self.paused is not None)
    @rule()
    def slow_worker_resumes(self) -> None:
        self._resume()

    def _resume(self) -> None:
        if self.paused is None:
            return
        self.gate.release.set()
        self.paused.join(30)
        assert not self.paused.is_alive()
        self.paused = None

    # ---- the results table's stream and the rollups handler ------------------------------

    def _stream(self, start: int, end: int) -> list[dict[str, Any]]:
        records = []
        for seq, (old, new) in enumerate(self.store.changes[start:end], start + 1):
            stream: dict[str, Any] = {"Keys": {"job_id": {"S": new["job_id"]}},
                                      "SequenceNumber": str(seq * 10),
                                      "NewImage": to_item(new)}
            if old is not None:
                stream["OldImage"] = to_item(old)
            records.append({"eventName": "MODIFY" if old else "INSERT", "dynamodb": stream})
        return records

    @precondition(lambda self: self.paused is None)
    @rule(size=st.integers(1, 5))
    def stream_batch(self, size: int) -> None:
        """The next batch of the stream; a failed one stays next (retried until it succeeds)."""
        end = min(len(self.store.changes), self.stream_applied + size)
        if end == self.stream_applied:
            return
        try:
            self.rollups.handle({"Records": self._stream(self.stream_applied, end)})
        except (ConnectionError, Crash):
            return
        self.stream_applied = end

    @precondition(lambda self: self.stream_applied > 0 and self.paused is None)
    @rule(data=st.data())
    def stream_delivers_old_records_again(self, data: st.DataObject) -> None:
        start = data.draw(st.integers(0, self.stream_applied - 1))
        try:
            self.rollups.handle({"Records": self._stream(start, self.stream_applied)})
        except (ConnectionError, Crash):
            return

    @rule(call=st.integers(0, 12), lost_answer=st.booleans())
    def a_rollups_call_fails(self, call: int, lost_answer: bool) -> None:
        self.rollup_items.calls = 0
        self.rollup_items.fail_at(call, Applied500("answer lost") if lost_answer
                                  else ConnectionError("rollups handler dies"))

    # ---- what must always hold -------------------------------------------------------------

    @invariant()
    def a_completed_record_is_never_written_again(self) -> None:
        if self.paused is not None:
            return  # the paused invocation's thread may be between calls
        for job_id, record in self.store.items.items():
            if job_id in self.completed:
                assert record == self.completed[job_id], f"completed record {job_id} changed"
            elif record["status"] == Status.COMPLETED:
                self.completed[job_id] = dict(record)

    def teardown(self) -> None:
        """Faults stop, S3 delivers what it owes, time passes until the queue drains."""
        self.crash.left = None
        for twin in (self.store, self.queue, self.source):
            twin.pending.clear()
        self._resume()
        for event in list(self.pending):
            self.trigger.handle(event)
        for _ in range(40):
            if not self.queue.messages:
                break
            self.tick(6 * WORKER_TIMEOUT + 1)
            while records := self.queue.receive(10):
                self._invoke(records)
        assert not self.queue.messages, "the queue did not drain"
        self.a_completed_record_is_never_written_again()
        self._check_every_version()
        self._check_rollups()

    def _check_rollups(self) -> None:
        self.rollup_items.heal()
        self.rollups.handle({"Records": self._stream(self.stream_applied,
                                                     len(self.store.changes))})
        expected: Contribution = {}
        for record in self.store.items.values():
            for target, delta in contribution(record).items():
                add_into(expected.setdefault(target, {}), delta)
        got = {(s, h): item["figures"] for (s, h), item in self.rollup_items.items.items()
               if not s.startswith("ledger#")}
        want = {(t.series, t.hour): fold(t, {}, d) for t, d in expected.items()}
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
        assert not any(k.startswith("m_") for item in self.rollup_items.items.values()
                       for k in item)

    def _check_every_version(self) -> None:
        dead = {json.loads(m.body)["job_id"] for m in self.queue.dead}
        by_version: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in self.store.items.values():
            by_version.setdefault((record["key"], record["etag"]), []).append(record)
        for event in self.notifications:
            obj = event["Records"][0]["s3"]["object"]
            records = by_version.get((obj["key"], obj["eTag"]), [])
            assert len(records) == 1, f"{obj}: {len(records)} records"
            record = records[0]
            status, reason = record["status"], str(record.get("failure_reason"))
            if status == Status.COMPLETED:
                expected = summarize_bytes(content_of(obj["eTag"]),
                                           gzip_hint=obj["key"].endswith(".gz"))
                assert {k: record[k] for k in expected} == expected
            elif status == Status.FAILED:
                allowed = ["unreadable:"] if obj["eTag"] == etag_of(CONTENTS[3]) else []
                allowed += ["not_found:"] if obj["key"] in self.deleted else []
                allowed += [RETRIES_EXHAUSTED + ":"] if record["job_id"] in dead else []
                assert any(reason.startswith(a) for a in allowed), (obj, reason)
            else:
                assert record["job_id"] in dead, f"{obj}: left {status}"


PipelineMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_pipeline_state_machine = PipelineMachine.TestCase


def test_a_job_whose_claim_holder_dies_is_retried_even_after_a_duplicate_was_skipped() -> None:
    # GIVEN a job whose message SQS delivers twice
    machine = PipelineMachine()
    machine._put("logs/a.ndjson", CONTENTS[1])
    machine.trigger.handle(machine.pending.pop())
    [message] = machine.queue.messages.values()
    copy = {"messageId": "copy", "receiptHandle": "", "body": message.body,
            "attributes": {"ApproximateReceiveCount": "1"}}
    # WHEN the first copy's invocation claims the job and dies before its final write
    machine.crash.left = 1  # claim, then the process dies at finish
    machine._invoke([copy])
    # AND the second copy arrives while that claim is fresh
    machine.tick(1)
    machine._invoke(machine.queue.receive(10))
    # THEN time and retries still bring the job to a final record
    machine.teardown()


def test_a_job_whose_final_write_and_release_both_failed_is_retried_to_the_end() -> None:
    # GIVEN a job whose final write fails, and the release of its claim fails too
    machine = PipelineMachine()
    machine._put("logs/a.ndjson", CONTENTS[1])
    machine.trigger.handle(machine.pending.pop())
    machine.store.fail_next("finish", ConnectionError("DynamoDB unavailable"))
    machine.store.fail_next("release", ConnectionError("DynamoDB unavailable"))
    machine._invoke(machine.queue.receive(10))
    # WHEN the retry comes after its back-off, before the claim is stale
    machine.tick(2)
    machine._invoke(machine.queue.receive(10))
    # THEN time and retries still bring the job to a final record
    machine.teardown()
