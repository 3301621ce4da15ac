"""The worker's memory budget, through the local runtime that enforces Lambda's memory
size: a file whose distinct values outgrow the budget ends `failed` (too_large) in its first
invocation, before the runtime would kill the process for exceeding its memory size."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from chalicelib.core.jobs import job_id_for
from tests.e2e.conftest import ROOT, running, wait_for_final, wait_until

pytestmark = pytest.mark.e2e

WORKER_MEMORY_MB = 256


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The app with a 256 MB worker."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "app.py", copy / "app.py")
    shutil.copytree(ROOT / "chalicelib", copy / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["local"]["lambda_functions"]["worker"]["lambda_memory_size"] = \
        WORKER_MEMORY_MB
    (copy / ".chalice").mkdir()
    (copy / ".chalice" / "config.json").write_text(json.dumps(config))
    return copy


def test_distinct_values_past_the_budget_fail_the_job_before_the_process_is_killed(
        tmp_path: Path, project: Path) -> None:
    # GIVEN 400 lines, each with a distinct user id of about 1 MB (400 KB gzipped)
    lines = b"".join(
        b'{"timestamp":"2024-05-01T12:00:00Z","level":"INFO","endpoint":"/a",'
        b'"response_time_ms":1,"status_code":200,"user_id":"%04d%s"}\n' % (i, b"u" * 1_000_000)
        for i in range(400))
    body = gzip.compress(lines, compresslevel=6)
    with running(tmp_path / "runtime", "--no-reload", project=project) as runtime:
        stage = runtime.stage()
        # WHEN it is uploaded
        put = runtime.client("s3").put_object(Bucket=stage.bucket, Key="logs/users.ndjson.gz",
                                              Body=body)
        record = wait_for_final(runtime, job_id_for(stage.bucket, "logs/users.ndjson.gz",
                                                    etag=put["ETag"],
                                                    version_id=put.get("VersionId")),
                                timeout=180)
        # the invocation's own log record comes once it has returned, after the write
        worker = wait_until(lambda: [i for i in runtime.log_records()
                                     if i["function"] == "worker"], 60,
                            "the worker's invocation record")
    # THEN the worker's budget ends it in its first attempt, and no process was killed
    assert record["status"] == "failed", record
    assert record["failure_reason"].startswith("too_large:") and "memory" in \
        record["failure_reason"]
    assert record["attempts"] == 1
    assert all(i["outcome"] != "oom" for i in worker)
    assert max(i["max_memory_used_mb"] for i in worker) <= WORKER_MEMORY_MB
