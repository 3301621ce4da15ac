"""Metrics come out as CloudWatch EMF lines CloudWatch can read; logs carry the job id."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from chalicelib.telemetry import NAMESPACE, Telemetry, reason_code, upload_to_result_ms


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, text.splitlines()) if "_aws" in line]


def metric_values(line: dict[str, Any]) -> dict[str, float]:
    """Each declared metric's value in an EMF line, checked against the EMF layout."""
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(line[name], str) for name in dimension_set)
    return {m["Name"]: line[m["Name"]][0] if isinstance(line[m["Name"]], list)
            else line[m["Name"]] for m in directive["Metrics"]}


def record(status: str, **fields: Any) -> dict[str, Any]:
    return {"job_id": "j1", "status": status, "line_count": 10, "malformed_count": 2,
            "processing_time_ms": 4.5, "uploaded_at": "2026-11-26T12:00:00Z",
            "completed_at": "2026-11-26T12:00:01.250Z", "failure_reason": None, **fields}


def test_a_completed_file_is_one_line_with_its_counts_times_and_job_id(
        capsys: pytest.CaptureFixture[str]) -> None:
    Telemetry("aws").file_finished(record("completed", error_count=3))
    [line] = emf_lines(capsys.readouterr().out)
    assert metric_values(line) == {"FilesCompleted": 1, "Lines": 10, "MalformedLines": 2,
                                   "ErrorRecords": 3, "ProcessingTime": 4.5,
                                   "UploadToResultLag": 1250.0}
    assert line["stage"] == "aws" and line["job_id"] == "j1"
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage", "service"]]


def test_a_failed_file_counts_under_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    Telemetry("aws").file_finished(record("failed", failure_reason="not_found: gone",
                                          line_count=0, malformed_count=0))
    [line] = emf_lines(capsys.readouterr().out)
    assert metric_values(line)["FilesFailed"] == 1 and "FilesCompleted" not in line
    assert line["reason"] == "not_found"
    assert "reason" in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]


def test_trigger_counts_every_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    Telemetry("local").jobs_created({"queued": 2, "duplicate": 1})
    [line] = emf_lines(capsys.readouterr().out)
    assert metric_values(line) == {"JobsQueued": 2, "JobsRejected": 0, "JobsDuplicate": 1}


def test_ingest_counts_records_objects_and_duplicates_of_a_batch(
        capsys: pytest.CaptureFixture[str]) -> None:
    Telemetry("aws").stream_batch(records=500, objects=2, duplicates=120)
    [line] = emf_lines(capsys.readouterr().out)
    assert metric_values(line) == {"StreamRecordsRead": 500, "StreamObjectsWritten": 2,
                                   "StreamDuplicatesSkipped": 120}
    assert line["stage"] == "aws"


def test_log_lines_are_json_with_the_event_and_job_id() -> None:
    stream = io.StringIO()
    logger = Logger(service="log-pipeline-test", stream=stream)
    Telemetry("local", logger=logger).event("job_done", job_id="j9", status="completed")
    [line] = [json.loads(t) for t in stream.getvalue().splitlines()]
    assert (line["message"], line["job_id"], line["level"]) == ("job_done", "j9", "INFO")


def test_lag_and_reason_edge_cases() -> None:
    assert upload_to_result_ms(record("completed", uploaded_at=None)) is None
    assert upload_to_result_ms(record("completed", uploaded_at="not a time")) is None
    assert reason_code(None) == "unknown" and reason_code("unreadable") == "unreadable"
