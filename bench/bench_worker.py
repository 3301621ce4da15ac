"""Benchmark the worker's summarizer against a naive streaming stdlib implementation.

    python bench/bench_worker.py            (or: make bench)

Generates the test files once under .bench-cache/, then runs each measurement in its own
process so that every peak RSS figure belongs to one run only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from chalicelib.records import normalize_level
from chalicelib.reference import (
    BOM,
    GZIP_MAGIC,
    MAX_SAMPLES,
    TOP_ENDPOINTS,
    classify_line,
    iso_utc,
    nearest_rank,
)
from chalicelib.summary import summarize_file
from logctl.generate import write_log_file

CACHE = Path(".bench-cache")
SEED = 20240501
BIG_LINES = 2_000_000
SMALL_LINES = BIG_LINES // 10
TINY_LINES = 1_000
TINY_REPEATS = 300
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def naive_summarize(path: Path) -> dict[str, Any]:
    """What a straightforward Python worker does: json.loads per line, dicts and Counters."""
    with _open(path) as stream:
        return _naive_lines(stream)


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        head = probe.read(len(GZIP_MAGIC))
    if path.name.endswith(".gz") or head == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _naive_lines(stream: BinaryIO) -> dict[str, Any]:
    line_count = malformed = 0
    samples: list[dict[str, Any]] = []
    levels: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    users: set[str] = set()
    times: list[Any] = []
    by_endpoint: dict[str, list[Any]] = {}
    errors: Counter[str] = Counter()
    first: datetime | None = None
    last: datetime | None = None
    for number, raw in enumerate(stream, start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        if not line.strip():
            continue
        line_count += 1
        record = _naive_record(line)
        if record is None:
            malformed += 1
            if len(samples) < MAX_SAMPLES:
                samples.append({"line": number, "reason": classify_line(line)[1]})
            continue
        level = record["level"]
        levels[level] += 1
        statuses[record["status_code"]] += 1
        users.add(record["user_id"])
        value = record["response_time_ms"]
        times.append(value)
        by_endpoint.setdefault(record["endpoint"], []).append(value)
        if level == "ERROR":
            errors[record["endpoint"]] += 1
        stamp = record["stamp"]
        first = stamp if first is None or stamp < first else first
        last = stamp if last is None or stamp > last else last
    times.sort()
    top = sorted(by_endpoint.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_ENDPOINTS]
    n = len(times)
    return {
        "line_count": line_count,
        "malformed_count": malformed,
        "malformed_samples": samples,
        "info_count": levels["INFO"],
        "warn_count": levels["WARN"],
        "error_count": levels["ERROR"],
        "debug_count": levels["DEBUG"],
        "avg_response_time_ms": round(math.fsum(times) / n, 3) if n else None,
        "max_response_time_ms": times[-1] if n else None,
        "p50_response_time_ms": nearest_rank(times, 50) if n else None,
        "p95_response_time_ms": nearest_rank(times, 95) if n else None,
        "p99_response_time_ms": nearest_rank(times, 99) if n else None,
        "unique_users": len(users),
        "unique_endpoints": len(by_endpoint),
        "status_codes": {str(code): c for code, c in sorted(statuses.items())},
        "top_endpoints": [
            {"endpoint": e, "count": len(v), "error_count": errors[e],
             "avg_response_time_ms": round(math.fsum(v) / len(v), 3)}
            for e, v in top
        ],
        "first_timestamp": iso_utc(first) if first else None,
        "last_timestamp": iso_utc(last) if last else None,
    }


def _naive_record(line: bytes) -> dict[str, Any] | None:
    """The DESIGN rules checked one line at a time the plain way; None if malformed."""
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    try:
        ts, level, endpoint = record["timestamp"], record["level"], record["endpoint"]
        value, status, user = record["response_time_ms"], record["status_code"], record["user_id"]
    except KeyError:
        return None
    if not (isinstance(ts, str) and _RFC3339.fullmatch(ts := ts.upper())
            and isinstance(level, str) and (level := normalize_level(level))
            and isinstance(endpoint, str) and endpoint
            and type(value) in (int, float) and math.isfinite(value) and value >= 0
            and type(status) is int and 100 <= status <= 599
            and isinstance(user, str) and user):
        return None
    try:
        stamp = datetime.fromisoformat(ts)
    except ValueError:
        return None
    record["level"] = level
    record["stamp"] = stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return record


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


IMPLEMENTATIONS = {"naive": naive_summarize, "ours": summarize_file}


def _child(impl: str, path: Path, repeats: int) -> None:
    summarize = IMPLEMENTATIONS[impl]
    durations = []
    result: dict[str, Any] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = summarize(path)
        durations.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"durations": durations, "peak_rss_mb": peak_kib / 1024, "result": result},
              sys.stdout)


def _measure(impl: str, path: Path, repeats: int = 1) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", impl, str(path), "--repeats", str(repeats)],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _files() -> dict[str, Path]:
    CACHE.mkdir(exist_ok=True)
    files = {
        "big": CACHE / f"bench-{BIG_LINES}.ndjson",
        "big_gz": CACHE / f"bench-{BIG_LINES}.ndjson.gz",
        "small": CACHE / f"bench-{SMALL_LINES}.ndjson",
        "tiny": CACHE / f"bench-{TINY_LINES}.ndjson",
    }
    for key, lines in (("big", BIG_LINES), ("small", SMALL_LINES), ("tiny", TINY_LINES)):
        if not files[key].exists():
            print(f"generating {files[key]} ...", flush=True)
            _write_atomically(files[key], lines)
    if not files["big_gz"].exists():
        print(f"compressing {files['big_gz']} ...", flush=True)
        partial = files["big_gz"].with_suffix(".partial")
        with files["big"].open("rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
            for block in _read_blocks(src):
                dst.write(block)
        partial.rename(files["big_gz"])
    return files


def _write_atomically(path: Path, lines: int) -> None:
    partial = path.with_suffix(".partial")
    write_log_file(partial, lines, seed=SEED)
    partial.rename(path)


def _read_blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(1 << 20):
        yield block


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}")


def _rate(lines: int, seconds: float) -> str:
    return f"{lines / seconds / 1e6:6.3f} M lines/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--skip-naive-gzip", action="store_true",
                        help="do not time the naive implementation on the gzip file")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]), args.repeats)
        return 0

    files = _files()
    print(f"machine: {_machine()}")
    print(f"date:    {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print("command: make bench  (python bench/bench_worker.py)")
    sizes = {k: p.stat().st_size / 1e6 for k, p in files.items()}
    print(f"files:   {BIG_LINES:,} lines = {sizes['big']:.0f} MB "
          f"(gzip {sizes['big_gz']:.0f} MB), {SMALL_LINES:,} lines = {sizes['small']:.0f} MB, "
          f"{TINY_LINES:,} lines = {sizes['tiny'] * 1000:.0f} kB\n")

    runs = [("naive", "big"), ("ours", "big")]
    if not args.skip_naive_gzip:
        runs.append(("naive", "big_gz"))
    runs += [("ours", "big_gz"), ("ours", "small"), ("naive", "small")]
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    print(f"{'run':22s} {'time':>9s} {'throughput':>18s} {'peak RSS':>10s}")
    for impl, key in runs:
        m = measured[impl, key] = _measure(impl, files[key])
        lines = SMALL_LINES if key == "small" else BIG_LINES
        seconds = m["durations"][0]
        print(f"{impl + ' ' + files[key].name:22s} {seconds:8.2f}s {_rate(lines, seconds):>18s} "
              f"{m['peak_rss_mb']:7.1f} MB", flush=True)

    tiny_ours = _measure("ours", files["tiny"], TINY_REPEATS)
    tiny_naive = _measure("naive", files["tiny"], TINY_REPEATS // 10)
    per_file = statistics.median(tiny_ours["durations"]) * 1000
    per_file_naive = statistics.median(tiny_naive["durations"]) * 1000
    print(f"{'ours ' + files['tiny'].name:22s} {per_file:7.2f}ms per file "
          f"(median of {TINY_REPEATS}; naive {per_file_naive:.2f} ms)")

    agree = all(measured["naive", k]["result"] == measured["ours", k]["result"]
                for k in ("big", "small"))
    agree = agree and measured["ours", "big_gz"]["result"] == measured["ours", "big"]["result"]
    if ("naive", "big_gz") in measured:
        agree = agree and measured["naive", "big_gz"]["result"] == measured["ours", "big"]["result"]
    agree = agree and tiny_ours["result"] == tiny_naive["result"]

    speedup = measured["naive", "big"]["durations"][0] / measured["ours", "big"]["durations"][0]
    gz_base = measured.get(("naive", "big_gz"), measured["naive", "big"])
    gz_speedup = gz_base["durations"][0] / measured["ours", "big_gz"]["durations"][0]
    growth = measured["ours", "big"]["peak_rss_mb"] - measured["ours", "small"]["peak_rss_mb"]
    print()
    print(f"ours / naive, plain file:   {speedup:5.2f}x")
    print(f"ours / naive, gzip file:    {gz_speedup:5.2f}x")
    naive_growth = (measured["naive", "big"]["peak_rss_mb"]
                    - measured["naive", "small"]["peak_rss_mb"])
    print(f"peak RSS growth 10x lines:  {growth:+.1f} MB (ours), {naive_growth:+.1f} MB (naive)")
    print(f"results identical:          {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
