"""The load test's upload-and-wait logic against moto, with the real handlers in between.

The probe's injected sleep runs the pipeline's steps, so every poll sees what a real
client would see at that moment; a fake clock keeps timeouts instant.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

from loadtest.samples import FIELDS, RunContext, SampleWriter, sample_row
from measure.payloads import build_payload
from measure.probe import Backoff, PipelineProbe, WaitEstimate, wait_for_record


class FakeClock:
    """Monotonic time that only moves when the probe sleeps; runs `steps` on each sleep."""

    def __init__(self, steps: list[Callable[[], None]] | None = None) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.steps = list(steps or [])

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.steps:
            self.steps.pop(0)()


class Pipeline:
    """Runs the trigger and the worker through Chalice's test client, one step at a time."""

    def __init__(self, app_module: Any, s3: Any, sqs: Any, stage: Any) -> None:
        self.app = app_module.app
        self.s3, self.sqs, self.stage = s3, sqs, stage

    def trigger_latest(self) -> None:
        listed = self.s3.list_objects_v2(Bucket=self.stage.bucket, Prefix="logs/")["Contents"]
        newest = max(listed, key=lambda o: o["LastModified"])
        with Client(self.app) as client:
            event = client.events.generate_s3_event(self.stage.bucket, quote_plus(newest["Key"]))
            version = self.s3.head_object(Bucket=self.stage.bucket,
                                          Key=newest["Key"]).get("VersionId")
            event["Records"][0]["s3"]["object"].update(size=newest["Size"],
                                                       eTag=newest["ETag"].strip('"'),
                                                       versionId=version)
            client.lambda_.invoke("trigger", event)

    def work(self) -> None:
        url = self.sqs.get_queue_url(QueueName=self.stage.jobs_queue)["QueueUrl"]
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                            AttributeNames=["All"]).get("Messages", [])
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"], "attributes": m["Attributes"], "eventSource": "aws:sqs"}
                   for m in messages]
        with Client(self.app) as client:
            client.lambda_.invoke("worker", {"Records": records})


@pytest.fixture
def pipeline(app_module, s3, sqs, stage) -> Pipeline:
    return Pipeline(app_module, s3, sqs, stage)


def make_probe(s3: Any, dynamodb: Any, stage: Any, clock: FakeClock,
               timeout: float = 5.0) -> PipelineProbe:
    return PipelineProbe(s3, dynamodb, bucket=stage.bucket, table=stage.results_table,
                         timeout=timeout, clock=clock, wall_clock=lambda: 1_700_000_000.0,
                         sleep=clock.sleep)


def test_completed_file_is_measured_with_the_records_timestamps(pipeline, s3, dynamodb,
                                                                 stage) -> None:
    clock = FakeClock([lambda: None, pipeline.trigger_latest, pipeline.work])
    probe = make_probe(s3, dynamodb, stage, clock)
    payload = build_payload(200)

    m = probe.measure(payload, "logs/loadtest/probe-ok.ndjson")

    assert m.outcome == "completed", m.reason
    assert m.ok and m.reason == ""
    assert m.polls == 3
    assert m.record is not None
    assert m.record["line_count"] == 200
    for field in ("uploaded_at", "created_at", "started_at", "completed_at"):
        assert m.record[field].endswith("Z")
    assert m.record["processing_time_ms"] >= 0
    assert m.bytes == len(payload.body)
    assert m.e2e_ms == pytest.approx(sum(clock.slept) * 1000)


def test_failed_result_is_a_failure_with_the_pipelines_reason(pipeline, s3, dynamodb,
                                                               stage) -> None:
    clock = FakeClock([pipeline.trigger_latest])
    probe = make_probe(s3, dynamodb, stage, clock)
    payload = build_payload(10)

    m = probe.measure(payload, "logs/loadtest/not-a-log.txt")

    assert m.outcome == "failed"
    assert not m.ok
    assert "unsupported_type" in m.reason


def test_timeout_reports_the_last_status_seen(pipeline, s3, dynamodb, stage) -> None:
    clock = FakeClock([pipeline.trigger_latest])
    probe = make_probe(s3, dynamodb, stage, clock, timeout=2.0)

    m = probe.measure(build_payload(10), "logs/loadtest/stuck.ndjson")

    assert m.outcome == "timeout"
    assert "after 2s" in m.reason and "last: queued" in m.reason
    assert sum(clock.slept) == pytest.approx(2.0)
    assert max(clock.slept) <= Backoff().cap


