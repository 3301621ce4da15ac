"""Stream log events into a stage's ingest stream (Kinesis PutRecords).

    python -m logctl send [--stage local] FILE        # a file of NDJSON lines
    some-service | python -m logctl send -             # stdin, until it closes

Lines are packed whole into Kinesis records (at most 1 MiB with the partition key; blank
lines are left out), 500 records or 5 MiB a PutRecords call; a record Kinesis refuses
(throttling) is put again with back-off, up to 8 times. Progress goes to stderr.

Exit status: 0 when every line was put; 1 when some could not be (their line numbers are
printed), a line does not fit in a record (the lines before it were put), or AWS fails;
2 for a missing file or an unknown stage.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.stream import (
    LineTooLarge,
    PackedRecord,
    numbered_lines,
    pack,
    put_requests,
)
from chalicelib.ingest import EventProducer, PutOutcome, random_partition_key
from logctl.cli import LogctlError, describe_aws_error, run, stage_from, stage_options
from logctl.progress import MIB, Progress
from logctl.stage import client as make_client

READ_BYTES = MIB


@dataclass
class Sent:
    lines: int = 0
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    through_line: int = 0  # the last line of the last request put


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(READ_BYTES):
        yield chunk


def send(stream: IO[bytes], producer: EventProducer, progress: Progress | None = None,
         clock: Any = time.monotonic) -> tuple[Sent, PutOutcome]:
    """Put every line of `stream`; returns what was sent and the records that were not."""
    started = clock()
    sent, unsent = Sent(), PutOutcome()
    too_large: list[LineTooLarge] = []

    def records_until_too_large() -> Iterator[PackedRecord]:
        """The packed records; a line too large ends them, once the ones before are put."""
        try:
            yield from pack(numbered_lines(chunks(stream)), random_partition_key)
        except LineTooLarge as exc:
            too_large.append(exc)

    try:
        for request in put_requests(records_until_too_large()):
            outcome = producer.put(request)
            unsent.failed += outcome.failed
            unsent.error = outcome.error or unsent.error
            sent.lines += outcome.lines_sent
            sent.records += len(outcome.sent)
            sent.bytes += sum(len(r.data) for r in outcome.sent)
            sent.through_line = request[-1].last_line
            if progress is not None:
                elapsed = max(clock() - started, 1e-9)
                progress.update(f"send: {sent.lines:,} lines in {sent.records:,} records, "
                                f"{sent.bytes / MIB:,.1f} MiB, {sent.lines / elapsed:,.0f} "
                                "lines/s")
    except (BotoCoreError, ClientError) as exc:
        raise LogctlError(f"{describe_aws_error(exc)}: stopped after line "
                          f"{sent.through_line:,} (resume with: tail -n "
                          f"+{sent.through_line + 1})") from exc
    if too_large:
        exc = too_large[0]
        raise LogctlError(f"{exc}: stopped there; the {sent.lines:,} lines before it were "
                          f"put (resume with: tail -n +{exc.line_number + 1})")
    sent.seconds = clock() - started
    return sent, unsent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logctl send", description=__doc__, parents=[stage_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="FILE|-", help="NDJSON file, or - for stdin")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.source != "-":
            path = Path(args.source)
            if not path.is_file():
                raise LogctlError(f"no such file: {path}", status=2)
        stage = stage_from(args)
        producer = EventProducer(make_client(stage, "kinesis"), stage.ingest_stream)
        progress = Progress()
        try:
            if args.source == "-":
                sent, unsent = send(sys.stdin.buffer, producer, progress)
            else:
                with open(args.source, "rb") as stream:
                    sent, unsent = send(stream, producer, progress)
        finally:
            progress.clear()
        rate = sent.lines / sent.seconds if sent.seconds else 0.0
        print(f"sent {sent.lines:,} lines in {sent.records:,} records to {stage.ingest_stream} "
              f"({sent.bytes / MIB:,.1f} MiB, {sent.seconds:.1f} s, {rate:,.0f} lines/s)",
              flush=True)
        if unsent.failed:
            raise LogctlError(f"{sum(r.lines for r in unsent.failed):,} lines were not put "
                              f"after retries ({unsent.error}): lines {unsent.unsent_lines()}")
        return 0

    return run("send", body, (OSError,))


if __name__ == "__main__":
    sys.exit(main())
