"""logctl.dlq against a moto server: peeking leaves messages, redrive moves them intact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from logctl import dlq
from logctl.stage import Stage, client

ATTRIBUTES = {
    "attempt": {"DataType": "Number", "StringValue": "5"},
    "source": {"DataType": "String", "StringValue": "trigger"},
    "trace": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
}


@pytest.fixture
def sqs(stage: Stage) -> Any:
    return client(stage, "sqs")


def url(sqs: Any, name: str) -> str:
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def fill_dlq(stage: Stage, sqs: Any, count: int) -> list[str]:
    bodies = [json.dumps({"job_id": f"job-{i}", "bucket": stage.bucket,
                          "key": f"logs/{i}.ndjson"}) for i in range(count)]
    for body in bodies:
        sqs.send_message(QueueUrl=url(sqs, stage.dead_letter_queue), MessageBody=body,
                         MessageAttributes=ATTRIBUTES)
    return bodies


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete everything in a queue."""
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages", []):
        messages.extend(batch)
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    return messages


def visible(sqs: Any, queue_url: str) -> int:
    return dlq.depth(sqs, queue_url).visible


class SendFails:
    """An SQS client twin whose SendMessageBatch raises; everything else is real."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send_message_batch(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}},
                          "SendMessageBatch")


class SendsOnlyFirst:
    """An SQS client twin whose jobs queue accepts only the first entry of each batch."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        response = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries[:1])
        response["Failed"] = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
                               "Message": "injected"} for e in Entries[1:]]
        return response


def test_show_reports_depth_and_peeks_without_consuming(stage: Stage, sqs: Any) -> None:
    bodies = fill_dlq(stage, sqs, 3)

    depth, peeked = dlq.peek(stage, limit=10, client=sqs)

    assert depth == dlq.Depth(visible=3, in_flight=0)
    assert sorted(m.body for m in peeked) == sorted(bodies)
    assert all(m.receive_count == 1 for m in peeked)
    assert peeked[0].attributes["attempt"] == {"DataType": "Number", "StringValue": "5"}
    dlq_url = url(sqs, stage.dead_letter_queue)
    assert dlq.depth(sqs, dlq_url) == dlq.Depth(visible=3, in_flight=0)
    assert sorted(m["Body"] for m in drain(sqs, dlq_url)) == sorted(bodies)


def test_show_peeks_at_most_limit_messages(stage: Stage, sqs: Any) -> None:
    fill_dlq(stage, sqs, 13)

    depth, peeked = dlq.peek(stage, limit=12, client=sqs)

    assert depth.visible == 13
    assert len(peeked) == 12
    assert len({m.message_id for m in peeked}) == 12
    assert visible(sqs, url(sqs, stage.dead_letter_queue)) == 13


def test_redrive_moves_every_message_with_body_and_attributes(stage: Stage, sqs: Any) -> None:
    bodies = fill_dlq(stage, sqs, 12)

    result = dlq.redrive(stage, client=sqs)

    assert result.moved == 12 and result.not_deleted == []
    dlq_url = url(sqs, stage.dead_letter_queue)
    assert dlq.depth(sqs, dlq_url) == dlq.Depth(visible=0, in_flight=0)
    moved = drain(sqs, url(sqs, stage.jobs_queue))
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    for message in moved:
        assert message["MessageAttributes"] == ATTRIBUTES


def test_redrive_max_moves_only_that_many(stage: Stage, sqs: Any) -> None:
    fill_dlq(stage, sqs, 5)

    result = dlq.redrive(stage, max_messages=2, client=sqs)

    assert result.moved == 2
    assert len(drain(sqs, url(sqs, stage.jobs_queue))) == 2
    assert visible(sqs, url(sqs, stage.dead_letter_queue)) == 3


def test_redrive_loses_nothing_when_the_send_fails(stage: Stage, sqs: Any) -> None:
    bodies = fill_dlq(stage, sqs, 4)

    with pytest.raises(dlq.RedriveError, match="ServiceUnavailable"):
        dlq.redrive(stage, client=SendFails(sqs))

    dlq_url = url(sqs, stage.dead_letter_queue)
    assert visible(sqs, dlq_url) == 4
    assert sorted(m["Body"] for m in drain(sqs, dlq_url)) == sorted(bodies)
    assert drain(sqs, url(sqs, stage.jobs_queue)) == []


def test_redrive_keeps_what_the_jobs_queue_refused(stage: Stage, sqs: Any) -> None:
    bodies = fill_dlq(stage, sqs, 4)

    with pytest.raises(dlq.RedriveError, match=r"refused 3 messages.*after 1 moved"):
        dlq.redrive(stage, client=SendsOnlyFirst(sqs))

    moved = [m["Body"] for m in drain(sqs, url(sqs, stage.jobs_queue))]
    kept = [m["Body"] for m in drain(sqs, url(sqs, stage.dead_letter_queue))]
    assert len(moved) == 1 and len(kept) == 3
    assert sorted(moved + kept) == sorted(bodies)


def test_cli_show_prints_depth_receive_count_and_body(
        stage: Stage, sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bodies = fill_dlq(stage, sqs, 1)

    assert dlq.main(["show", "--endpoint-url", stage.endpoint_url or ""]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"{stage.dead_letter_queue}: 1 waiting, 0 in flight\n")
    assert "receives=1" in out
    assert "attempt (Number): 5" in out and "trace (Binary): <binary>" in out
    assert f"body: {bodies[0]}" in out


def test_cli_redrive_prints_how_many_moved(stage: Stage, sqs: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fill_dlq(stage, sqs, 3)

    assert dlq.main(["redrive", "--endpoint-url", stage.endpoint_url or ""]) == 0

    assert capsys.readouterr().out.strip() == (
        f"moved 3 messages from {stage.dead_letter_queue} to {stage.jobs_queue}")


def test_cli_redrive_on_an_empty_queue_moves_nothing(
        stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    assert dlq.main(["redrive", "--max", "5", "--endpoint-url", stage.endpoint_url or ""]) == 0
    assert capsys.readouterr().out.startswith("moved 0 messages")


def test_cli_requires_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        dlq.main([])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_cli_missing_queue_suggests_provisioning(stage: Stage, sqs: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sqs.delete_queue(QueueUrl=url(sqs, stage.dead_letter_queue))

    assert dlq.main(["show", "--endpoint-url", stage.endpoint_url or ""]) == 1

    assert "logctl.provision" in capsys.readouterr().err
