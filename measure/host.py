"""Describe the machine a run happened on, for the report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def cpu_check_seconds(additions: int = 3_000_000) -> float:
    """Seconds a plain Python loop of `additions` additions takes now: how fast this
    (possibly shared) machine runs Python at the moment, to compare runs by."""
    started = time.perf_counter()
    total = 0
    for i in range(additions):
        total += i
    return round(time.perf_counter() - started, 3)


def describe_host() -> dict[str, Any]:
    return {
        "cpu_check_seconds": cpu_check_seconds(),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "boto3": _version("boto3"),
        "locust": _version("locust"),
        "moto": _version("moto"),
        "commit": _commit(),
    }


def host_file(results_csv: Path) -> Path:
    return results_csv.with_suffix(".host.json")


def update_host_file(results_csv: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write (or extend) the run's `<name>.host.json` next to its results CSV."""
    path = host_file(results_csv)
    data = json.loads(path.read_text()) if path.exists() else describe_host()
    data.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
