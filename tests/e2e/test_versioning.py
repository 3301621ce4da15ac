"""A versioned bucket: each object version is a job of its own, pinned to its version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logctl.generate import write_log_file
from tests.e2e.conftest import Runtime, running, wait_for_final
from tests.e2e.test_pipeline import upload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with running(tmp_path_factory.mktemp("runtime"), "--no-reload") as rt:
        yield rt


def test_versioned_bucket_events_carry_the_version(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN versioning on the bucket
    stage = runtime.stage()
    s3 = runtime.client("s3")
    s3.put_bucket_versioning(Bucket=stage.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    path = write_log_file(tmp_path / "v.ndjson", 10, seed=2)
    # WHEN the same key is uploaded twice
    first_id, first = upload(runtime, path, "logs/e2e/versioned.ndjson")
    second_id, second = upload(runtime, path, "logs/e2e/versioned.ndjson")
    # THEN each version is a job of its own, pinned to its version id
    assert first["VersionId"] != second["VersionId"] and first_id != second_id
    for job_id, response in ((first_id, first), (second_id, second)):
        record = wait_for_final(runtime, job_id)
        assert record["version_id"] == response["VersionId"]
        assert record["status"] == "completed" and record["line_count"] == 10
