"""Statistics of the result record, on small files computed by hand."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.aggregate import Aggregator, _column
from chalicelib.core.records import COUNTS, LogRecord
from chalicelib.core.reference import summarize_bytes
from chalicelib.core.schema import STATISTICS_FIELDS
from chalicelib.core.summary import summarize_chunks


def record(time: Any = 10, endpoint: str = "/a", level: str = "INFO", status: int = 200,
           user: str = "u", ts: str = "2024-05-01T12:00:00Z") -> dict[str, Any]:
    return {"timestamp": ts, "level": level, "endpoint": endpoint, "response_time_ms": time,
            "status_code": status, "user_id": user}


def summary(records: list[dict[str, Any]], raw_times: list[str] | None = None) -> dict[str, Any]:
    """Summarize the records as a file; both implementations must agree."""
    lines = [json.dumps(r) for r in records]
    if raw_times is not None:  # response times written exactly as given
        template = json.dumps(record(time=0))
        lines = [template.replace('"response_time_ms": 0', f'"response_time_ms": {text}')
                 for text in raw_times]
    data = "\n".join(lines).encode()
    result = summarize_chunks([data[i:i + 100] for i in range(0, len(data), 100)])
    assert result == summarize_bytes(data)
    return result


def percentiles(result: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    return (result["p50_response_time_ms"], result["p95_response_time_ms"],
            result["p99_response_time_ms"], result["max_response_time_ms"])


@pytest.mark.parametrize(("times", "expected"), [
    (list(range(1, 101)), (50, 95, 99, 100)),  # ranks 50, 95, 99 of 100
    (list(range(1, 21)), (10, 19, 20, 20)),  # ceil(0.95*20) = 19, ceil(0.99*20) = 20
    (list(range(1, 201)), (100, 190, 198, 200)),
    ([42], (42, 42, 42, 42)),
    ([5, 1, 3], (3, 5, 5, 5)),  # ranks 2, 3, 3 of 3
    ([7] * 99 + [1000], (7, 7, 7, 1000)),  # rank 99 is still a 7
    ([7] * 98 + [1000] * 2, (7, 7, 1000, 1000)),  # rank 95 is a 7, rank 99 the first 1000
    ([2.5, 0.5, 1.5, 0.0], (0.5, 2.5, 2.5, 2.5)),
])
def test_nearest_rank_percentiles_at_rank_boundaries(times: list[Any],
                                                     expected: tuple[Any, ...]) -> None:
    shuffled = times[:]
    random.Random(7).shuffle(shuffled)
    result = summary([record(time=t, endpoint=f"/e{i % 3}") for i, t in enumerate(shuffled)])
    assert percentiles(result) == expected


@pytest.mark.parametrize(("raw_times", "average"), [
    (["1", "2"], 1.5),
    (["1", "2", "2"], 1.667),
    (["0.1", "0.2", "0.3"], 0.2),
    (["1e15", "0.3", "0.3", "0.3"], 250000000000000.22),  # exact sum: a plain sum gives .2
    (["1e15", "0.1", "0.1", "0.1", "0.1", "0.1"], 166666666666666.75),  # plain: .78
    (["1000000000000000", "1", "1"], 333333333333334.0),
])
def test_averages_follow_fsum_exactly(raw_times: list[str], average: float) -> None:
    result = summary([], raw_times=raw_times)
    assert result["avg_response_time_ms"] == average
    assert result["top_endpoints"][0]["avg_response_time_ms"] == average


def test_top_endpoints_order_ties_counts_errors_and_averages() -> None:
    records = (
        [record(endpoint="/c", time=t) for t in (1, 2, 3, 4, 5)]
        + [record(endpoint="/b", time=10, level=lv) for lv in ("ERROR", "error", "WARN")]
        + [record(endpoint="/a", time=t, level="Error") for t in (1, 1, 2)]
        + [record(endpoint="/d", time=0.5, level="DEBUG")]
    )
    random.Random(3).shuffle(records)
    result = summary(records)
    assert result["top_endpoints"] == [
        {"endpoint": "/c", "count": 5, "error_count": 0, "avg_response_time_ms": 3.0},
        {"endpoint": "/a", "count": 3, "error_count": 3, "avg_response_time_ms": 1.333},
        {"endpoint": "/b", "count": 3, "error_count": 2, "avg_response_time_ms": 10.0},
        {"endpoint": "/d", "count": 1, "error_count": 0, "avg_response_time_ms": 0.5},
    ]
    assert result["error_count"] == 5
    assert result["unique_endpoints"] == 4


def test_top_endpoints_are_capped_at_20_with_ties_broken_by_name() -> None:
    records = [record(endpoint=f"/e{i:02d}") for i in range(25)]
    records += [record(endpoint="/z")] * 3 + [record(endpoint="/y")] * 2
    result = summary(records)
    names = [e["endpoint"] for e in result["top_endpoints"]]
    assert names == ["/z", "/y"] + [f"/e{i:02d}" for i in range(18)]
    assert result["unique_endpoints"] == 27


def test_status_codes_users_and_levels() -> None:
    records = [record(status=s, user=u, level=lv) for s, u, lv in (
        (503, "ünï", "ERROR"), (200, "u 1", "INFO"), (101, "u 1", "warning"), (200, "u2", "Warn"),
        (404, "ünï", "debug"))]
    result = summary(records)
    assert list(result["status_codes"].items()) == [("101", 1), ("200", 2), ("404", 1),
                                                    ("503", 1)]
    assert result["unique_users"] == 3
    assert (result["info_count"], result["warn_count"], result["error_count"],
            result["debug_count"]) == (1, 2, 1, 1)


def test_a_record_without_a_counted_field_is_not_counted() -> None:
    # GIVEN records, two of which lack the counted fields, as an optional field may be absent
    def rec(status: int | None, user: str | None) -> LogRecord:
        return LogRecord(timestamp=datetime(2024, 5, 1, tzinfo=UTC), level="INFO", endpoint="/a",
                         response_time_ms=1, status_code=status, user_id=user)  # type: ignore[arg-type]

    agg = Aggregator()
    assert agg.add([rec(200, "u1"), rec(None, None), rec(404, "u1"), rec(200, None)])
    # THEN the counts skip them, by value and distinct alike
    result = agg.result()
    assert result["status_codes"] == {"200": 2, "404": 1}
    assert result["unique_users"] == 1


def test_every_count_names_a_statistic_of_the_record_and_a_field_of_a_line() -> None:
    assert COUNTS
    for count in COUNTS:
        assert count.statistic in STATISTICS_FIELDS
        assert count.field in LogRecord.__struct_fields__


def test_a_count_reads_its_field_of_every_record() -> None:
    stamp = datetime(2024, 5, 1, tzinfo=UTC)
    records = [LogRecord(stamp, "info", f"/e{i}", i, 200 + i, f"u{i}") for i in range(3)]
    for field in [c.field for c in COUNTS] + ["endpoint"]:  # endpoint: not one of COUNTS
        assert _column(field)(records) == [getattr(r, field) for r in records]


def test_malformed_samples_are_capped_at_5_with_1_based_line_numbers() -> None:
    good = json.dumps(record())
    lines = [good, "bad", "", "[1]", good, "  ", "{", "null", "x", "y", good, "z"]
    data = "\n".join(lines).encode()
    result = summarize_chunks([data])
    assert result == summarize_bytes(data)
    assert result["malformed_count"] == 7
    assert result["line_count"] == 10
    assert [s["line"] for s in result["malformed_samples"]] == [2, 4, 7, 8, 9]


def test_no_valid_records_gives_null_statistics_and_zero_counts() -> None:
    result = summary([record(status=99), record(level="LOUD")])
    assert (result["line_count"], result["malformed_count"]) == (2, 2)
    assert result["top_endpoints"] == [] and result["status_codes"] == {}
    assert result["unique_users"] == result["unique_endpoints"] == result["info_count"] == 0
    assert all(result[k] is None for k in (
        "avg_response_time_ms", "max_response_time_ms", "p50_response_time_ms",
        "p95_response_time_ms", "p99_response_time_ms", "first_timestamp", "last_timestamp"))


def test_aggregator_rejects_a_batch_with_an_unknown_level_and_adds_nothing() -> None:
    stamp = datetime(2024, 5, 1, tzinfo=UTC)
    good = LogRecord(stamp, "info", "/a", 5, 200, "u")
    bad = LogRecord(stamp, "LOUD", "/a", 5, 200, "u")
    agg = Aggregator()
    assert agg.add([good, bad]) is False
    assert agg.result()["unique_users"] == 0
    assert agg.add([good, good]) is True
    result = agg.result()
    assert (result["info_count"], result["unique_endpoints"]) == (2, 1)
    assert result["first_timestamp"] == "2024-05-01T00:00:00Z"
