"""Generate NDJSON log files like the ones the pipeline processes.

    python -m logctl.generate --lines 1000 -o logs.ndjson
    python -m logctl.generate --lines 100000 --malformed-rate 0.01 --gzip -o big.ndjson.gz
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ENDPOINTS = (
    "/api/users", "/api/users/{id}", "/api/orders", "/api/orders/{id}", "/api/products",
    "/api/products/search", "/api/cart", "/api/checkout", "/api/payments", "/api/login",
    "/api/logout", "/api/health", "/api/metrics", "/api/inventory", "/api/reviews",
)
OK_STATUSES = (200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 429)
ERROR_STATUSES = (500, 502, 503, 504)
NON_ERROR_LEVELS = ("INFO",) * 16 + ("WARN",) * 2 + ("DEBUG",) * 2
MALFORMED_KINDS = (
    "truncated", "missing_field", "bad_level", "negative_time", "bool_status",
    "not_object", "bad_timestamp", "status_out_of_range",
)
SPACING_MS = 250  # one record every quarter second on average: 14,400 an hour


def current_hour() -> datetime:
    """The start of this UTC hour: where generated events begin unless told otherwise, so
    they land in the rollups' recent hours (docs/spec.md, "Rollups")."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _record(rng: random.Random, i: int, error_rate: float, users: int,
            start: datetime) -> dict[str, object]:
    is_error = rng.random() < error_rate
    ts = start + timedelta(milliseconds=i * SPACING_MS + rng.randrange(SPACING_MS))
    return {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "level": "ERROR" if is_error else rng.choice(NON_ERROR_LEVELS),
        "endpoint": rng.choice(ENDPOINTS),
        "response_time_ms": int(rng.lognormvariate(4.0, 0.8)) + (1500 if is_error else 0),
        "status_code": rng.choice(ERROR_STATUSES if is_error else OK_STATUSES),
        "user_id": f"user_{rng.randrange(users)}",
        "request_id": f"{rng.getrandbits(64):016x}",
    }


def _malformed(rng: random.Random, record: dict[str, object]) -> bytes:
    kind = rng.choice(MALFORMED_KINDS)
    if kind == "truncated":
        text = json.dumps(record)
        return text[: rng.randrange(1, len(text) - 1)].encode()
    bad = dict(record)
    if kind == "missing_field":
        del bad[rng.choice(("timestamp", "level", "endpoint", "response_time_ms",
                            "status_code", "user_id"))]
    elif kind == "bad_level":
        bad["level"] = "VERBOSE"
    elif kind == "negative_time":
        bad["response_time_ms"] = -5
    elif kind == "bool_status":
        bad["status_code"] = True
    elif kind == "not_object":
        return json.dumps([record["endpoint"], record["status_code"]]).encode()
    elif kind == "bad_timestamp":
        bad["timestamp"] = "yesterday at noon"
    elif kind == "status_out_of_range":
        bad["status_code"] = 99
    return json.dumps(bad, separators=(",", ":")).encode()


def generate_lines(n: int, *, error_rate: float = 0.05, malformed_rate: float = 0.0,
                   seed: int | None = None, users: int = 1000,
                   start: datetime | None = None) -> Iterator[bytes]:
    """Yield `n` NDJSON lines (each ending in a newline), timestamped from `start` (default:
    the start of the current UTC hour) on."""
    if n < 0:
        raise ValueError("lines must be >= 0")
    for name, rate in (("error_rate", error_rate), ("malformed_rate", malformed_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    rng = random.Random(seed)
    start = start or current_hour()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for i in range(n):
        record = _record(rng, i, error_rate, users, start)
        if malformed_rate and rng.random() < malformed_rate:
            yield _malformed(rng, record) + b"\n"
        else:
            yield dumps(record).encode() + b"\n"


def write_log_file(path: str | Path, lines: int, *, error_rate: float = 0.05,
                   malformed_rate: float = 0.0, gzip: bool = False,
                   seed: int | None = None, start: datetime | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch: list[bytes] = []
    opener = gzip_module.open if gzip else open
    with opener(path, "wb") as out:
        for line in generate_lines(lines, error_rate=error_rate,
                                   malformed_rate=malformed_rate, seed=seed, start=start):
            batch.append(line)
            if len(batch) >= 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    return path


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time such as "
                                         "2024-05-01T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1000,
                        help="non-blank lines to write (default 1000)")
    parser.add_argument("--error-rate", type=float, default=0.05,
                        help="fraction of records at level ERROR with a 5xx status")
    parser.add_argument("--malformed-rate", type=float, default=0.0,
                        help="fraction of lines that are not valid records")
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random draws: the same seed writes the same bytes "
                        "(default: a new file each time)")
    parser.add_argument("--start", type=_moment, default=None, metavar="TIME",
                        help="timestamp of the first event, RFC 3339 (e.g. 2024-05-01T00:00:00Z); "
                        "events follow a quarter second apart (default: the start of the "
                        "current UTC hour)")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    args = parser.parse_args(argv)
    replaced = Path(args.output).exists()
    try:
        path = write_log_file(args.output, args.lines, error_rate=args.error_rate,
                              malformed_rate=args.malformed_rate, gzip=args.gzip, seed=args.seed,
                              start=args.start)
    except (ValueError, OSError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    note = ", replacing the file that was there" if replaced else ""
    print(f"{path} ({path.stat().st_size} bytes, {args.lines} lines{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
