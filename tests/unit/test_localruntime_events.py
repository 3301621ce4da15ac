"""The local runtime's pure parts: Lambda event shapes, batch responses, settings, moto fixes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from localruntime.endpoint.motofixes import (
    function_name_of,
    next_sequencer,
    normalise_filter_rule_names,
)
from localruntime.settings import (
    RuntimeSettings,
    SettingsError,
    endpoint_from_environment,
    parse_assignment,
    parse_positive,
)
from localruntime.sources.app import describe, parse
from localruntime.sources.events import batch_item_failures, s3_event, sqs_event

ARN = "arn:aws:sqs:us-east-1:123456789012:jobs"
ROOT = Path(__file__).resolve().parents[2]


def received(message_id: str = "m-1", **extra: object) -> dict:
    return {"MessageId": message_id, "ReceiptHandle": f"rh-{message_id}", "Body": "hello",
            "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
            "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1714560000000",
                           "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1714560000001",
                           "NotASystemAttribute": "x"},
            **extra}


def test_sqs_event_records_look_like_lambdas() -> None:
    # GIVEN a received message with string and binary attributes
    message = received(MessageAttributes={
        "origin": {"DataType": "String", "StringValue": "test"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    # WHEN it becomes an event
    record = sqs_event([message], ARN, "us-east-1")["Records"][0]
    # THEN it has Lambda's field names and shapes
    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh-m-1"
    assert record["body"] == "hello"
    assert record["md5OfBody"] == message["MD5OfBody"]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs", ARN, "us-east-1")
    assert record["attributes"] == {
        "ApproximateReceiveCount": "2", "SentTimestamp": "1714560000000", "SenderId": "AIDA",
        "ApproximateFirstReceiveTimestamp": "1714560000001"}
    assert record["messageAttributes"]["origin"] == {
        "stringValue": "test", "stringListValues": [], "binaryListValues": [],
        "dataType": "String"}
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"
    json.dumps(record)


def test_s3_event_skips_test_events_and_rejects_garbage() -> None:
    event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}
    assert s3_event(json.dumps(event)) == event
    assert s3_event(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) is None
    for body in ("not json", "[]", '{"Records": []}', '{"other": 1}'):
        with pytest.raises(ValueError, match="not an S3 notification"):
            s3_event(body)


@pytest.mark.parametrize(("result", "expected"), [
    (None, []),
    ({"statusCode": 200}, []),
    ({"batchItemFailures": []}, []),
    ({"batchItemFailures": None}, []),
    ({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["b"]),
    ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, ["a", "b"]),
    ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
    ({"batchItemFailures": [{}]}, None),
    ({"batchItemFailures": "a"}, None),
])
def test_partial_batch_responses(result: object, expected: list[str] | None) -> None:
    assert batch_item_failures(result, ["a", "b"]) == expected


def test_filter_rule_names_are_normalised_in_any_case() -> None:
    body = ("<FilterRule><Name>Prefix</Name><Value>logs/</Value></FilterRule>"
            "<FilterRule><Name> SUFFIX </Name><Value>.gz</Value></FilterRule>"
            "<Name>Other</Name>")
    expected = ("<FilterRule><Name>prefix</Name><Value>logs/</Value></FilterRule>"
                "<FilterRule><Name>suffix</Name><Value>.gz</Value></FilterRule>"
                "<Name>Other</Name>")
    assert normalise_filter_rule_names(body) == expected
    assert normalise_filter_rule_names(body.encode()) == expected.encode()


def test_sequencers_increase_and_function_names_come_from_arns() -> None:
    values = [next_sequencer() for _ in range(100)]
    assert values == sorted(values) and len(set(values)) == 100
    assert function_name_of("worker") == "worker"
    assert function_name_of("arn:aws:lambda:us-east-1:1:function:worker") == "worker"
    assert function_name_of("arn:aws:lambda:us-east-1:1:function:worker:live") == "worker"


def test_command_line_values_are_checked() -> None:
    assert parse_assignment("A=b=c", "--set") == ("A", "b=c")
    assert parse_assignment("A=", "--set") == ("A", "")
    for bad in ("A", "=b", ""):
        with pytest.raises(SettingsError, match="NAME=VALUE"):
            parse_assignment(bad, "--set")
    assert parse_positive("2.5", "--timeout", float) == 2.5
    for bad in ("0", "-1", "x", "inf", "nan"):
        with pytest.raises(SettingsError):
            parse_positive(bad, "--timeout", float)


def test_endpoint_comes_from_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert endpoint_from_environment() == ("127.0.0.1", 4566)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5001")
    assert endpoint_from_environment() == ("127.0.0.1", 5001)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://example.com")
    with pytest.raises(SettingsError, match="plain"):
        endpoint_from_environment()


def test_overrides_reach_the_stage_and_the_handler_environment() -> None:
    settings = RuntimeSettings(project=ROOT, stage_name="local", host="127.0.0.1", port=5001,
                               overrides={"RETRY_BASE_SECONDS": "0.1"},
                               timeouts={"worker": 5.0}, concurrency={"trigger": 3})
    stage = settings.stage()
    assert stage.environment["RETRY_BASE_SECONDS"] == "0.1"
    assert stage.function_timeout("worker") == 5
    worker = settings.function("worker", stage)
    # The local stage reserves 4 concurrent executions for the worker.
    assert (worker.timeout_seconds, worker.concurrency) == (5.0, 4)
    assert settings.function("trigger", stage).concurrency == 3
    plain = RuntimeSettings(project=ROOT, stage_name="local", host="127.0.0.1", port=5001)
    assert plain.function("trigger", stage).concurrency == 2
    assert plain.function("trigger", stage, declared_concurrency=5).concurrency == 5
    env = settings.handler_environment(stage, worker)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5001"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "log-pipeline-local-worker"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "5"
    assert env["RETRY_BASE_SECONDS"] == "0.1"
    with pytest.raises(SettingsError, match="stage 'nope'"):
        RuntimeSettings(project=ROOT, stage_name="nope", host="h", port=1).stage()


def test_event_sources_are_read_from_the_app_object() -> None:
    from chalice import Chalice

    app = Chalice(app_name="demo")

    @app.on_s3_event(bucket="b", events=["s3:ObjectCreated:*"], prefix="in/", suffix=".gz")
    def ingest(event: object) -> None:
        return None

    @app.on_sqs_message(queue="q", batch_size=5, maximum_batching_window_in_seconds=2)
    def consume(event: object) -> None:
        return None

    @app.schedule("rate(1 minute)")
    def tick(event: object) -> None:
        return None

    arn = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-01T00:00:00.000"

    @app.on_dynamodb_record(stream_arn=arn, batch_size=50, starting_position="TRIM_HORIZON",
                            maximum_batching_window_in_seconds=3)
    def rollups(event: object) -> None:
        return None

    @app.on_kinesis_record(stream="events", batch_size=500)
    def streamed(event: object) -> None:
        return None

    @app.on_dynamodb_record(stream_arn="")
    def unresolved(event: object) -> None:
        return None

    description = parse(json.loads(json.dumps(describe(app))))
    s3, sqs, ddb, kinesis, empty = description.sources
    assert (ddb.kind, ddb.function, ddb.stream_arn, ddb.batch_size, ddb.starting_position,
            ddb.batching_window_seconds) == ("dynamodb", "rollups", arn, 50, "TRIM_HORIZON", 3)
    assert (kinesis.kind, kinesis.stream, kinesis.batch_size, kinesis.starting_position,
            kinesis.batching_window_seconds) == ("kinesis", "events", 500, "LATEST", 0)
    assert empty.stream_arn is None
    assert (s3.function, s3.bucket, s3.events, s3.prefix, s3.suffix) == (
        "ingest", "b", ("s3:ObjectCreated:*",), "in/", ".gz")
    assert (sqs.function, sqs.queue, sqs.batch_size, sqs.batching_window_seconds) == (
        "consume", "q", 5, 2)
    assert description.unsupported == ("tick (ScheduledEventConfig)",)
    assert description.app_name == "demo"


def test_batch_sizes_and_windows_lambda_would_refuse_are_refused() -> None:
    from localruntime.sources.app import (
        DynamoDBStreamSource,
        KinesisSource,
        SqsSource,
        mapping_problems,
    )

    def stream(batch: int, window: object) -> DynamoDBStreamSource:
        return DynamoDBStreamSource("f", "app.f", "arn", batch, window, "LATEST")  # type: ignore[arg-type]

    assert mapping_problems(stream(100, 1)) == []
    assert mapping_problems(KinesisSource("f", "app.f", "s", 10_000, 300, "LATEST")) == []
    assert "whole number of seconds" in mapping_problems(stream(100, 0.5))[0]
    assert "whole number of seconds" in mapping_problems(stream(100, 301))[0]
    assert "batch_size=0" in mapping_problems(stream(0, 0))[0]
    assert "batch_size=10001" in mapping_problems(stream(10_001, 0))[0]
    sqs = SqsSource("f", "app.f", "q", None, 11, 0, None)
    assert "at least 1 s" in mapping_problems(sqs)[0]
    assert mapping_problems(SqsSource("f", "app.f", "q", None, 11, 1, None)) == []
