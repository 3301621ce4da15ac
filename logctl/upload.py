"""Upload log files into the pipeline and, optionally, wait for their results.

    python -m logctl.upload [--stage local] FILE... [--prefix logs/] [--wait] [--timeout 60]

Each file is stored as PREFIX + its file name; the job id printed next to it is the
one the trigger derives from the same object. With --wait, the command polls the
results table until every job is completed or failed, and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.adapters import from_item
from chalicelib.jobs import job_id_for
from logctl.cli import LogctlError, non_negative_float, run, stage_from, stage_options
from logctl.results import failure_reason, number, percentiles
from logctl.stage import Stage
from logctl.stage import client as make_client

DEFAULT_PREFIX = "logs/"
FINAL_STATUSES = frozenset({"completed", "failed"})
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5


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


def upload_file(stage: Stage, path: str | Path, key: str | None = None,
                client: Any = None) -> Upload:
    """PutObject one file; `started`/`finished` are epoch seconds around the request."""
    path = Path(path)
    check_file(path)
    key = key or key_for(path)
    s3 = client or make_client(stage, "s3")
    started = time.time()
    with path.open("rb") as body:
        response = s3.put_object(Bucket=stage.bucket, Key=key, Body=body,
                                 ContentType=content_type(path))
    finished = time.time()
    etag = response["ETag"]
    version_id = response.get("VersionId")
    job_id = job_id_for(stage.bucket, key, etag=etag, version_id=version_id)
    return Upload(key, etag, version_id, job_id, started, finished)


def wait_for_result(stage: Stage, job_id: str, timeout: float = 60.0,
                    client: Any = None) -> dict[str, Any]:
    """Poll the results table until the job is completed or failed; return its record."""
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
        if shared := sorted({key for key in keys if keys.count(key) > 1}):
            raise LogctlError(f"files with the same name would overwrite each other: "
                              f"{', '.join(shared)}", status=2)
        stage = stage_from(args)
        s3 = make_client(stage, "s3")
        uploads = []
        for path, key in zip(args.files, keys, strict=True):
            upload = upload_file(stage, path, key, client=s3)
            uploads.append(upload)
            print(f"{upload.key}  {upload.job_id}  "
                  f"({path.stat().st_size} bytes in {upload.seconds * 1000:.0f} ms)", flush=True)
        if not args.wait:
            return 0
        if not normalize_prefix(args.prefix).startswith(DEFAULT_PREFIX):
            print(f"upload: note: the trigger only watches {DEFAULT_PREFIX}; "
                  "these jobs may never start", file=sys.stderr)
        ddb = make_client(stage, "dynamodb")
        deadline = time.monotonic() + args.timeout
        failed = 0
        for upload in uploads:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                record = wait_for_result(stage, upload.job_id, remaining, client=ddb)
            except WaitTimeout as exc:
                raise LogctlError(f"{upload.key}: job {exc.job_id} did not finish within "
                                  f"--timeout {args.timeout:g}s ({exc.seen})") from None
            print(outcome(upload.key, record), flush=True)
            failed += record.get("status") == "failed"
        if failed:
            raise LogctlError(f"{failed} of {len(uploads)} jobs failed")
        return 0

    return run("upload", body)


if __name__ == "__main__":
    sys.exit(main())
