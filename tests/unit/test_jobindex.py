"""Listing cursors and day partitions of chalicelib.jobindex (no AWS)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from chalicelib.jobindex import (
    BadCursor,
    Position,
    days_back,
    decode_cursor,
    encode_cursor,
    index_attributes,
    listing,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
KEY = {"job_id": {"S": "a" * 32}, "created_day": {"S": "2026-11-25"},
       "created_at": {"S": "2026-11-25T10:00:00.000Z"}}


def test_a_cursor_round_trips_for_the_same_filters() -> None:
    wanted = listing(NOW, limit=10, prefix="logs/a/")
    position = Position("2026-11-25", KEY)

    assert decode_cursor(listing(NOW + 60, limit=25, prefix="logs/a/"),
                         encode_cursor(wanted, position)) == position


@pytest.mark.parametrize("other", [
    {"prefix": "logs/b/"},
    {"status": "failed"},
    {"prefix": "logs/a/", "since": datetime(2026, 11, 20, tzinfo=UTC)},
])
def test_a_cursor_is_refused_for_other_filters(other) -> None:
    cursor = encode_cursor(listing(NOW, limit=10, prefix="logs/a/"),
                           Position("2026-11-25", KEY))
    with pytest.raises(BadCursor, match="other filters"):
        decode_cursor(listing(NOW, limit=10, **other), cursor)


def _forged(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "%%%", "bm90IGpzb24", _forged([1, 2]), _forged({"f": "x"}),
    _forged({"f": listing(NOW, limit=1).fingerprint, "d": "2026-13-40", "k": None}),
    _forged({"f": listing(NOW, limit=1).fingerprint, "d": "2026-11-25", "k": {"job_id": 5}}),
    _forged({"f": listing(NOW, limit=1).fingerprint, "d": "2026-11-25",
             "k": {"job_id": {"N": "1"}}}),
])
def test_a_forged_or_damaged_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(listing(NOW, limit=1), cursor)


def test_days_run_newest_first_from_until_to_since() -> None:
    until = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
    since = datetime(2026, 11, 23, 23, 59, tzinfo=UTC)

    assert list(days_back(until, since)) == ["2026-11-26", "2026-11-25", "2026-11-24",
                                             "2026-11-23"]
    assert list(days_back(until, since, "2026-11-24")) == ["2026-11-24", "2026-11-23"]


def test_the_default_listing_looks_back_over_the_results_lifetime() -> None:
    wanted = listing(NOW, limit=5)

    assert wanted.until.timestamp() == NOW
    assert (wanted.until - wanted.since).total_seconds() == 8 * 24 * 3600


def test_a_range_is_clamped_to_the_days_jobs_can_live() -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    future = datetime(2100, 1, 1, tzinfo=UTC)

    wide = listing(NOW, limit=5, since=long_ago, until=future)

    assert wide.until.timestamp() == NOW
    assert len(list(days_back(wide.until, wide.since))) == 9
    assert wide.fingerprint != listing(NOW, limit=5).fingerprint
    assert listing(NOW, limit=5, since=future).since > listing(NOW, limit=5, since=future).until


def test_records_are_indexed_by_the_utc_day_they_were_created() -> None:
    assert index_attributes({"created_at": "2026-11-26T23:59:59.999Z"}) == {
        "created_day": "2026-11-26"}
