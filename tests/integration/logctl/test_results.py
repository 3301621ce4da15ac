"""logctl.results against a moto server: listing, expiry, ordering, one job as JSON."""

from __future__ import annotations

import json
import time

import pytest

from logctl import results
from logctl.stage import Stage, client
from tests.integration.logctl.support import (
    DAY,
    put_record,
    result_record,
)


def cli(stage: Stage, *args: str) -> int:
    return results.main(["--endpoint-url", stage.endpoint_url or "", *args])


def test_listing_hides_expired_records_and_puts_the_newest_first(stage: Stage) -> None:
    now = time.time()
    put_record(stage, result_record("old", created=now - 3 * DAY, key="logs/old.ndjson"))
    put_record(stage, result_record("new", created=now - 60, key="logs/new.ndjson"))
    put_record(stage, result_record("mid", created=now - DAY, key="logs/mid.ndjson"))
    put_record(stage, result_record("expired", created=now - 8 * DAY,
                                    key="logs/expired.ndjson"))
    put_record(stage, result_record("expires-soon", created=now - 7 * DAY + 3600,
                                    key="logs/soon.ndjson"))

    listed = results.list_results(stage, now=now)

    assert [r["job_id"] for r in listed] == ["new", "mid", "old", "expires-soon"]


def test_ordering_holds_within_a_second(stage: Stage) -> None:
    second = float(int(time.time()) - 5)
    put_record(stage, result_record("whole-second", created=second))
    put_record(stage, result_record("later-fraction", created=second + 0.5))
    put_record(stage, result_record("next-second", created=second + 1))

    listed = results.list_results(stage)

    assert [r["job_id"] for r in listed] == ["next-second", "later-fraction", "whole-second"]


def test_status_and_key_filters(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    put_record(stage, result_record("a-ok", created=now - 3, key="logs/a/1.ndjson"))
    put_record(stage, result_record("a-bad", "failed", created=now - 2, key="logs/a/2.ndjson"))
    put_record(stage, result_record("b-bad", "failed", created=now - 1, key="logs/b/3.ndjson"))

    assert [r["job_id"] for r in results.list_results(stage, status="failed")] == [
        "b-bad", "a-bad"]
    assert [r["job_id"] for r in results.list_results(stage, key="logs/a/")] == [
        "a-bad", "a-ok"]
    assert cli(stage, "--status", "failed", "--key", "logs/a/", "--json") == 0
    assert [r["job_id"] for r in json.loads(capsys.readouterr().out)] == ["a-bad"]


def test_listing_never_scans(stage: Stage) -> None:
    ddb = client(stage, "dynamodb")
    operations: list[str] = []
    ddb.meta.events.register("before-call.dynamodb",
                             lambda model, **_: operations.append(model.name))
    put_record(stage, result_record("one"), ddb)
    operations.clear()

    results.list_results(stage, client=ddb)
    results.list_results(stage, status="completed", key="logs/", client=ddb)

    assert operations and set(operations) == {"Query"}


def test_limit_keeps_the_newest(stage: Stage) -> None:
    now = time.time()
    for i in range(5):
        put_record(stage, result_record(f"job-{i}", created=now - i * 60))

    assert [r["job_id"] for r in results.list_results(stage, limit=2)] == ["job-0", "job-1"]
    assert len(results.list_results(stage, limit=0)) == 5


def test_listing_reads_every_page_of_the_query(stage: Stage) -> None:
    padding = "x" * 100_000
    now = time.time()
    for i in range(15):
        put_record(stage, result_record(f"big-{i:02d}", created=now - i, padding=padding))

    listed = results.list_results(stage, limit=0)

    assert len(listed) == 15


def test_get_result_hides_an_expired_record(stage: Stage) -> None:
    put_record(stage, result_record("gone", created=time.time() - 8 * DAY))
    put_record(stage, result_record("here"))

    assert results.get_result(stage, "gone") is None
    assert results.get_result(stage, "missing") is None
    record = results.get_result(stage, "here")
    assert record is not None and record["status"] == "completed"


def test_cli_table_shows_counts_percentiles_and_failure_reason(
        stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    put_record(stage, result_record("ok-job", created=now - 10, key="logs/ok.ndjson",
                                    line_count=1234, malformed_count=5, error_count=61))
    put_record(stage, result_record(
        "bad-job", "failed", created=now, key="logs/huge.ndjson", line_count=0,
        malformed_count=0, error_count=0, p50_response_time_ms=None,
        p95_response_time_ms=None, p99_response_time_ms=None,
        failure_reason="too_large: 2147483648 bytes > MAX_FILE_BYTES 1073741824"))

    assert cli(stage) == 0

    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == ["CREATED", "KEY", "STATUS", "LINES", "MALFORMED", "ERRORS"]
    assert "logs/huge.ndjson" in first and "failed" in first
    assert "-/-/-" in first
    assert first.endswith("too_large: 2147483648 bytes > MAX_FILE_BYTES 1073741824")
    assert second.split()[2:9] == ["logs/ok.ndjson", "completed", "1234", "5", "61",
                                   "120/480.5/910", "42"]


def test_cli_with_no_results_says_so(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(stage) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"no results in {stage.results_table} (stage local)")
    assert "make upload FILE=path" in out


def test_cli_json_lists_records(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    put_record(stage, result_record("j1", p95_response_time_ms=12.5))

    assert cli(stage, "--json") == 0

    listed = json.loads(capsys.readouterr().out)
    assert [r["job_id"] for r in listed] == ["j1"]
    assert listed[0]["p95_response_time_ms"] == 12.5


def test_cli_job_prints_one_record_as_json(stage: Stage,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    put_record(stage, result_record("j1", status_codes={"200": 990, "500": 10},
                                    top_endpoints=[{"endpoint": "/a", "count": 3}]))

    assert cli(stage, "--job", "j1") == 0

    record = json.loads(capsys.readouterr().out)
    assert record["job_id"] == "j1"
    assert record["status_codes"] == {"200": 990, "500": 10}
    assert record["top_endpoints"] == [{"endpoint": "/a", "count": 3}]


def test_cli_unknown_job_exits_1(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(stage, "--job", "nope") == 1
    assert "no result for job nope" in capsys.readouterr().err


def test_cli_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        results.main(["--limit", "-3"])
    assert exit_info.value.code == 2
    assert "must not be negative" in capsys.readouterr().err


def test_cli_missing_table_suggests_provisioning(stage: Stage,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    client(stage, "dynamodb").delete_table(TableName=stage.results_table)

    assert cli(stage) == 1

    err = capsys.readouterr().err
    assert "ResourceNotFoundException" in err and "logctl.provision" in err


def test_an_empty_listing_says_what_was_asked_and_what_to_do(
        stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    put_record(stage, result_record("a-good", "completed", key="logs/a/x.ndjson"))

    assert cli(stage, "--status", "failed", "--key", "logs/b/") == 0

    out = capsys.readouterr().out
    assert "status failed" in out and "'logs/b/'" in out
    assert "without STATUS= or KEY=" in out