def test_timeout_without_any_record(s3, dynamodb, stage) -> None:
    clock = FakeClock()
    probe = make_probe(s3, dynamodb, stage, clock, timeout=0.5)

    m = probe.measure(build_payload(10), "logs/loadtest/never-triggered.ndjson")

    assert m.outcome == "timeout"
    assert "no result record" in m.reason
    assert m.job_id


def test_upload_error_is_reported_not_raised(s3, dynamodb, stage) -> None:
    clock = FakeClock()
    probe = PipelineProbe(s3, dynamodb, bucket="no-such-bucket", table=stage.results_table,
                          timeout=1.0, clock=clock, sleep=clock.sleep)

    m = probe.measure(build_payload(10), "logs/x.ndjson")

    assert m.outcome == "upload_error"
    assert m.reason.startswith("upload: NoSuchBucket")
    assert m.polls == 0


def test_wait_backs_off_from_5_ms_to_a_100_ms_cap(dynamodb, stage) -> None:
    clock = FakeClock()

    outcome = wait_for_record(dynamodb, stage.results_table, "missing", timeout=1.0,
                              clock=clock, sleep=clock.sleep)

    assert outcome.timed_out and outcome.record is None
    assert clock.slept[:3] == pytest.approx([0.005, 0.0075, 0.01125])
    assert max(clock.slept) == pytest.approx(0.1)
    assert sum(clock.slept) == pytest.approx(1.0)
    assert outcome.polls == len(clock.slept)


def test_with_an_expected_wait_polls_cluster_around_it_then_back_off() -> None:
    delays = Backoff().delays(expected=0.2)
    first = [next(delays) for _ in range(14)]

    assert first[0] == pytest.approx(0.2)
    assert first[1:11] == pytest.approx([0.02] * 10)
    assert first[11:14] == pytest.approx([0.02, 0.03, 0.045])


def test_short_expected_waits_poll_no_faster_than_the_initial_delay() -> None:
    delays = Backoff().delays(expected=0.01)
    assert [next(delays) for _ in range(3)] == pytest.approx([0.01, 0.005, 0.005])


def test_the_estimate_is_a_low_quartile_per_line_count_over_a_window() -> None:
    estimate = WaitEstimate(window=8, least=3)
    assert estimate.expected(1000) == 0.0
    estimate.add(1000, 0.9)
    estimate.add(1000, 0.1)
    assert estimate.expected(1000) == 0.0  # too few files yet
    for seconds in (0.5, 0.3, 0.7, 0.2, 0.8, 0.4):
        estimate.add(1000, seconds)
    assert estimate.expected(1000) == pytest.approx(0.2)
    assert estimate.expected(100) == 0.0
    for _ in range(8):
        estimate.add(1000, 2.0)
    assert estimate.expected(1000) == pytest.approx(2.0)


def test_the_probe_learns_from_the_records_completion_time(pipeline, s3, dynamodb,
                                                           stage) -> None:
    clock = FakeClock([pipeline.trigger_latest, pipeline.work])
    probe = PipelineProbe(s3, dynamodb, bucket=stage.bucket, table=stage.results_table,
                          timeout=5.0, clock=clock, sleep=clock.sleep)

    m = probe.measure(build_payload(10), "logs/loadtest/learn.ndjson")

    assert m.ok
    probe.waits.least = 1
    # The fake clock has moved 12.5 ms; the record was completed (real time) sooner.
    learned = probe.waits.expected(10)
    assert 0.0 <= learned <= (m.e2e_ms - m.upload_ms) / 1000
    assert probe.waits.expected(100) == 0.0


def test_measurements_become_csv_rows_with_every_field(pipeline, s3, dynamodb, stage,
                                                       tmp_path) -> None:
    clock = FakeClock([pipeline.trigger_latest, pipeline.work])
    probe = make_probe(s3, dynamodb, stage, clock)
    payload = build_payload(100)
    m = probe.measure(payload, "logs/loadtest/row.ndjson")
    path = tmp_path / "load-local-20260101T000000Z.csv"

    with SampleWriter(path) as writer:
        writer.write(sample_row(RunContext("run", "load", "local"), m, label=payload.label,
                                users=8, seq=1))

    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == list(FIELDS)
    assert len(rows) == 1
    values = rows[0]
    assert values["outcome"] == "completed"
    assert values["users"] == "8"
    assert values["status"] == "completed"
    assert values["started_at"].endswith("Z")
