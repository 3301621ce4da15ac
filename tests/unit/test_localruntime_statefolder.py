"""The runtime's state folder: its lock, the runtime's own state, and what the lines say."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from localruntime.__main__ import parse_settings
from localruntime.settings import SettingsError
from localruntime.statefolder import (
    DEFAULT_STATE_DIR,
    RuntimeState,
    StateFolderError,
    Unfinished,
    clean,
    lock,
    restored_line,
    stop_line,
    unfinished,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_runtime_cannot_take_a_folder_in_use(tmp_path: Path) -> None:
    # GIVEN one runtime holding the folder's lock
    held = lock(tmp_path / "state")
    try:
        # WHEN another takes it, THEN it is refused, naming the holder
        with pytest.raises(StateFolderError, match=f"in use by the runtime with pid {os.getpid()}"):
            lock(tmp_path / "state")
        # and the folder cannot be cleaned under it
        with pytest.raises(StateFolderError, match="in use"):
            clean(tmp_path / "state")
    finally:
        os.close(held)
    # THEN once released, it can be taken again, and cleaned
    os.close(lock(tmp_path / "state"))
    (tmp_path / "state" / "snapshot").write_bytes(b"x" * 2_000_000)
    result = clean(tmp_path / "state")
    assert result.startswith(f"removed {tmp_path / 'state'} (2.0 MB)")
    assert not (tmp_path / "state").exists()
    assert "nothing saved" in clean(tmp_path / "state")


def test_folders_of_their_own_do_not_block_each_other(tmp_path: Path) -> None:
    first, second = lock(tmp_path / "a"), lock(tmp_path / "b")
    os.close(first)
    os.close(second)


def test_runtime_state_gives_back_what_was_restored_and_collects_contributions() -> None:
    state = RuntimeState()
    state.load({"kinesis:ingest": {"shard-0": "42"}, "gone-room": [1]})
    assert state.restored("kinesis:ingest") == {"shard-0": "42"}
    assert state.restored("nobody") is None
    position = {"shard-0": "42"}
    state.contribute("kinesis:ingest", lambda: dict(position))
    position["shard-0"] = "43"
    # a contribution is read at each save; what no room contributes again is kept as restored
    assert state.collect() == {"kinesis:ingest": {"shard-0": "43"}, "gone-room": [1]}


SUMMARY = {"buckets": 1, "object_versions": 1000, "object_bytes": 524_288_000, "queues": 4,
           "messages": 60, "messages_in_flight": 4, "tables": 2, "items": 10_000,
           "streams": 0, "stream_records": 0}


def test_the_start_line_says_what_was_restored(tmp_path: Path) -> None:
    restored = {"saved_at": time.time() - 180, "summary": SUMMARY, "released": 4,
                "seconds": 2.5, "runtime": {}}
    line = restored_line(tmp_path, restored, fresh=False)
    assert f"restored from {tmp_path}" in line and "3 min ago" in line and "in 2.50 s" in line
    assert "1,000 object versions (524.3 MB) in 1 bucket" in line
    assert "60 messages in 4 queues (4 that were in flight visible again)" in line
    assert "10,000 items in 2 tables" in line
    assert "starting empty (--fresh)" in restored_line(tmp_path, None, fresh=True)
    assert "nothing saved yet, starting empty" in restored_line(tmp_path, None, fresh=False)


def test_the_stop_line_says_what_is_unfinished_and_where_it_went(tmp_path: Path) -> None:
    left = Unfinished(waiting={"jobs": 56, "__runtime-trigger-s3": 4}, dead_letters=2)
    kept = stop_line(left, tmp_path, saved=True)
    assert kept.startswith("60 jobs unfinished (4 in __runtime-trigger-s3, 56 in jobs)")
    assert "2 messages in dead-letter queues" in kept
    assert kept.endswith(f"saved in {tmp_path}; they resume on the next start")
    assert "not kept (the runtime ran without --state)" in stop_line(left, None, saved=False)
    assert "the save at the stop failed" in stop_line(left, tmp_path, saved=False)
    assert stop_line(Unfinished(), tmp_path, saved=True) == "nothing unfinished"


class FakeSqs:
    """Queues by name: (visible, in flight, delayed, dead-letter target name or None)."""

    def __init__(self, queues: dict[str, tuple[int, int, int, str | None]]) -> None:
        self.queues = queues

    def list_queues(self) -> dict[str, Any]:
        return {"QueueUrls": [f"http://h/1/{name}" for name in self.queues]}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        name = QueueUrl.rsplit("/", 1)[-1]
        visible, in_flight, delayed, target = self.queues[name]
        attributes = {"QueueArn": f"arn:aws:sqs:us-east-1:1:{name}",
                      "ApproximateNumberOfMessages": str(visible),
                      "ApproximateNumberOfMessagesNotVisible": str(in_flight),
                      "ApproximateNumberOfMessagesDelayed": str(delayed)}
        if target:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": f"arn:aws:sqs:us-east-1:1:{target}",
                 "maxReceiveCount": 5})
        return {"Attributes": attributes}


def test_unfinished_counts_every_queue_but_dead_letter_queues() -> None:
    sqs = FakeSqs({"jobs": (50, 4, 2, "jobs-dlq"), "jobs-dlq": (3, 0, 0, None),
                   "__runtime-trigger-s3": (1, 0, 0, "__runtime-trigger-s3-failed"),
                   "__runtime-trigger-s3-failed": (0, 0, 0, None), "idle": (0, 0, 0, None)})
    assert unfinished(sqs) == Unfinished(waiting={"jobs": 56, "__runtime-trigger-s3": 1},
                                         dead_letters=3)


def test_state_options(tmp_path: Path) -> None:
    project = ["--project", str(ROOT)]
    assert parse_settings(project).state_dir is None
    assert parse_settings([*project, "--state"]).state_dir == DEFAULT_STATE_DIR
    other = parse_settings(["--state", str(tmp_path / "mine"), "--fresh"])
    assert other.state_dir == tmp_path / "mine" and other.fresh
    assert parse_settings(["--stop-grace", "2.5"]).stop_grace_seconds == 2.5
    with pytest.raises(SettingsError, match="--fresh: only with --state"):
        parse_settings(["--fresh"])
    with pytest.raises(SettingsError, match="--stop-grace"):
        parse_settings(["--stop-grace", "0"])
