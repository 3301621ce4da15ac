"""The progress line: silent for short work, rate-limited, rewritten in place on a terminal."""

from __future__ import annotations

import io

from logctl.progress import CLEAR_LINE, Progress, TransferProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_shown_before_the_first_interval() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock)

    progress.update("upload: 1 of 2")
    progress.clear()

    assert stream.getvalue() == ""


def test_a_log_gets_one_plain_line_per_interval() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock)

    for step in range(12):  # one update a second for 12 s, 5 s apart in the log
        clock.now += 1.0
        progress.update(f"step {step}")

    assert stream.getvalue() == "step 4\nstep 9\n"


def test_a_terminal_line_is_rewritten_and_cleared() -> None:
    stream, clock = Terminal(), Clock()
    progress = Progress(stream, clock)

    clock.now += 0.5
    progress.update("half")
    clock.now += 0.5
    progress.update("all")
    progress.clear()

    assert stream.getvalue() == f"{CLEAR_LINE}half{CLEAR_LINE}all{CLEAR_LINE}"


def test_transfer_progress_adds_up_the_chunks() -> None:
    stream, clock = io.StringIO(), Clock()
    sent = TransferProgress(Progress(stream, clock), "logs/big.ndjson", 4 * 1024 * 1024)

    sent(1024 * 1024)
    clock.now += 10
    sent(1024 * 1024)

    assert sent.sent == 2 * 1024 * 1024
    assert stream.getvalue() == "upload: logs/big.ndjson  2.0 of 4.0 MiB (50%)\n"
