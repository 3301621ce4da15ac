"""The soak's workload: what to upload, and what each upload must end as.

Everything is derived from a seed: a `Plan` lists `Step`s (upload, re-upload, overwrite,
delete, a key outside `logs/`, a message that is not a job, events put into the ingest
stream), and every file's bytes are
generated again from its `FileSpec` when the reconciliation needs them, so nothing large
is kept in memory or on disk.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from chalicelib.core.records import MAX_LINE_BYTES
from logctl.generate import generate_lines

VALID = {"timestamp": "2024-05-01T12:00:00Z", "level": "INFO", "endpoint": "/api/a",
         "response_time_ms": 12, "status_code": 200, "user_id": "u1"}
BOMB_MEMBER_BYTES = 256 * 1024 * 1024
# Codes a file may fail with when it needs more time or memory than the worker has.
RESOURCE_CODES = frozenset({"too_large"})


def _line(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class FileSpec:
    """How to make one file's bytes; the same spec always gives the same bytes."""

    kind: str
    seed: int
    size: int = 0
    gzip: bool = False
    crlf: bool = False
    bom: bool = False
    malformed_rate: float = 0.0

    def content(self) -> bytes:
        data = _MAKERS[self.kind](self)
        if self.crlf:
            data = data.replace(b"\n", b"\r\n")
        if self.bom:
            data = b"\xef\xbb\xbf" + data
        if self.gzip:
            data = gzip.compress(data, compresslevel=1, mtime=0)
        return data


