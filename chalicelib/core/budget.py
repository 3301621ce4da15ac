"""Time and memory a job may use, checked while its file is read (docs/spec.md, "Limits").

A job that had the invocation to itself and still cannot finish in it, or that needs more
memory than the function has, is too large: it ends `failed` in that invocation instead of
being killed again on every retry. A job that started late in a batch and runs out of time
is not at fault: it is handed to a fresh invocation (Deferred).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from chalicelib.core.errors import Deferred, JobRejected

MIN_MARGIN_MS = 500.0
MARGIN_SHARE = 0.05  # of the invocation's time, kept back to write the result
WHOLE_SHARE = 0.9  # a job that started with this share of the time left had it to itself
PROJECT_AFTER_SHARE = 0.25  # the rate so far is trusted once this share of the time has passed
PROJECT_SLACK = 1.5  # and a job ends early only if it needs this many times the time it has
MEMORY_SHARE = 0.8  # of the function's memory size, the most a job may make the process hold
# Reading the resident size takes ~11 µs: once per 16 checks (1 MiB of content) costs <0.5 %
# of the time to process it, and 1 MiB of content cannot grow memory by the 20 % kept back.
MEMORY_EVERY = 16
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux, as on Lambda); None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Budget:
    """The limits of one invocation, shared by the jobs of its batch."""

    def __init__(self, remaining_ms: Callable[[], int] | None, memory_mb: int | None,
                 resident: Callable[[], int | None] = resident_bytes) -> None:
        self.remaining_ms = remaining_ms
        self.total_ms = float(remaining_ms()) if remaining_ms is not None else None
        self.memory_limit = int(memory_mb * 1024 * 1024 * MEMORY_SHARE) if memory_mb else None
        self.resident = resident

    def job(self, size: int) -> JobBudget:
        return JobBudget(self, size)


class JobBudget:
    """Checks one job's time and memory; `check` runs for every block of content read."""

    def __init__(self, invocation: Budget, size: int) -> None:
        self.invocation = invocation
        self.size = size
        self.read = 0
        total = invocation.total_ms
        self.started_ms = invocation.remaining_ms() if invocation.remaining_ms else None
        self.margin_ms = max(MIN_MARGIN_MS, total * MARGIN_SHARE) if total else MIN_MARGIN_MS
        self.whole = bool(total and self.started_ms is not None
                          and self.started_ms >= total * WHOLE_SHARE)
        self.baseline = invocation.resident() if invocation.memory_limit else None
        self.checks = 0
        self.first_byte_ms: int | None = None  # remaining time when the first bytes came

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The object's raw chunks, counting the bytes read for the rate check."""
        for chunk in chunks:
            if self.first_byte_ms is None and self.invocation.remaining_ms is not None:
                self.first_byte_ms = self.invocation.remaining_ms()
            self.read += len(chunk)
            yield chunk

    def start(self) -> None:
        """Hand the job on before it is claimed when too little time is left to begin it."""
        if self.started_ms is not None and self.started_ms < self.margin_ms:
            raise Deferred("too little time was left in this invocation to start the job; "
                           "handed to a fresh one")

    def check(self) -> None:
        self.checks += 1
        if self.checks % MEMORY_EVERY == 1:
            self._check_memory()
        if self.started_ms is None or self.invocation.remaining_ms is None:
            return
        left = self.invocation.remaining_ms()
        if left < self.margin_ms:
            self._out_of_time("processing did not finish within")
        self._check_rate(left)

    def _check_rate(self, left: int) -> None:
        """Stop early a job whose reading rate so far cannot finish it in time.

        The rate is measured from the first byte: a slow start (S3 retrying a throttled
        GetObject, a cold connection) says nothing about how fast the file is read.
        """
        if self.first_byte_ms is None or self.started_ms is None or not self.read:
            return
        reading = self.first_byte_ms - left
        if reading < self.started_ms * PROJECT_AFTER_SHARE:
            return
        needed = (self.started_ms - self.first_byte_ms) + reading * self.size / self.read
        if needed > PROJECT_SLACK * (self.started_ms - self.margin_ms):
            rate = self.read / reading / 1000  # MB/s
            self._out_of_time(f"at {rate:.2f} MB/s so far, the file needs about "
                              f"{needed / 1000:.0f} s, more than")

    def _out_of_time(self, what: str) -> None:
        total_s = round((self.invocation.total_ms or 0) / 1000)
        if self.whole:
            raise JobRejected("too_large", f"{what} the worker's {total_s} s time limit")
        raise Deferred(f"{what} the time left in this invocation; handed to a fresh one")

    def _check_memory(self) -> None:
        limit = self.invocation.memory_limit
        if limit is None:
            return
        used = self.invocation.resident()
        if used is None or used <= limit:
            return
        if self.baseline is not None and used - self.baseline < limit / 2:
            raise Deferred(f"the process already held {self.baseline // 2**20} MB when the job "
                            "started; handed to a fresh invocation")
        raise JobRejected(
                "too_large", f"the file needs more than {limit // 2**20} MB of memory "
                f"({MEMORY_SHARE:.0%} of the worker's memory size), mostly for its distinct "
                "users, endpoints and response times")
