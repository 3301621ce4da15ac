"""What every logctl command shares: the stage options and one-line error reports."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from logctl.stage import ENDPOINT_FILE, LOCAL_ENDPOINT, Stage, StageError, load_stage

MISSING_RESOURCE_CODES = {
    "NoSuchBucket",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "ResourceNotFoundException",
}


class LogctlError(Exception):
    """A failure the command reports as one line on stderr, exiting with `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


STAGE_HELP = ("stage in .chalice/config.json: local (the local runtime) or aws "
              "(default: local)")
ENDPOINT_HELP = ("AWS endpoint to talk to. Default for stage local: AWS_ENDPOINT_URL, else the "
                 f"endpoint a running `make local` wrote to {ENDPOINT_FILE.name}, else "
                 f"{LOCAL_ENDPOINT}; other stages talk to AWS (and refuse a set "
                 "AWS_ENDPOINT_URL unless this option names it)")


def stage_options() -> argparse.ArgumentParser:
    """A parent parser with --stage and --endpoint-url."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--stage", default="local", help=STAGE_HELP)
    parser.add_argument("--endpoint-url", default=None, help=ENDPOINT_HELP)
    return parser


def stage_from(args: argparse.Namespace) -> Stage:
    return load_stage(args.stage, endpoint_url=args.endpoint_url)


def _int_at_least(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{rule}: {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "must not be negative")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text}")
    return value


def describe_aws_error(exc: Exception) -> str:
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach {exc.kwargs.get('endpoint_url')}: "
                "is the local runtime running (make local)?")
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: configure them (aws configure) or use --stage local"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in MISSING_RESOURCE_CODES:
            return f"{exc} (provision the stage first: python -m logctl.provision --stage ...)"
    return str(exc)


def run(prog: str, body: Callable[[], int],
        failures: tuple[type[Exception], ...] = ()) -> int:
    """Run a command body; turn expected failures (LogctlError, and `failures`: exit 1) into
    `prog: message` on stderr."""
    try:
        return body()
    except LogctlError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.status
    except failures as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except StageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"{prog}: {describe_aws_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
