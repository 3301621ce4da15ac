"""The log generator: events start where asked, by default in the current UTC hour."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from logctl.generate import current_hour, generate_lines, main


def _timestamps(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["timestamp"] for line in lines]


def test_events_start_at_the_given_time_a_quarter_second_apart() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    stamps = _timestamps(list(generate_lines(8, seed=1, start=start)))
    assert stamps[0].startswith("2024-05-01T00:00:00.")
    assert stamps[-1].startswith("2024-05-01T00:00:01.")  # 8 x 250 ms
    assert stamps == sorted(stamps)


def test_by_default_events_land_in_the_current_hour_so_the_rollups_count_them() -> None:
    hour = current_hour()
    first = _timestamps(list(generate_lines(1, seed=1)))[0]
    assert first.startswith(hour.strftime("%Y-%m-%dT%H:")) or current_hour() != hour


def test_the_same_seed_and_start_write_the_same_bytes() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert list(generate_lines(50, seed=3, start=start)) == list(
        generate_lines(50, seed=3, start=start))


def test_a_start_that_is_no_time_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--start", "yesterday", "-o", "/dev/null"])
    assert exit_info.value.code == 2
    assert "not an RFC 3339 time" in capsys.readouterr().err
