"""The demo's table tells what the log files say from what the pipeline took."""

from __future__ import annotations

import re

from localruntime.demo import FROM_LOGS, FROM_PIPELINE, row, table

RECORD = {"status": "completed", "line_count": 100, "malformed_count": 0, "error_count": 5,
          "p50_response_time_ms": 120.0, "p95_response_time_ms": 400.5,
          "p99_response_time_ms": 900.0, "processing_time_ms": 8.0,
          "completed_at": "2026-12-06T08:00:01Z"}


def test_the_columns_are_grouped_under_where_their_figures_come_from() -> None:
    text = table([row("logs/logs-100.ndjson", RECORD, 1796544000.0)])
    groups, header = text.splitlines()[:2]
    spans = {m.group(1): m.span() for m in re.finditer(r"-+([a-z ]+?)-+", groups)}

    for title, names in (("from the logs", FROM_LOGS), ("from the pipeline", FROM_PIPELINE)):
        start, end = spans[title]
        for name in names:
            assert start <= header.index(name) and header.index(name) + len(name) <= end, name
    assert "from the logs:" in text and "from the pipeline:" in text
