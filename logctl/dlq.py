"""Inspect the dead-letter queue and move its messages back to the jobs queue.

    python -m logctl.dlq show [--stage local] [--limit 10]
    python -m logctl.dlq redrive [--stage local] [--max N]

`show` peeks: messages are received with a short visibility timeout, released at
once and never deleted (peeking does raise their ApproximateReceiveCount).
`redrive` receives, sends to the jobs queue, and deletes from the dead-letter
queue only what the jobs queue accepted, so a failure loses nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from logctl.cli import LogctlError, positive_int, run, stage_from, stage_options
from logctl.stage import Stage, StageLike, as_stage
from logctl.stage import client as make_client

BATCH = 10
PEEK_VISIBILITY_SECONDS = 5
REDRIVE_VISIBILITY_SECONDS = 30
POLL_SECONDS = 1
BODY_PREVIEW_CHARS = 500


class RedriveError(LogctlError):
    """The jobs queue refused messages; they stay in the dead-letter queue."""


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int


@dataclass(frozen=True)
class Peeked:
    message_id: str
    body: str
    receive_count: int
    sent_at: str
    attributes: dict[str, dict[str, Any]]


@dataclass
class Redrive:
    moved: int = 0
    not_deleted: list[str] = field(default_factory=list)


def queue_url(sqs: Any, name: str) -> str:
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def depth(sqs: Any, url: str) -> Depth:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return Depth(int(attrs.get("ApproximateNumberOfMessages", 0)),
                 int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)))


def receive(sqs: Any, url: str, count: int, visibility: int) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=POLL_SECONDS,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again; if this fails they reappear on their own."""
    for start in range(0, len(messages), BATCH):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                   for i, m in enumerate(messages[start:start + BATCH])]
        try:
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except (BotoCoreError, ClientError):
            return


def message_attributes(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Message attributes in the shape SendMessage accepts."""
    kept = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: v for k, v in value.items() if k in kept}
            for name, value in message.get("MessageAttributes", {}).items()}


def sent_at(message: dict[str, Any]) -> str:
    millis = message.get("Attributes", {}).get("SentTimestamp")
    if millis is None:
        return "-"
    moment = datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def peek(stage: StageLike, limit: int = 10, client: Any = None) -> tuple[Depth, list[Peeked]]:
    """The queue depth and up to `limit` messages, left in the queue."""
    stage = as_stage(stage)
    sqs = client or make_client(stage, "sqs")
    url = queue_url(sqs, stage.dead_letter_queue)
    before = depth(sqs, url)
    held: list[dict[str, Any]] = []
    seen: dict[str, Peeked] = {}
    try:
        while len(seen) < limit:
            batch = receive(sqs, url, min(BATCH, limit - len(seen)), PEEK_VISIBILITY_SECONDS)
            if not batch:
                break
            held.extend(batch)
            for m in batch:
                seen.setdefault(m["MessageId"], Peeked(
                    message_id=m["MessageId"],
                    body=m["Body"],
                    receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                    sent_at=sent_at(m),
                    attributes=message_attributes(m),
                ))
    finally:
        release(sqs, url, held)
    return before, list(seen.values())


def redrive(stage: StageLike, max_messages: int | None = None, client: Any = None) -> Redrive:
    """Move messages from the dead-letter queue to the jobs queue, body and attributes intact.

    At most the messages the DLQ held when the redrive began: a message that fails again
    and comes back during the redrive waits for the next one instead of circling forever.
    """
    stage = as_stage(stage)
    sqs = client or make_client(stage, "sqs")
    dlq_url = queue_url(sqs, stage.dead_letter_queue)
    jobs_url = queue_url(sqs, stage.jobs_queue)
    result = Redrive()
    waiting = depth(sqs, dlq_url)
    held = waiting.visible + waiting.in_flight
    max_messages = held if max_messages is None else min(max_messages, held)
    while max_messages is None or result.moved < max_messages:
        want = BATCH if max_messages is None else min(BATCH, max_messages - result.moved)
        batch = receive(sqs, dlq_url, want, REDRIVE_VISIBILITY_SECONDS)
        if not batch:
            break
        entries = []
        for i, m in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
            if attributes := message_attributes(m):
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        try:
            response = sqs.send_message_batch(QueueUrl=jobs_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            release(sqs, dlq_url, batch)
            raise RedriveError(f"sending to {stage.jobs_queue} failed after {result.moved} "
                               f"moved; the rest stay in {stage.dead_letter_queue}: {exc}") from exc
        accepted = {e["Id"] for e in response.get("Successful", [])}
        sent = [m for i, m in enumerate(batch) if str(i) in accepted]
        _delete(sqs, dlq_url, sent, result)
        result.moved += len(sent)
        refused = response.get("Failed", [])
        if refused:
            release(sqs, dlq_url, [m for i, m in enumerate(batch) if str(i) not in accepted])
            reasons = sorted({f"{f.get('Code')}: {f.get('Message', '')}" for f in refused})
            raise RedriveError(f"{stage.jobs_queue} refused {len(refused)} messages "
                               f"({'; '.join(reasons)}) after {result.moved} moved; "
                               f"they stay in {stage.dead_letter_queue}")
    return result


def _delete(sqs: Any, url: str, messages: list[dict[str, Any]], result: Redrive) -> None:
    """Delete moved messages; one that cannot be deleted is now in both queues."""
    if not messages:
        return
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
               for i, m in enumerate(messages)]
    try:
        failed = sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
        failed_ids = {int(f["Id"]) for f in failed}
    except (BotoCoreError, ClientError):
        failed_ids = set(range(len(messages)))
    result.not_deleted.extend(messages[i]["MessageId"] for i in sorted(failed_ids))


def show_lines(stage: Stage, current: Depth, messages: list[Peeked]) -> list[str]:
    lines = [f"{stage.dead_letter_queue}: {current.visible} waiting, "
             f"{current.in_flight} in flight"]
    for n, m in enumerate(messages, 1):
        lines.append(f"#{n} {m.message_id}  receives={m.receive_count}  sent={m.sent_at}")
        for name, value in sorted(m.attributes.items()):
            shown = value.get("StringValue", "<binary>")
            lines.append(f"    {name} ({value.get('DataType')}): {shown}")
        body = m.body if len(m.body) <= BODY_PREVIEW_CHARS else (
            m.body[:BODY_PREVIEW_CHARS] + f"... ({len(m.body)} chars)")
        lines.append(f"    body: {body}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{show,redrive}")
    show = commands.add_parser("show", parents=[stage_options()],
                               help="print the depth and peek at messages")
    show.add_argument("--limit", type=positive_int, default=10,
                      help="messages to peek at (default 10)")
    move = commands.add_parser("redrive", parents=[stage_options()],
                               help="move messages back to the jobs queue")
    move.add_argument("--max", type=positive_int, default=None, dest="max_messages",
                      help="move at most N messages (default: all)")
    args = parser.parse_args(argv)

    def body() -> int:
        stage = stage_from(args)
        if args.command == "show":
            current, messages = peek(stage, args.limit)
            print("\n".join(show_lines(stage, current, messages)))
            return 0
        result = redrive(stage, args.max_messages)
        print(f"moved {result.moved} messages from {stage.dead_letter_queue} "
              f"to {stage.jobs_queue}")
        if result.not_deleted:
            raise LogctlError(f"{len(result.not_deleted)} moved messages could not be deleted "
                              f"from {stage.dead_letter_queue} and are now in both queues: "
                              f"{', '.join(result.not_deleted)}")
        return 0

    return run("dlq", body)


if __name__ == "__main__":
    sys.exit(main())
