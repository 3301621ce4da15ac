"""One line in the runtime's log when the stage's dead-letter queue receives a message.

moto does not evaluate CloudWatch alarms; in AWS the DLQ alarm notifies the stage's SNS
topic. Locally the queue's depth is read every second and each rise is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from localruntime.log import Console
from logctl.alarms import dlq_alarm_name
from logctl.stage import Stage

POLL_SECONDS = 1.0


class DeadLetterWatch:
    def __init__(self, sqs: Any, stage: Callable[[], Stage], console: Console,
                 stop: threading.Event, poll_seconds: float = POLL_SECONDS) -> None:
        self.sqs = sqs
        self.stage = stage
        self.console = console
        self.stop = stop
        self.poll_seconds = poll_seconds
        self._queue: tuple[str, str] | None = None
        self._depth = 0

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="dlq-watch").start()

    def _run(self) -> None:
        while not self.stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the queue may be gone for a moment (reload)
                self._queue = None

    def check(self) -> None:
        stage = self.stage()
        name = stage.dead_letter_queue
        if self._queue is None or self._queue[0] != name:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self._queue = (name, url)
            self._depth = self._read(url)
            return
        depth = self._read(self._queue[1])
        if depth > self._depth:
            received = depth - self._depth
            self.console.info(
                f"ALARM {dlq_alarm_name(stage)}: dead-letter queue {name} received "
                f"{received} message{'s' if received != 1 else ''} ({depth} waiting; "
                f"python -m logctl dlq show --stage {stage.name})")
        self._depth = depth

    def _read(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))
