"""What raw files say, hour by hour, written plainly: the rollups must equal it.

Record-level figures by each valid line's own UTC hour; file-level figures by the upload's hour.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from chalicelib.core.jobs import source_of
from chalicelib.core.records import LEVEL_NAMES, shown_endpoint
from chalicelib.core.reference import parse_timestamp, read_lines


@dataclass
class Hour:
    received: int = 0
    completed: int = 0
    failed: int = 0
    malformed: int = 0
    records: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[str] = field(default_factory=Counter)
    times: list[Any] = field(default_factory=list)


@dataclass
class Expected:
    hours: dict[tuple[str, str], Hour] = field(default_factory=lambda: defaultdict(Hour))
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def hour(self, hour: str, source: str) -> Hour:
        return self.hours[(hour, source)]

    def add_file(self, key: str, data: bytes, uploaded_at: str, *, completed: bool = True
                 ) -> None:
        """A file uploaded at `uploaded_at` (ISO), completed (or failed: no statistics)."""
        source = source_of(key)
        upload = self.hour(uploaded_at[:13], source)
        upload.received += 1
        if not completed:
            upload.failed += 1
            return
        upload.completed += 1
        _, malformed, _, records = read_lines(data, gzip_hint=key.endswith(".gz"))
        upload.malformed += malformed
        for record in records:
            moment = parse_timestamp(record["timestamp"])
            assert moment is not None
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            hour = self.hour(moment.strftime("%Y-%m-%dT%H"), source)
            hour.records += 1
            level = LEVEL_NAMES[record["level"].upper()].lower()
            hour.levels[level] += 1
            hour.status_codes[str(record["status_code"])] += 1
            hour.times.append(record["response_time_ms"])
            endpoint = self.endpoints.setdefault(shown_endpoint(record["endpoint"]),
                                                 {"requests": 0, "errors": 0, "times": []})
            endpoint["requests"] += 1
            endpoint["errors"] += level == "error"
            endpoint["times"].append(record["response_time_ms"])


def rank_value(values: list[Any], q: float) -> Any:
    """The value ranked q x (n - 1) (0-based, rounded down): what a sketch approximates."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def within(estimate: float, exact: float, accuracy: float = 0.01) -> bool:
    if exact < 0.001:
        return estimate == 0
    return abs(estimate - exact) <= accuracy * exact * (1 + 1e-9) + 1e-6 * exact


def plain(document: Any) -> Any:
    """A read rollup document with its sketches' count arrays as lists (to compare)."""
    from array import array
    if isinstance(document, dict):
        return {name: plain(value) for name, value in document.items()}
    if isinstance(document, list | array):
        return [plain(value) for value in document]
    return document
