"""The runtime's output: one JSON line per invocation, plain lines for lifecycle messages,
and, on a terminal, a status line kept at the bottom."""

from __future__ import annotations

import json
import re
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

CLEAR_LINE = "\r\x1b[2K"
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')


def import_failure(traceback_text: str, project: Path) -> str:
    """One line from a Python traceback: the exception, and the last place in the project's
    own files it points at (`app.py, line 80: SyntaxError: invalid syntax`)."""
    lines = [line for line in traceback_text.splitlines() if line.strip()]
    if not lines:
        return "no output"
    where = None
    for line in lines:
        frame = _FRAME.match(line)
        if frame is None:
            continue
        path = Path(frame["path"])
        if path.is_relative_to(project) and ".venv" not in path.parts:
            where = f"{path.relative_to(project)}, line {frame['line']}"
    error = next((line.strip() for line in reversed(lines)
                  if not line.startswith((" ", "\t")) and not line.startswith("Traceback")),
                 lines[-1].strip())
    return f"{where}: {error}" if where else error


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Console:
    """Serialises every write to the stream so lines never interleave with the status."""

    def __init__(self, stream: IO[str] | None = None, *, status_line: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.interactive = status_line and self.stream.isatty()
        self._lock = threading.Lock()
        self._status = ""

    def _write(self, text: str) -> None:
        with self._lock:
            if self.interactive and self._status:
                self.stream.write(CLEAR_LINE)
            self.stream.write(text if text.endswith("\n") else text + "\n")
            if self.interactive and self._status:
                self.stream.write(self._status)
            self.stream.flush()

    def info(self, message: str) -> None:
        self._write(f"localruntime: {message}")

    def raw(self, line: str) -> None:
        """A line a handler process wrote (its log), passed through unchanged."""
        self._write(line)

    def record(self, **fields: Any) -> None:
        self._write(json.dumps({"ts": utc_now(), **fields}, default=str))

    def status(self, text: str) -> None:
        if not self.interactive:
            return
        with self._lock:
            self._status = text
            self.stream.write(CLEAR_LINE + text)
            self.stream.flush()

    def clear_status(self) -> None:
        if not self.interactive:
            return
        with self._lock:
            if self._status:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
            self._status = ""
