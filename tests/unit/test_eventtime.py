"""A file's figures by event hour (chalicelib.core.eventtime): the bounds and what they fold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from chalicelib.core.eventtime import (
    ENDPOINTS_PER_HOUR,
    MAX_HOURS_PER_FILE,
    decode,
    hour_number,
)
from chalicelib.core.summary import aggregate_chunks

UPLOAD = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def lines(moments: list[datetime], endpoint: str = "/a") -> bytes:
    return b"\n".join(json.dumps({
        "timestamp": m.isoformat(), "level": "INFO", "endpoint": endpoint,
        "response_time_ms": 5, "status_code": 200, "user_id": "u"}).encode() for m in moments)


def event_hours(data: bytes):
    return decode(aggregate_chunks([data]).event_hours(hour_number(UPLOAD)))


def test_events_far_in_the_past_or_future_count_as_out_of_range_only() -> None:
    data = lines([UPLOAD - timedelta(days=40), UPLOAD + timedelta(hours=30), UPLOAD,
                  UPLOAD - timedelta(days=31)])
    result = event_hours(data)
    assert result.out_of_range == 2
    assert [(h.hour, h.records) for h in result.hours] == [
        ((UPLOAD - timedelta(days=31)).strftime("%Y-%m-%dT%H"), 1), ("2026-11-26T12", 1)]


def test_a_file_over_more_hours_than_the_bound_keeps_the_busiest() -> None:
    moments = [UPLOAD - timedelta(hours=h) for h in range(MAX_HOURS_PER_FILE + 10)]
    moments += [UPLOAD - timedelta(hours=MAX_HOURS_PER_FILE + 5)] * 3  # one busy old hour
    result = event_hours(lines(moments))
    assert len(result.hours) == MAX_HOURS_PER_FILE
    assert sum(h.records for h in result.hours) + result.out_of_range == len(moments)
    assert (UPLOAD - timedelta(hours=MAX_HOURS_PER_FILE + 5)).strftime("%Y-%m-%dT%H") in {
        h.hour for h in result.hours}


def test_a_line_counts_in_its_own_utc_hour_whatever_its_offset() -> None:
    plus5 = datetime(2026, 11, 26, 15, 10, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=5)))
    naive = datetime(2026, 11, 26, 11, 59, 59)
    result = event_hours(lines([plus5, naive]))
    assert [(h.hour, h.records) for h in result.hours] == [
        ("2026-11-26T11", 1), ("2026-11-26T15", 1)]


def test_endpoints_past_the_per_hour_bound_go_to_other() -> None:
    data = b"\n".join(lines([UPLOAD] * (1 + (i < 3)), endpoint=f"/e{i:02d}")
                      for i in range(ENDPOINTS_PER_HOUR + 5))
    [hour] = event_hours(data).hours
    assert len(hour.endpoints) == ENDPOINTS_PER_HOUR
    assert [e.endpoint for e in hour.endpoints[:3]] == ["/e00", "/e01", "/e02"]
    assert (hour.other_requests, hour.other_errors) == (5, 0)
