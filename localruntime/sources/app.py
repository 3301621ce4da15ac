"""The app's event sources, read from the Chalice app object itself.

The app is imported in a child process (with the stage's environment) so a broken app
never takes the runtime down, and a reload sees the code as it is on disk now:

    python -m localruntime.sources.app      # prints the event sources as JSON
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localruntime.children import spawn
from localruntime.log import import_failure

DISCOVERY_TIMEOUT_SECONDS = 60
# CreateEventSourceMapping's limits: botocore refuses a window that is not an int.
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_SECONDS = 300
SQS_BATCH_WITHOUT_WINDOW = 10


class DiscoveryError(Exception):
    """The app could not be imported, or declares nothing the runtime can run; `summary`
    says so in one line."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


@dataclass(frozen=True)
class S3Source:
    function: str
    handler: str
    bucket: str
    events: tuple[str, ...]
    prefix: str | None
    suffix: str | None

    kind = "s3"


@dataclass(frozen=True)
class SqsSource:
    function: str
    handler: str
    queue: str | None
    queue_arn: str | None
    batch_size: int
    batching_window_seconds: int
    maximum_concurrency: int | None

    kind = "sqs"


@dataclass(frozen=True)
class DynamoDBStreamSource:
    """`@app.on_dynamodb_record`: `stream_arn` is None when the app read no ARN (its table
    has no stream yet)."""

    function: str
    handler: str
    stream_arn: str | None
    batch_size: int
    batching_window_seconds: int
    starting_position: str

    kind = "dynamodb"


@dataclass(frozen=True)
class KinesisSource:
    function: str
    handler: str
    stream: str
    batch_size: int
    batching_window_seconds: int
    starting_position: str

    kind = "kinesis"


StreamSource = DynamoDBStreamSource | KinesisSource
Source = S3Source | SqsSource | DynamoDBStreamSource | KinesisSource
_KINDS: dict[str, type[Source]] = {
    kind.kind: kind for kind in (S3Source, SqsSource, DynamoDBStreamSource, KinesisSource)}


@dataclass(frozen=True)
class AppDescription:
    app_name: str
    sources: tuple[Source, ...]
    unsupported: tuple[str, ...]


def describe(app: Any) -> dict[str, Any]:
    """The event sources of a Chalice app, as plain data."""
    from chalice.app import (
        DynamoDBEventConfig,
        KinesisEventConfig,
        S3EventConfig,
        SQSEventConfig,
    )

    sources: list[dict[str, Any]] = []
    unsupported: list[str] = []
    for source in app.event_sources:
        if isinstance(source, S3EventConfig):
            sources.append({"kind": "s3", **asdict(S3Source(
                function=source.name, handler=source.handler_string, bucket=source.bucket,
                events=tuple(source.events), prefix=source.prefix, suffix=source.suffix))})
        elif isinstance(source, SQSEventConfig):
            sources.append({"kind": "sqs", **asdict(SqsSource(
                function=source.name, handler=source.handler_string, queue=source.queue,
                queue_arn=source.queue_arn, batch_size=source.batch_size,
                batching_window_seconds=source.maximum_batching_window_in_seconds,
                maximum_concurrency=source.maximum_concurrency))})
        elif isinstance(source, DynamoDBEventConfig):
            sources.append({"kind": "dynamodb", **asdict(DynamoDBStreamSource(
                function=source.name, handler=source.handler_string,
                stream_arn=source.stream_arn or None, batch_size=source.batch_size,
                batching_window_seconds=source.maximum_batching_window_in_seconds,
                starting_position=source.starting_position))})
        elif isinstance(source, KinesisEventConfig):
            sources.append({"kind": "kinesis", **asdict(KinesisSource(
                function=source.name, handler=source.handler_string, stream=source.stream,
                batch_size=source.batch_size,
                batching_window_seconds=source.maximum_batching_window_in_seconds,
                starting_position=source.starting_position))})
        else:
            unsupported.append(f"{source.name} ({type(source).__name__})")
    return {"app_name": app.app_name, "sources": sources, "unsupported": unsupported}


def parse(data: dict[str, Any]) -> AppDescription:
    sources: list[Source] = []
    for item in data["sources"]:
        fields = {k: v for k, v in item.items() if k != "kind"}
        if item["kind"] == "s3":
            fields["events"] = tuple(fields["events"])
        sources.append(_KINDS[item["kind"]](**fields))
    return AppDescription(data["app_name"], tuple(sources), tuple(data["unsupported"]))


def discover(project: Path, env: dict[str, str]) -> AppDescription:
    """Import `app.py` from `project` in a child process and read its event sources."""
    process = spawn([sys.executable, "-m", "localruntime.sources.app"], cwd=project, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    try:
        stdout, stderr = process.communicate(timeout=DISCOVERY_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise DiscoveryError(f"importing {project / 'app.py'} took longer than "
                             f"{DISCOVERY_TIMEOUT_SECONDS} s") from None
    if process.returncode != 0:
        detail = stderr.strip() or f"exit status {process.returncode}"
        raise DiscoveryError(f"cannot import {project / 'app.py'}:\n{detail}",
                             summary=import_failure(detail, project))
    try:
        description = parse(json.loads(stdout.strip().splitlines()[-1]))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DiscoveryError(f"unexpected event source listing: {exc}") from exc
    if not description.sources:
        raise DiscoveryError(f"{project / 'app.py'} declares no S3, SQS, DynamoDB stream or "
                             "Kinesis event handler")
    refused = [f"{source.function}: {problem}" for source in description.sources
               for problem in mapping_problems(source)]
    if refused:
        raise DiscoveryError(f"{project / 'app.py'}: Lambda would refuse the event source "
                             f"mapping: {'; '.join(refused)}")
    return description


def mapping_problems(source: Source) -> list[str]:
    """What CreateEventSourceMapping would refuse in a source's batch size and window."""
    if isinstance(source, S3Source):
        return []
    problems = []
    window = source.batching_window_seconds
    if type(window) is not int or not 0 <= window <= MAX_BATCHING_WINDOW_SECONDS:
        problems.append(f"maximum_batching_window_in_seconds={window!r} is not a whole number "
                        f"of seconds from 0 to {MAX_BATCHING_WINDOW_SECONDS}")
    if not 1 <= source.batch_size <= MAX_BATCH_SIZE:
        problems.append(f"batch_size={source.batch_size} is not from 1 to {MAX_BATCH_SIZE}")
    elif (isinstance(source, SqsSource) and source.batch_size > SQS_BATCH_WITHOUT_WINDOW
          and not window):
        problems.append(f"batch_size={source.batch_size} needs a batching window of at least "
                        f"1 s (an SQS batch without one holds at most {SQS_BATCH_WITHOUT_WINDOW})")
    return problems


def main() -> int:
    sys.path.insert(0, str(Path.cwd()))
    try:
        from app import app
    except BaseException:  # noqa: BLE001 - any import failure is reported, not raised
        traceback.print_exc()
        return 1
    print(json.dumps(describe(app)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
