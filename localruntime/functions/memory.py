"""Lambda's memory limit: a handler process whose resident memory exceeds the function's
memory size is killed, and its invocation fails as Lambda's does ("Runtime exited with
error: signal: killed").

Lambda enforces the limit with a cgroup; here the runtime samples the process's RSS every
SAMPLE_SECONDS while it runs an invocation, so an allocation spike shorter than that can
pass unseen. The peak seen is reported with each invocation, like Lambda's "Max Memory Used".
"""

from __future__ import annotations

import psutil

SAMPLE_SECONDS = 0.05
MB = 1024 * 1024


class MemoryExceeded(Exception):
    """The process went over its memory size; it has been killed."""

    def __init__(self, used_mb: int, limit_mb: int) -> None:
        super().__init__(f"Runtime exited with error: signal: killed (Runtime.OutOfMemory: "
                         f"{used_mb} MB used, memory size {limit_mb} MB)")
        self.used_mb = used_mb
        self.limit_mb = limit_mb


class MemoryWatch:
    """Samples one process's RSS; remembers the peak of the current invocation."""

    def __init__(self, pid: int, limit_mb: int, enforce: bool = True) -> None:
        self.limit_mb = limit_mb
        self.enforce = enforce
        self.peak_bytes = 0
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._process = None

    def start(self) -> None:
        """A new invocation: its peak starts from the process's size now."""
        self.peak_bytes = 0
        self.sample()

    @property
    def peak_mb(self) -> int:
        return -(-self.peak_bytes // MB)

    def sample(self) -> int:
        """The RSS now (bytes); 0 once the process is gone."""
        if self._process is None:
            return 0
        try:
            rss = int(self._process.memory_info().rss)
        except psutil.Error:
            return 0
        self.peak_bytes = max(self.peak_bytes, rss)
        return rss

    def over_limit(self) -> bool:
        """Samples; True when the limit is enforced and the process is over it."""
        rss = self.sample()
        return self.enforce and rss > self.limit_mb * MB