def _regular(spec: FileSpec) -> bytes:
    lines = max(0, spec.size // 150)
    return b"".join(generate_lines(lines, malformed_rate=spec.malformed_rate, seed=spec.seed))


def _gzip_bomb(spec: FileSpec) -> bytes:
    """`spec.size` bytes of zeros (no newline) as gzip members of up to 256 MiB each."""
    members = []
    remaining = spec.size
    cache: dict[int, bytes] = {}
    while remaining > 0:
        n = min(remaining, BOMB_MEMBER_BYTES)
        if n not in cache:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(1 << 20)
            parts = [packer.compress(block) for _ in range(n >> 20)]
            parts += [packer.compress(bytes(n & ((1 << 20) - 1))), packer.flush()]
            cache[n] = b"".join(parts)
        members.append(cache[n])
        remaining -= n
    return b"".join(members)


def _long_line(spec: FileSpec) -> bytes:
    return _line() + b"a" * spec.size


def _blank_lines(spec: FileSpec) -> bytes:
    return _line() + b"\n" * spec.size + b"   \t\n" * 1000 + _line(level="ERROR")


def _deep_nesting(spec: FileSpec) -> bytes:
    depth = spec.size
    return b"".join((_line(), b"[" * depth + b"]" * depth + b"\n",
                     b'{"a":' * depth + b"1" + b"}" * depth + b"\n",
                     b"[" * depth + b"\n", _line(level="WARN")))


def _invalid_utf8(spec: FileSpec) -> bytes:
    return b"".join((_line(), b'{"level":"\xff\xfe"}\n', _line()[:-3] + b'\xc0\xaf"}\n',
                     _line(user_id="\ud800").replace(b"\\ud800", b"\xed\xa0\x80"),
                     b"\x80\x81\x82\n", _line(user_id="caf\u00e9"), _line(user_id="\U0001f600")))


def _huge_numbers(spec: FileSpec) -> bytes:
    digits = "9" * 5000
    rows = [_line(), _line(response_time_ms=1).replace(b'"response_time_ms":1',
                                                       b'"response_time_ms":1e400'),
            _line(response_time_ms=1).replace(b'"response_time_ms":1',
                                              f'"response_time_ms":{digits}'.encode()),
            _line(status_code=1).replace(b'"status_code":1',
                                         f'"status_code":{digits}'.encode()),
            _line(response_time_ms=1).replace(b'"response_time_ms":1',
                                              b'"response_time_ms":1e-400'),
            _line(response_time_ms=1).replace(b'"response_time_ms":1',
                                              b'"response_time_ms":-0.0'),
            _line(response_time_ms=1.7976931348623157e308), _line(status_code=200.0)]
    return b"".join(rows)


def _nan_infinity(spec: FileSpec) -> bytes:
    rows = [_line()]
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        rows.append(_line(response_time_ms=1).replace(b'"response_time_ms":1',
                                                      b'"response_time_ms":' + constant))
    rows.append(_line(user_id="NaN"))
    return b"".join(rows)


def _duplicate_keys(spec: FileSpec) -> bytes:
    return b"".join((
        _line()[:-2] + b',"level":"ERROR"}\n',
        _line()[:-2] + b',"status_code":"x"}\n',
        _line()[:-2] + b',"user_id":"u2","user_id":"u3"}\n',
        b'{"level":"bogus",' + _line()[1:],
    ))


def _distinct_users(spec: FileSpec) -> bytes:
    template = ('{"timestamp":"2024-05-01T12:00:00Z","level":"INFO","endpoint":"/e",'
                '"response_time_ms":%d,"status_code":200,"user_id":"user-%d"}\n')
    return "".join(template % (i % 997, i) for i in range(spec.size)).encode()


def _long_endpoints(spec: FileSpec) -> bytes:
    """`spec.size` valid lines whose endpoint names are each about 1 MiB, all distinct."""
    length = MAX_LINE_BYTES - 200
    return b"".join(_line(endpoint=f"/{i:04d}" + "e" * (length - 5)) for i in range(spec.size))


def _one_long_endpoint(spec: FileSpec) -> bytes:
    return _line(endpoint="/" + "x" * spec.size)


def _extreme_timestamps(spec: FileSpec) -> bytes:
    return b"".join(_line(timestamp=t) for t in (
        "2024-05-01T12:00:00Z", "9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59.9999999Z", "0001-01-01T00:00:00Z", "2024-02-30T00:00:00Z",
        "2024-05-01 12:00:00.123456789+23:59"))


def _x_lines(spec: FileSpec) -> bytes:
    return b"x\n" * (spec.size // 2)


def _all_malformed(spec: FileSpec) -> bytes:
    return b"".join(b"not json %d\n" % i for i in range(spec.size))


_MAKERS = {
    "regular": _regular, "gzip_bomb": _gzip_bomb, "long_line": _long_line,
    "blank_lines": _blank_lines, "deep_nesting": _deep_nesting, "invalid_utf8": _invalid_utf8,
    "huge_numbers": _huge_numbers, "nan_infinity": _nan_infinity,
    "duplicate_keys": _duplicate_keys, "distinct_users": _distinct_users,
    "long_endpoints": _long_endpoints, "one_long_endpoint": _one_long_endpoint,
    "extreme_timestamps": _extreme_timestamps, "x_lines": _x_lines,
    "all_malformed": _all_malformed,
}


@dataclass(frozen=True)
class Step:
    """One thing the driver does.

    `action`: upload (`key` gets `spec`), duplicate (upload twice), overwrite (upload
    `spec`, then `spec2` to the same key at once, while the first job runs), delete
    (upload, then delete at once), reupload (upload, delete, upload the same bytes again
    once the first job ended), garbage (send `body` to the jobs queue), or stream (put the
    lines of `spec` into the stage's ingest stream).
    `allowed_failures`: failure codes this upload may end with; a completed record must
    equal the reference. `record`: whether a record must exist at all.
    """

    action: str
    key: str = ""
    spec: FileSpec | None = None
    spec2: FileSpec | None = None
    allowed_failures: frozenset[str] = frozenset()
    record: bool = True
    body: str = ""


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)


@dataclass(frozen=True)
class Scale:
    """Sizes of the hostile files: `full` as the issue lists them, `small` for the smoke."""

    bomb: int
    long_line: int
    blank_lines: int
    nesting: int
    distinct_users: int
    long_endpoints: int
    x_lines: int
    big_files: tuple[int, ...]


FULL = Scale(bomb=3 << 30, long_line=100 << 20, blank_lines=1_000_000, nesting=100_000,
             distinct_users=1_000_000, long_endpoints=20, x_lines=8 << 20,
             big_files=(20 << 20, 40 << 20))
SMALL = Scale(bomb=64 << 20, long_line=2 << 20, blank_lines=10_000, nesting=100_000,
              distinct_users=20_000, long_endpoints=2, x_lines=1 << 20, big_files=())


def hostile_steps(scale: Scale, seed: int) -> list[Step]:
    resource = RESOURCE_CODES
    files: list[tuple[str, FileSpec, frozenset[str]]] = [
        ("logs/hostile/bomb.ndjson.gz", FileSpec("gzip_bomb", seed, scale.bomb), resource),
        ("logs/hostile/bomb-unnamed.ndjson", FileSpec("gzip_bomb", seed, scale.bomb), resource),
        ("logs/hostile/long-line.ndjson", FileSpec("long_line", seed, scale.long_line),
         resource),
        ("logs/hostile/blank-lines.ndjson", FileSpec("blank_lines", seed, scale.blank_lines),
         frozenset()),
        ("logs/hostile/deep-nesting.ndjson", FileSpec("deep_nesting", seed, scale.nesting),
         frozenset()),
        ("logs/hostile/invalid-utf8.ndjson", FileSpec("invalid_utf8", seed), frozenset()),
        ("logs/hostile/huge-numbers.ndjson", FileSpec("huge_numbers", seed), frozenset()),
        ("logs/hostile/nan-infinity.ndjson", FileSpec("nan_infinity", seed), frozenset()),
        ("logs/hostile/duplicate-keys.ndjson", FileSpec("duplicate_keys", seed), frozenset()),
        ("logs/hostile/distinct-users.ndjson.gz",
         FileSpec("distinct_users", seed, scale.distinct_users, gzip=True), resource),
        ("logs/hostile/long-endpoints.ndjson",
         FileSpec("long_endpoints", seed, scale.long_endpoints), resource),
        ("logs/hostile/one-long-endpoint.ndjson",
         FileSpec("one_long_endpoint", seed, 450_000), frozenset()),
        ("logs/hostile/extreme-timestamps.ndjson", FileSpec("extreme_timestamps", seed),
         frozenset()),
        ("logs/hostile/x-lines.log", FileSpec("x_lines", seed, scale.x_lines), resource),
        ("logs/hostile/all-malformed.jsonl", FileSpec("all_malformed", seed, 500), frozenset()),
        ("logs/hostile/empty.ndjson", FileSpec("regular", seed, 0), frozenset()),
        ("logs/hostile/crlf-bom.ndjson.gz",
         FileSpec("regular", seed, 30_000, gzip=True, crlf=True, bom=True), frozenset()),
        ("logs/hostile/gzip-unnamed.json",
         FileSpec("regular", seed + 1, 30_000, gzip=True), frozenset()),
    ]
    for i, size in enumerate(scale.big_files):
        files.append((f"logs/big/big-{i}.ndjson", FileSpec("regular", seed + 10 + i, size,
                                                          malformed_rate=0.01), resource))
    return [Step("upload", key, spec, allowed_failures=allowed) for key, spec, allowed in files]


def _regular_spec(rng: random.Random, seed: int) -> FileSpec:
    # Sizes log-uniform from 0 B to 2 MB: most files small, a few large.
    size = 0 if rng.random() < 0.02 else int(math.exp(rng.uniform(math.log(150), math.log(2e6))))
    return FileSpec("regular", seed, size, gzip=rng.random() < 0.15, crlf=rng.random() < 0.05,
                    bom=rng.random() < 0.05,
                    malformed_rate=rng.choice((0.0, 0.0, 0.0, 0.01, 0.2)))


def regular_steps(files: int, seed: int) -> Iterator[Step]:
    rng = random.Random(seed)
    for i in range(files):
        spec = _regular_spec(rng, seed * 1_000_003 + i)
        suffix = ".ndjson.gz" if spec.gzip else rng.choice((".ndjson", ".jsonl", ".log"))
        if spec.gzip and rng.random() < 0.3:
            suffix = ".ndjson"  # gzip content under a plain name: found by its magic bytes
        key = f"logs/run-{seed}/{i // 1000:03d}/file {i:06d}+{rng.randrange(100)}{suffix}"
        roll = rng.random()
        if roll < 0.03:
            yield Step("duplicate", key, spec)
        elif roll < 0.05:
            # The key's name says gzip or not: the second version keeps to it.
            spec2 = replace(_regular_spec(rng, seed * 1_000_003 + i + 500_000_000),
                            gzip=spec.gzip)
            yield Step("overwrite", key, spec, spec2, allowed_failures=frozenset({"changed"}))
        elif roll < 0.07:
            yield Step("delete", key, spec, allowed_failures=frozenset({"not_found"}))
        elif roll < 0.08:
            yield Step("reupload", key, spec)
        elif roll < 0.09:
            outside = rng.choice(("incoming/", "Logs/", "logs", "archive/logs/"))
            yield Step("upload", f"{outside}{i:06d}.ndjson", spec, record=False)
        elif roll < 0.095:
            yield Step("upload", f"logs/run-{seed}/not-a-log-{i:06d}.csv", spec,
                       allowed_failures=frozenset({"unsupported_type"}))
        else:
            yield Step("upload", key, spec)


# Events put into the ingest stream: one batch of about STREAM_BATCH_BYTES of lines (1 %
# malformed) per STREAM_FILES_PER_BATCH regular files, at least two.
STREAM_BATCH_BYTES = 60_000
STREAM_FILES_PER_BATCH = 50


def stream_steps(files: int, seed: int) -> list[Step]:
    batches = max(2, files // STREAM_FILES_PER_BATCH)
    return [Step("stream", spec=FileSpec("regular", seed * 7_000_003 + i, STREAM_BATCH_BYTES,
                                         malformed_rate=0.01))
            for i in range(batches)]


GARBAGE_BODIES = ("not a job", '{"job_id": 1}', "", '{"bucket": "b", "key": "k"}')


def plan(files: int, seed: int, scale: Scale) -> Plan:
    """`files` regular uploads (with their mix of actions), the hostile files, messages
    that are not jobs (which must end in the dead-letter queue), and batches of events put
    into the ingest stream, spread over the run."""
    steps = hostile_steps(scale, seed)
    steps += list(regular_steps(files, seed))
    rng = random.Random(seed + 7)
    for body in GARBAGE_BODIES:
        steps.insert(rng.randrange(len(steps) + 1), Step("garbage", body=body or " "))
    for step in stream_steps(files, seed):
        steps.insert(rng.randrange(len(steps) + 1), step)
    return Plan(steps)
