"""The runtime follows the event source mapping in the endpoint, as Lambda does."""

from __future__ import annotations

import io
from typing import Any

from localruntime.log import Console
from localruntime.sources.mapping import MappingReader

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:jobs"


class FakeLambda:
    def __init__(self) -> None:
        self.mappings: list[dict[str, Any]] = []
        self.calls = 0

    def list_event_source_mappings(self, FunctionName: str,
                                   EventSourceArn: str) -> dict[str, Any]:
        self.calls += 1
        return {"EventSourceMappings": [
            m for m in self.mappings
            if m["FunctionArn"].endswith(f":{FunctionName}") and
            m["EventSourceArn"] == EventSourceArn]}


def mapping(types: list[str] | None) -> dict[str, Any]:
    found = {"UUID": "u-1", "EventSourceArn": QUEUE_ARN,
             "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:app-aws-worker"}
    if types is not None:
        found["FunctionResponseTypes"] = types
    return found


def reader(lam: FakeLambda, now: list[float]) -> tuple[MappingReader, io.StringIO]:
    out = io.StringIO()
    return MappingReader(lam, "app-aws-worker", QUEUE_ARN,
                         Console(out, status_line=False), refresh=2.0,
                         clock=lambda: now[0]), out


def test_no_mapping_behaves_as_the_one_chalice_deploy_creates() -> None:
    lam, now = FakeLambda(), [0.0]
    mappings, out = reader(lam, now)
    assert mappings.reports_batch_item_failures() is False
    assert "no event source mapping" in out.getvalue()


def test_the_setting_follows_the_mapping_after_the_refresh_interval() -> None:
    # GIVEN a mapping without the setting
    lam, now = FakeLambda(), [0.0]
    lam.mappings = [mapping(None)]
    mappings, out = reader(lam, now)
    assert mappings.reports_batch_item_failures() is False
    # WHEN post-deploy turns ReportBatchItemFailures on
    lam.mappings = [mapping(["ReportBatchItemFailures"])]
    # THEN the runtime keeps its reading until the refresh interval passes, then follows
    now[0] = 1.0
    assert mappings.reports_batch_item_failures() is False
    now[0] = 2.5
    assert mappings.reports_batch_item_failures() is True
    assert lam.calls == 2
    log = out.getvalue().splitlines()
    assert "ReportBatchItemFailures off" in log[0] and "ReportBatchItemFailures on" in log[1]


def test_an_unreadable_mapping_keeps_the_last_setting() -> None:
    lam, now = FakeLambda(), [0.0]
    lam.mappings = [mapping(["ReportBatchItemFailures"])]
    mappings, out = reader(lam, now)
    assert mappings.reports_batch_item_failures() is True

    def broken(**_: Any) -> Any:
        raise ConnectionError("endpoint gone")
    lam.list_event_source_mappings = broken  # type: ignore[method-assign]
    now[0] = 10.0
    assert mappings.reports_batch_item_failures() is True
    assert "keeping the last known setting" in out.getvalue()
