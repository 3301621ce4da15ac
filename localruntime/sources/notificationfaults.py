"""Injected S3 notification faults: a notification delivered twice, or late.

S3 delivers event notifications at least once and not always at once. The runtime's S3
poller asks `NotificationFaults` about each notification it receives: a delayed one is
sent back to the notification queue with a delay (and not invoked now); a duplicated one
is invoked now and also sent back, to be delivered again later.
"""

from __future__ import annotations

from typing import Any

from localruntime.faults import NOTIFICATION_DELAY_MAX_SECONDS, FaultSwitch
from localruntime.log import Console
from localruntime.sources.events import s3_event


def _keys(body: str) -> list[str]:
    try:
        event = s3_event(body)
    except ValueError:
        return []
    records = (event or {}).get("Records", [])
    return [str(r.get("s3", {}).get("object", {}).get("key")) for r in records]


class NotificationFaults:
    def __init__(self, faults: FaultSwitch, function: str, sqs: Any, queue_url: str,
                 console: Console) -> None:
        self.dice = faults.dice(f"notifications:{function}")
        self.function = function
        self.sqs = sqs
        self.queue_url = queue_url
        self.console = console

    def _send_later(self, kind: str, message: dict[str, Any], low: float) -> None:
        delay = int(self.dice.uniform(low, NOTIFICATION_DELAY_MAX_SECONDS))
        body = message.get("Body", "")
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay)
        self.console.record(type="fault", kind=kind, function=self.function,
                            delay_seconds=delay, keys=_keys(body))

    def delayed(self, message: dict[str, Any]) -> bool:
        """True when this notification is to be delivered later instead of now."""
        if not self.dice.roll("s3_delay"):
            return False
        self._send_later("s3_delay", message, 1)
        return True

    def duplicate(self, message: dict[str, Any]) -> None:
        """Maybe deliver this notification a second time, later."""
        if self.dice.roll("s3_duplicate"):
            self._send_later("s3_duplicate", message, 0)
