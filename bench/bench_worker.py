"""Benchmark the worker's summarizer against a naive streaming stdlib implementation.

    python bench/bench_worker.py            (or: make bench)

Generates the test files once under .bench-cache/, then runs each measurement in its own
process so that every peak RSS figure belongs to one run only. It also times gunzip alone
with each inflate library installed, and the worker's path stage by stage (CPU time, best
of --repeats, the candidates taking turns in one process so that they share the machine's
noise). docs/performance.md explains the figures.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
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
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from chalicelib.core.lines import GUNZIP_OUTPUT_LIMIT, decoded_chunks, line_blocks
from chalicelib.core.records import (
    BOM,
    GZIP_MAGIC,
    MAX_RESPONSE_TIME_MS,
    MAX_SAMPLES,
    TOP_ENDPOINTS,
    normalize_level,
)
from chalicelib.core.reference import (
    classify_line,
    iso_utc,
    nearest_rank,
    summarize_bytes,
)
from chalicelib.core.scan import _decode_each, scan
from chalicelib.core.summary import read_chunks, summarize_file
from logctl.generate import write_log_file

CACHE = Path(".bench-cache")
SEED = 20240501
BIG_LINES = 2_000_000
SMALL_LINES = BIG_LINES // 10
TINY_LINES = 1_000
TINY_REPEATS = 300
PLAIN_GOAL = 1.5  # M lines/s of CPU time on one core
GZIP_GOAL = 1.2
RSS_LIMIT_MB = 50
BLOCK_SIZES = (16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)
INFLATERS = {"zlib": "zlib", "isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng"}
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def naive_summarize(path: Path) -> dict[str, Any]:
    """What a straightforward Python worker does: json.loads per line, dicts and Counters.

    It keeps its own copy of the rules on purpose: it is the baseline the speed-up is
    measured against, so it must stay the plain loop a newcomer would write.
    """
    with _open(path) as stream:
        return _naive_lines(stream)


def agrees(ours: dict[str, Any], naive: dict[str, Any]) -> bool:
    """True if `ours` has the naive loop's statistics: it computes those it was written for;
    a field added to the format since is held to the reference by the tests."""
    return {name: ours.get(name) for name in naive} == naive


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
    """The rules of docs/spec.md checked one line at a time the plain way; None if malformed."""
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
            and type(value) in (int, float) and 0 <= value <= MAX_RESPONSE_TIME_MS
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
    wall: list[float] = []
    cpu: list[float] = []
    result: dict[str, Any] = {}
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = summarize(path)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"wall": wall, "cpu": cpu, "peak_rss_mb": peak_kib / 1024, "result": result},
              sys.stdout)


def _inflate(module: Any, path: Path) -> int:
    """Stream-decompress a (single-member) gzip file as the worker does: 64 KiB in, bounded out."""
    decomp = module.decompressobj(wbits=31)
    size = 0
    with path.open("rb") as f:
        for chunk in read_chunks(f):
            data = chunk
            while data:
                size += len(decomp.decompress(data, GUNZIP_OUTPUT_LIMIT))
                data = decomp.unconsumed_tail
    while out := decomp.decompress(b"", GUNZIP_OUTPUT_LIMIT):
        size += len(out)
    return size


def _blocks(path: Path) -> Any:
    f = path.open("rb")
    return line_blocks(decoded_chunks(read_chunks(f), gzip_hint=path.name.endswith(".gz")))


def _stage_blocks(path: Path) -> None:
    for _ in _blocks(path):
        pass


def _stage_lines(path: Path) -> None:
    for block in _blocks(path):
        BytesIO(block).readlines()
        block.isascii()


def _stage_decode(path: Path) -> None:
    for block in _blocks(path):
        lines = BytesIO(block).readlines()
        block.isascii()
        _decode_each(lines)


STAGES: dict[str, Callable[[Path], Any]] = {
    "read, cut into blocks of whole lines": _stage_blocks,
    "split into lines, check UTF-8": _stage_lines,
    "decode and validate (msgspec)": _stage_decode,
    "aggregate (the whole worker path)": summarize_file,
}


def _best_cpu_in_turns(candidates: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Any]:
    """Best CPU time of each candidate, running them in turns so they share the same noise."""
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return best


def _gunzip_child(path: Path, repeats: int) -> None:
    modules = {}
    for name, module in INFLATERS.items():
        try:
            modules[name] = importlib.import_module(module)
        except ImportError:
            continue
    sizes = {name: _inflate(m, path) for name, m in modules.items()}
    if len(set(sizes.values())) != 1:
        raise SystemExit(f"inflaters disagree on the size: {sizes}")
    best = _best_cpu_in_turns({n: (lambda m=m: _inflate(m, path)) for n, m in modules.items()},
                              repeats)
    json.dump({"cpu": best, "out_bytes": next(iter(sizes.values()))}, sys.stdout)


def _summarize_in_blocks(path: Path, block_bytes: int) -> dict[str, Any]:
    with path.open("rb") as f:
        return scan(line_blocks(read_chunks(f), block_bytes=block_bytes)).result()


def _blocks_child(path: Path, repeats: int) -> None:
    best = _best_cpu_in_turns(
        {str(size): (lambda size=size: _summarize_in_blocks(path, size)) for size in BLOCK_SIZES},
        repeats)
    json.dump({"cpu": best}, sys.stdout)


def _stages_child(path: Path, repeats: int) -> None:
    best = _best_cpu_in_turns({n: (lambda f=f: f(path)) for n, f in STAGES.items()}, repeats)
    json.dump({"cpu": best}, sys.stdout)


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
        "dirty": CACHE / f"bench-{SMALL_LINES}-malformed-1pct.ndjson",
    }
    for key, lines, malformed in (("big", BIG_LINES, 0.0), ("small", SMALL_LINES, 0.0),
                                  ("tiny", TINY_LINES, 0.0), ("dirty", SMALL_LINES, 0.01)):
        if not files[key].exists():
            print(f"generating {files[key]} ...", flush=True)
            partial = files[key].with_suffix(".partial")
            write_log_file(partial, lines, seed=SEED, malformed_rate=malformed)
            partial.rename(files[key])
    if not files["big_gz"].exists():
        print(f"compressing {files['big_gz']} ...", flush=True)
        partial = files["big_gz"].with_suffix(".partial")
        with files["big"].open("rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        partial.rename(files["big_gz"])
    return files


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


def _row(name: str, lines: int, m: dict[str, Any]) -> str:
    wall, cpu = min(m["wall"]), min(m["cpu"])
    return (f"{name:40s} {wall:7.2f} s {lines / wall / 1e6:9.3f} {lines / cpu / 1e6:9.3f}"
            f" {m['peak_rss_mb']:8.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_worker.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of our implementation per file, best kept (default 3)")
    args = parser.parse_args(argv)
    if args.child:
        impl, path = args.child[0], Path(args.child[1])
        if impl == "gunzip":
            _gunzip_child(path, args.repeats)
        elif impl == "stages":
            _stages_child(path, args.repeats)
        elif impl == "blocks":
            _blocks_child(path, args.repeats)
        else:
            _child(impl, path, args.repeats)
        return 0

    files = _files()
    sizes = {k: p.stat().st_size / 1e6 for k, p in files.items()}
    print(f"machine: {_machine()}")
    print(f"date:    {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print("command: make bench  (python bench/bench_worker.py)")
    print(f"files:   {BIG_LINES:,} lines = {sizes['big']:.0f} MB (gzip {sizes['big_gz']:.0f} MB), "
          f"{SMALL_LINES:,} lines = {sizes['small']:.0f} MB, {TINY_LINES:,} lines")
    print(f"\n{'':40s} {'':9s} {'M lines/s':>19s}")
    print(f"{'run (ours: best of ' + str(args.repeats) + ')':40s} {'wall time':>9s} "
          f"{'wall':>9s} {'cpu':>9s} {'peak RSS':>11s}")

    runs = [("naive", "big", 1), ("ours", "big", args.repeats), ("naive", "big_gz", 1),
            ("ours", "big_gz", args.repeats), ("naive", "small", 1),
            ("ours", "small", args.repeats), ("ours", "dirty", args.repeats)]
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    for impl, key, repeats in runs:
        m = measured[impl, key] = _measure(impl, files[key], repeats)
        lines = BIG_LINES if key.startswith("big") else SMALL_LINES
        label = f"{impl} {files[key].name}"
        print(_row(label, lines, m), flush=True)

    tiny = _measure("ours", files["tiny"], TINY_REPEATS)
    tiny_naive = _measure("naive", files["tiny"], TINY_REPEATS // 10)
    per_file = statistics.median(tiny["wall"]) * 1000
    print(f"{'ours ' + files['tiny'].name:40s} {per_file:7.2f} ms per file (median of "
          f"{TINY_REPEATS}; naive {statistics.median(tiny_naive['wall']) * 1000:.2f} ms)")

    gunzip = _measure("gunzip", files["big_gz"], args.repeats)
    out_mb = gunzip["out_bytes"] / 1e6
    print(f"\ngunzip alone, {files['big_gz'].name} ({sizes['big_gz']:.0f} MB -> {out_mb:.0f} MB), "
          f"cpu, best of {args.repeats}, in turns:")
    for name, cpu in gunzip["cpu"].items():
        print(f"  {name:10s} {cpu:6.2f} s {out_mb / cpu:7.0f} MB/s "
              f"{cpu / BIG_LINES * 1e9:6.0f} ns/line {gunzip['cpu']['zlib'] / cpu:5.2f}x zlib")

    stages = _measure("stages", files["big"], args.repeats)["cpu"]
    print(f"\nwhere the time goes, {files['big'].name}, cpu, best of {args.repeats}, in turns:")
    print(f"  {'stage (each adds to the one above)':40s} {'total':>8s} {'this stage':>12s}")
    before, whole = 0.0, max(stages.values())
    for name, cpu in stages.items():
        added = max(cpu - before, 0.0)
        print(f"  {name:40s} {cpu / BIG_LINES * 1e9:5.0f} ns "
              f"{added / BIG_LINES * 1e9:6.0f} ns/line {added / whole * 100:4.0f} %")
        before = cpu

    by_size = _measure("blocks", files["small"], args.repeats)["cpu"]
    print(f"\nblock size, {files['small'].name}, cpu, best of {args.repeats}, in turns:")
    print("  " + ", ".join(f"{int(size) // 1024} KiB {cpu / SMALL_LINES * 1e9:.0f} ns/line"
                           for size, cpu in by_size.items()))

    expected = measured["naive", "big"]["result"]
    agree = (agrees(measured["ours", "big"]["result"], expected)
             and agrees(measured["ours", "big_gz"]["result"], expected)
             and measured["naive", "big_gz"]["result"] == expected
             and agrees(measured["ours", "small"]["result"], measured["naive", "small"]["result"])
             and measured["ours", "dirty"]["result"] == summarize_bytes(files["dirty"].read_bytes())
             and agrees(tiny["result"], tiny_naive["result"]))

    def speedup(key: str, clock: str) -> float:
        return min(measured["naive", key][clock]) / min(measured["ours", key][clock])

    def rate(key: str) -> float:
        return BIG_LINES / min(measured["ours", key]["cpu"]) / 1e6

    ours_growth = measured["ours", "big"]["peak_rss_mb"] - measured["ours", "small"]["peak_rss_mb"]
    naive_growth = (measured["naive", "big"]["peak_rss_mb"]
                    - measured["naive", "small"]["peak_rss_mb"])
    peak = max(m["peak_rss_mb"] for (impl, _), m in measured.items() if impl == "ours")
    print()
    print(f"ours / naive, plain file:  {speedup('big', 'wall'):5.2f}x wall, "
          f"{speedup('big', 'cpu'):5.2f}x cpu (naive: one run)")
    print(f"ours / naive, gzip file:   {speedup('big_gz', 'wall'):5.2f}x wall, "
          f"{speedup('big_gz', 'cpu'):5.2f}x cpu")
    print(f"peak RSS, 10x the lines:   {ours_growth:+.1f} MB (ours), "
          f"{naive_growth:+.1f} MB (naive)")
    print(f"results identical:         {'yes' if agree else 'NO'} (ours = naive = reference)")
    targets = [
        (f"plain >= {PLAIN_GOAL} M lines/s on one core (cpu: {rate('big'):.2f})",
         rate("big") >= PLAIN_GOAL),
        (f"gzip >= {GZIP_GOAL} M lines/s on one core (cpu: {rate('big_gz'):.2f})",
         rate("big_gz") >= GZIP_GOAL),
        ("ours >= 3x naive (cpu), plain and gzip",
         speedup("big", "cpu") >= 3 and speedup("big_gz", "cpu") >= 3),
        (f"peak RSS < {RSS_LIMIT_MB} MB (ours: {peak:.1f} MB)", peak < RSS_LIMIT_MB),
        ("RSS within 10 MB of the 10x smaller file", abs(ours_growth) <= 10),
        ("1,000-line file < 5 ms", per_file < 5),
    ]
    print("targets:")
    for name, ok in targets:
        print(f"  {'met    ' if ok else 'NOT met'}  {name}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
