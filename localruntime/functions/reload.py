"""Notice changes to the app's code and configuration by polling modification times."""

from __future__ import annotations

from pathlib import Path

WATCHED = ("app.py", "chalicelib/**/*.py", ".chalice/config.json")


class SourceWatcher:
    def __init__(self, project: Path, patterns: tuple[str, ...] = WATCHED) -> None:
        self.project = project
        self.patterns = patterns
        self._seen = self.snapshot()

    def snapshot(self) -> dict[Path, int]:
        seen: dict[Path, int] = {}
        for pattern in self.patterns:
            for path in self.project.glob(pattern):
                try:
                    seen[path] = path.stat().st_mtime_ns
                except OSError:
                    continue
        return seen

    def changes(self) -> list[str]:
        """Files added, changed or removed since the last call (relative paths)."""
        now = self.snapshot()
        changed = {p for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p)}
        self._seen = now
        return sorted(str(p.relative_to(self.project)) for p in changed)
