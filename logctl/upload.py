"""Upload log files into the pipeline and, optionally, wait for their results.

    python -m logctl.upload [--stage local] FILE... [--prefix logs/] [--wait] [--timeout 60]

Each file is stored as PREFIX + its file name (multipart above boto3's 8 MiB threshold);
the job id printed next to it is the one the trigger derives from the same object. With
--wait, the command polls the results table until every job is completed or failed, and
exits 1 if any failed. Long uploads and waits show their progress on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from chalicelib.adapters import from_item
from chalicelib.core.jobs import job_id_for, unsupported_reason
from chalicelib.core.schema import FINAL_STATUSES
from logctl.cli import LogctlError, non_negative_float, run, stage_from, stage_options
from logctl.progress import Progress, TransferProgress
from logctl.results import failure_reason, number, percentiles
from logctl.stage import StageLike, as_stage
from logctl.stage import client as make_client

DEFAULT_PREFIX = "logs/"
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5
# The calls that end an upload_file transfer: their response carries ETag and VersionId.
_FINAL_CALLS = ("PutObject", "CompleteMultipartUpload")
_handler_ids = itertools.count()


class WaitTimeout(LogctlError):
    """A job did not reach `completed` or `failed` in time."""

    def __init__(self, job_id: str, timeout: float, status: str | None) -> None:
        self.job_id, self.timeout, self.last_status = job_id, timeout, status
        super().__init__(f"job {job_id} did not finish within {timeout:g}s ({self.seen})")

    @property
    def seen(self) -> str:
        return f"status {self.last_status}" if self.last_status else "no record yet"


@dataclass(frozen=True)
class Upload:
    key: str
    etag: str
    version_id: str | None
    job_id: str
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def normalize_prefix(prefix: str) -> str:
    return prefix + "/" if prefix and not prefix.endswith("/") else prefix


def key_for(path: Path, prefix: str = DEFAULT_PREFIX) -> str:
    return normalize_prefix(prefix) + path.name


def check_file(path: Path) -> None:
    if not path.exists():
        raise LogctlError(f"no such file: {path}", status=2)
    if not path.is_file():
        raise LogctlError(f"not a regular file: {path}", status=2)


def content_type(path: Path) -> str:
    return "application/gzip" if path.name.endswith(".gz") else "application/x-ndjson"


def _transfer(s3: Any, path: Path, bucket: str, key: str,
              callback: Callable[[int], None] | None) -> dict[str, Any]:
    """boto3's managed upload (one PutObject, or multipart for a large file); returns the
    response of the call that completed it, which upload_file itself does not return."""
    responses: list[dict[str, Any]] = []

    def keep(parsed: dict[str, Any], **_: Any) -> None:
        if "ETag" in parsed:
            responses.append(parsed)

    handler_id = f"logctl-upload-{next(_handler_ids)}"
    events = [f"after-call.s3.{name}" for name in _FINAL_CALLS]
    for event in events:  # botocore's unique ids are per emitter, not per event
        s3.meta.events.register(event, keep, unique_id=f"{handler_id}-{event}")
    try:
        s3.upload_file(str(path), bucket, key, Callback=callback,
                       ExtraArgs={"ContentType": content_type(path)})
    except S3UploadFailedError as exc:
        # boto3 wraps the service's error; the callers report ClientErrors by their code.
        if isinstance(exc.__context__, ClientError):
            raise exc.__context__ from None
        raise LogctlError(f"{key}: {exc}") from None
    finally:
        for event in events:
            s3.meta.events.unregister(event, unique_id=f"{handler_id}-{event}")
    if not responses:
        raise LogctlError(f"{key}: S3 confirmed the upload without an ETag")
    return responses[-1]


def upload_file(stage: StageLike, path: str | Path, key: str | None = None,
                client: Any = None, callback: Callable[[int], None] | None = None) -> Upload:
    """Upload one file; `stage` is a Stage or a stage name ("local"). `callback` gets the
    bytes sent as they go; `started`/`finished` are epoch seconds around the transfer."""
    stage = as_stage(stage)
    path = Path(path)
    check_file(path)
    key = key or key_for(path)
    s3 = client or make_client(stage, "s3")
    started = time.time()
    response = _transfer(s3, path, stage.bucket, key, callback)
    finished = time.time()
    etag = response["ETag"]
    # "null" is the version id of an object stored without versioning (moto answers it to
    # CompleteMultipartUpload on an unversioned bucket); the S3 event then carries none.
    version_id = response.get("VersionId")
    version_id = None if version_id == "null" else version_id
    job_id = job_id_for(stage.bucket, key, etag=etag, version_id=version_id)
    return Upload(key, etag, version_id, job_id, started, finished)


def wait_for_result(stage: StageLike, job_id: str, timeout: float = 60.0, client: Any = None,
                    on_poll: Callable[[str | None], None] | None = None) -> dict[str, Any]:
    """Poll the results table until the job is completed or failed; return its record.

    `on_poll` gets the status seen (None: no record yet) after each poll that was not final.
    """
    stage = as_stage(stage)
    ddb = client or make_client(stage, "dynamodb")
    deadline = time.monotonic() + timeout
    delay = FIRST_POLL_SECONDS
    status = None
    while True:
        item = ddb.get_item(TableName=stage.results_table, Key={"job_id": {"S": job_id}},
                            ConsistentRead=True).get("Item")
        if item is not None:
            record = from_item(item)
            status = record.get("status")
            if status in FINAL_STATUSES:
                return record
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(job_id, timeout, status)
        if on_poll is not None:
            on_poll(status)
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_POLL_SECONDS)


def outcome(key: str, record: dict[str, Any]) -> str:
    if record.get("status") == "failed":
        return f"{key}  failed  {failure_reason(record) or 'no reason recorded'}"
    return (f"{key}  completed  lines={number(record.get('line_count'))}"
            f" malformed={number(record.get('malformed_count'))}"
            f" errors={number(record.get('error_count'))}"
            f" p50/p95/p99={percentiles(record)}ms"
            f" processing={number(record.get('processing_time_ms'))}ms")


def _wait_progress(progress: Progress, key: str, done: int, total: int,
                   started: float) -> Callable[[str | None], None]:
    def show(status: str | None) -> None:
        progress.update(f"upload: waiting for results, {done} of {total} final; {key}: "
                        f"{status or 'no record yet'} after {time.monotonic() - started:.0f} s")
    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m logctl.upload", description=__doc__, parents=[stage_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help=f"key prefix (default {DEFAULT_PREFIX}; the trigger watches logs/)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for every job to complete or fail")
    parser.add_argument("--timeout", type=non_negative_float, default=60.0,
                        help="seconds to wait for all results (default 60)")
    args = parser.parse_args(argv)

    def body() -> int:
        for path in args.files:
            check_file(path)
        keys = [key_for(path, args.prefix) for path in args.files]
        refused = [f"{path}: {reason}" for path, key in zip(args.files, keys, strict=True)
                   if (reason := unsupported_reason(key))]
        if refused:
            raise LogctlError("nothing was uploaded; the trigger would refuse "
                              + "; ".join(refused) + ": rename the file", status=2)
        if shared := sorted({key for key in keys if keys.count(key) > 1}):
            raise LogctlError(f"files with the same name would overwrite each other: "
                              f"{', '.join(shared)}", status=2)
        stage = stage_from(args)
        s3 = make_client(stage, "s3")
        progress = Progress()
        uploads = []
        for path, key in zip(args.files, keys, strict=True):
            sent = TransferProgress(progress, key, path.stat().st_size)
            upload = upload_file(stage, path, key, client=s3, callback=sent)
            progress.clear()
            uploads.append(upload)
            print(f"{upload.key}  {upload.job_id}  "
                  f"({path.stat().st_size} bytes in {upload.seconds * 1000:.0f} ms)", flush=True)
        if not args.wait:
            return 0
        if not normalize_prefix(args.prefix).startswith(DEFAULT_PREFIX):
            print(f"upload: note: the trigger only watches {DEFAULT_PREFIX}; "
                  "these jobs may never start", file=sys.stderr)
        ddb = make_client(stage, "dynamodb")
        started = time.monotonic()
        deadline = started + args.timeout
        failed = 0
        for done, upload in enumerate(uploads):
            remaining = max(0.0, deadline - time.monotonic())
            waiting = _wait_progress(progress, upload.key, done, len(uploads), started)
            try:
                record = wait_for_result(stage, upload.job_id, remaining, client=ddb,
                                         on_poll=waiting)
            except WaitTimeout as exc:
                raise LogctlError(f"{upload.key}: job {exc.job_id} did not finish within "
                                  f"--timeout {args.timeout:g}s ({exc.seen})") from None
            finally:
                progress.clear()
            print(outcome(upload.key, record), flush=True)
            failed += record.get("status") == "failed"
        if failed:
            raise LogctlError(f"{failed} of {len(uploads)} jobs failed")
        return 0

    return run("upload", body)


if __name__ == "__main__":
    sys.exit(main())
