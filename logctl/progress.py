"""A progress line on stderr for long uploads and waits.

On a terminal the line is rewritten in place; otherwise (a log, CI) a plain line is
written at most every PLAIN_INTERVAL_SECONDS. Nothing is shown for work that ends within
the first interval, so short commands print no progress at all. Hand-written rather
than tqdm: the one line here is 60 lines of code, tqdm would be one more dependency.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO

TERMINAL_INTERVAL_SECONDS = 0.2
PLAIN_INTERVAL_SECONDS = 5.0
CLEAR_LINE = "\r\x1b[2K"
MIB = 1024 * 1024


class Progress:
    """Shows the latest `update` text, rate-limited; thread-safe (transfer callbacks)."""

    def __init__(self, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.interval = TERMINAL_INTERVAL_SECONDS if self.terminal else PLAIN_INTERVAL_SECONDS
        self.clock = clock
        self._lock = threading.Lock()
        self._next = clock() + self.interval
        self._shown = False

    def update(self, text: str) -> None:
        with self._lock:
            now = self.clock()
            if now < self._next:
                return
            self._next = now + self.interval
            self._shown = True
            if self.terminal:
                self.stream.write(CLEAR_LINE + text)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def clear(self) -> None:
        """End the line in place (terminal) so the next output starts on a clean line."""
        with self._lock:
            if self.terminal and self._shown:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
            self._shown = False
            self._next = self.clock() + self.interval


class TransferProgress:
    """A boto3 transfer Callback: adds up the bytes sent and shows `sent of total`."""

    def __init__(self, progress: Progress, label: str, total: int) -> None:
        self.progress, self.label, self.total = progress, label, total
        self.sent = 0
        self._lock = threading.Lock()

    def __call__(self, chunk: int) -> None:
        with self._lock:
            self.sent += chunk
            sent = self.sent
        share = sent / self.total if self.total else 1.0
        self.progress.update(f"upload: {self.label}  {sent / MIB:,.1f} of "
                             f"{self.total / MIB:,.1f} MiB ({share:.0%})")
