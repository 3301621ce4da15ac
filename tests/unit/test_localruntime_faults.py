"""Fault plans, their draws, the endpoint's choice of calls and answers, and the
notification faults."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from localruntime.endpoint.faults import FaultingApp, error_answer, operation
from localruntime.faults import (
    ENDPOINT_KINDS,
    KINDS,
    POLLER_APP_ID,
    FaultPlan,
    FaultSpecError,
    FaultSwitch,
    count_faults,
)
from localruntime.log import Console
from localruntime.sources.notificationfaults import NotificationFaults

SIGV4 = ("AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/{service}/aws4_request, "
         "SignedHeaders=host, Signature=x")


def environ(service: str, method: str = "POST", path: str = "/", query: str = "",
            target: str = "", agent: str = "Boto3/1 app/localruntime-handler") -> dict:
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
           "HTTP_AUTHORIZATION": SIGV4.format(service=service), "HTTP_USER_AGENT": agent,
           "CONTENT_TYPE": "", "wsgi.input": io.BytesIO(b"")}
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
    return env


def test_parse_sets_rates_and_rejects_what_is_not_a_fault() -> None:
    plan = FaultPlan.parse(["all=0.1", "kill=0.5,s3_delay=0"], seed=4)
    assert plan.rate("kill") == 0.5 and plan.rate("s3_delay") == 0.0
    assert all(plan.rate(kind) == 0.1 for kind in ENDPOINT_KINDS)
    assert plan.active and plan.seed == 4
    assert not FaultPlan.parse([]).active
    for bad in ("kill", "kill=2", "kill=x", "explode=0.1"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse([bad])


def test_the_same_seed_and_role_give_the_same_draws() -> None:
    plan = FaultPlan({"kill": 0.5}, seed=9)

    def draws(role: str) -> list[bool]:
        dice = plan.dice(role)
        return [dice.roll("kill") for _ in range(50)]

    assert draws("a") == draws("a")
    assert draws("a") != draws("b")
    assert any(draws("a")) and not all(draws("a"))
    assert FaultPlan.from_json(plan.to_json()) == plan


def test_a_switch_changes_the_rates_its_dice_draw_with_and_keeps_their_stream() -> None:
    switch = FaultSwitch(FaultPlan({"kill": 1.0}, seed=2))
    dice = switch.dice("kill:worker:1")
    assert dice.roll("kill")
    assert switch.set(switch.plan.cleared()) == 2
    assert not any(dice.roll("kill") for _ in range(100))
    switch.set(switch.plan.updated(["kill=1", "s3_get_500=0.5"]))
    assert dice.roll("kill") and switch.plan.rate("s3_get_500") == 0.5
    assert switch.plan.seed == 2 and switch.version == 3
    assert switch.plan.describe() == "s3_get_500=0.5, kill=1"
    assert switch.plan.cleared().describe() == "none"


def test_updated_keeps_the_other_kinds_and_names_its_option_in_errors() -> None:
    plan = FaultPlan({"kill": 0.5, "s3_delay": 0.1}).updated(["kill=0", "all=0.2", "kill=1"])
    assert plan.rate("kill") == 1.0 and plan.rate("s3_delay") == 0.2
    with pytest.raises(FaultSpecError, match=r"^set: unknown kind 'explode'"):
        plan.updated(["explode=1"])


def test_waiting_for_a_change_returns_at_once_when_the_version_is_already_another() -> None:
    switch = FaultSwitch()
    assert switch.wait_for_change(after=1, timeout=0) == (1, FaultPlan())
    switch.set(FaultPlan({"kill": 1.0}))
    assert switch.wait_for_change(after=1, timeout=60) == (2, FaultPlan({"kill": 1.0}))


def test_count_faults_reads_both_line_styles() -> None:
    lines = ['{"ts":"t","type":"fault","kind":"ddb_500","operation":"PutItem"}',
             '{"ts": "t", "type": "fault", "kind": "kill", "pid": 3}',
             '{"ts": "t", "type": "invocation", "kind": "kill"}', "localruntime: ready"]
    assert count_faults(lines) == {"ddb_500": 1, "kill": 1}


@pytest.mark.parametrize(("env", "expected"), [
    (environ("s3", "GET", "/bucket/logs/a.ndjson"), ("s3", "GetObject")),
    (environ("s3", "GET", "/bucket/logs/a.ndjson", "versionId=3"), ("s3", "GetObject")),
    (environ("s3", "GET", "/bucket/", "list-type=2"), ("s3", "")),
    (environ("s3", "GET", "/bucket/logs/a.ndjson", "tagging"), ("s3", "")),
    (environ("s3", "PUT", "/bucket/logs/a.ndjson"), ("s3", "")),
    (environ("dynamodb", target="DynamoDB_20120810.PutItem"), ("dynamodb", "PutItem")),
    (environ("sqs", target="AmazonSQS.SendMessage"), ("sqs", "SendMessage")),
])
def test_operation_names_the_calls_faults_apply_to(env: dict, expected: tuple) -> None:
    assert operation(env) == expected


def test_a_query_protocol_action_is_read_and_the_body_kept() -> None:
    env = environ("sqs")
    env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    env["wsgi.input"] = io.BytesIO(b"Action=ChangeMessageVisibility&QueueUrl=q")
    assert operation(env) == ("sqs", "ChangeMessageVisibility")
    assert env["wsgi.input"].read() == b"Action=ChangeMessageVisibility&QueueUrl=q"


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("s3_get_500", "500", b"<Code>InternalError</Code>"),
    ("s3_get_slowdown", "503", b"<Code>SlowDown</Code>"),
    ("ddb_throughput", "400", b"#ProvisionedThroughputExceededException"),
    ("ddb_500", "500", b"#InternalServerError"),
])
def test_error_answers_are_the_ones_aws_gives(kind: str, status: str, code: bytes) -> None:
    line, _, body, _ = error_answer(kind, environ("x"))
    assert line.startswith(status) and code in body


def test_only_the_handlers_calls_meet_faults(capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def moto(env: dict, start_response) -> list[bytes]:
        calls.append(env)
        start_response("200 OK", [])
        return [b"ok"]

    app = FaultingApp(moto, FaultSwitch(FaultPlan({"ddb_500": 1.0})))
    statuses = []
    start = lambda status, headers: statuses.append(status)  # noqa: E731
    assert app(environ("dynamodb", target="DynamoDB_20120810.PutItem", agent="aws-cli/2"),
               start) == [b"ok"]
    assert app(environ("dynamodb", target="DynamoDB_20120810.GetItem"), start) == [b"ok"]
    answer = app(environ("dynamodb", target="DynamoDB_20120810.UpdateItem"), start)
    assert len(calls) == 2 and statuses[-1].startswith("500")
    assert b"InternalServerError" in answer[0]
    fault = json.loads(capsys.readouterr().err)
    assert fault["kind"] == "ddb_500" and fault["operation"] == "UpdateItem"


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_message(self, **params) -> dict:
        self.sent.append(params)
        return {}


S3_BODY = json.dumps({"Records": [{"eventName": "ObjectCreated:Put",
                                   "s3": {"object": {"key": "logs/a.ndjson"}}}]})


@pytest.mark.parametrize("kind", ["s3_delay", "s3_duplicate"])
def test_a_notification_is_sent_again_later_and_logged(kind: str) -> None:
    console = Console(io.StringIO(), status_line=False)
    sqs = FakeSqs()
    faults = NotificationFaults(FaultSwitch(FaultPlan({kind: 1.0})), "trigger", sqs, "url",
                                console)
    delayed = faults.delayed({"Body": S3_BODY})
    if kind == "s3_duplicate":
        assert not delayed
        faults.duplicate({"Body": S3_BODY})
    assert delayed == (kind == "s3_delay")
    [sent] = sqs.sent
    assert sent["MessageBody"] == S3_BODY and 0 <= sent["DelaySeconds"] <= 20
    record = json.loads(console.stream.getvalue())
    assert record["kind"] == kind and record["keys"] == ["logs/a.ndjson"]


def test_every_kind_is_documented() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "guarantees.md").read_text()
    assert all(f"| `{kind}` |" in page for kind in KINDS)


@pytest.mark.parametrize(("kind", "service", "status", "code"), [
    ("stream_read_500", "kinesis", "500", b'"InternalFailureException"'),
    ("stream_read_500", "dynamodb", "500", b"#InternalServerError"),
    ("stream_read_throttle", "kinesis", "400", b'"ProvisionedThroughputExceededException"'),
    ("stream_read_throttle", "dynamodb", "400", b"#LimitExceededException"),
    ("stream_iterator_expired", "kinesis", "400", b'"ExpiredIteratorException"'),
    ("stream_iterator_expired", "dynamodb", "400", b"#ExpiredIteratorException"),
])
def test_stream_read_errors_are_the_ones_aws_gives(kind: str, service: str, status: str,
                                                   code: bytes) -> None:
    line, _, body, _ = error_answer(kind, environ(service))
    assert line.startswith(status) and code in body


def test_only_the_stream_pollers_reads_meet_stream_faults() -> None:
    calls = []

    def moto(env: dict, start_response) -> list[bytes]:
        calls.append(env)
        start_response("200 OK", [])
        return [b"ok"]

    app = FaultingApp(moto, FaultSwitch(FaultPlan({"stream_read_500": 1.0, "ddb_500": 1.0})))
    statuses: list[str] = []
    start = lambda status, headers: statuses.append(status)  # noqa: E731
    poller = f"Botocore/1.4 app/{POLLER_APP_ID}"
    target = "Kinesis_20131202.GetRecords"
    assert app(environ("kinesis", target=target), start) == [b"ok"]
    assert app(environ("dynamodb", target="DynamoDB_20120810.PutItem", agent=poller),
               start) == [b"ok"]
    app(environ("kinesis", target=target, agent=poller), start)
    app(environ("dynamodb", target="DynamoDBStreams_20120810.GetRecords", agent=poller),
        start)
    assert len(calls) == 2 and statuses[-2:] == ["500 Internal Server Error"] * 2
