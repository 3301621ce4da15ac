"""The runtime says so, once per arrival, when the dead-letter queue receives messages."""

from __future__ import annotations

import io
import threading
from typing import Any

from localruntime.console.dlqwatch import DeadLetterWatch
from localruntime.log import Console
from logctl.stage import load_stage


class FakeSqs:
    def __init__(self) -> None:
        self.depth = 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"http://q/{QueueName}"}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": str(self.depth)}}


def test_each_rise_of_the_dead_letter_queue_is_one_line() -> None:
    stage = load_stage("local", endpoint_url="http://unused")
    sqs, out = FakeSqs(), io.StringIO()
    sqs.depth = 2  # messages from before the runtime started are not news
    watch = DeadLetterWatch(sqs, lambda: stage, Console(out, status_line=False),
                            threading.Event())
    watch.check()
    assert out.getvalue() == ""
    for depth in (3, 3, 5, 0, 1):
        sqs.depth = depth
        watch.check()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "ALARM log-pipeline-local-jobs-dlq-not-empty" in lines[0]
    assert "received 1 message (3 waiting" in lines[0]
    assert "received 2 messages (5 waiting" in lines[1]
    assert "received 1 message (1 waiting" in lines[2]
