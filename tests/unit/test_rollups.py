"""Rollups (chalicelib.core.rollup, chalicelib.rollups) on the in-memory twin: what a record
adds, by event hour and upload hour; each stream record applied exactly once whatever fails."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.adapters import to_item
from chalicelib.core.errors import JobRejected
from chalicelib.core.eventtime import ENDPOINTS_PER_HOUR, hour_of_iso
from chalicelib.core.jobs import Job
from chalicelib.core.results import (
    completed_record,
    failed_record,
    processing_record,
    queued_record,
)
from chalicelib.core.rollup import (
    BINS,
    DOCUMENT_BYTES_KEPT,
    ENDPOINTS_KEPT,
    NAMED,
    OTHER,
    Target,
    contribution,
    day_target,
    endpoints_in,
    endpoints_target,
    hour_list,
    pack,
    stats_by_hour,
    unpack,
    writes,
)
from chalicelib.core.sketch import MAX_BINS, MIN_KEY, DenseBins
from chalicelib.core.summary import aggregate_chunks
from chalicelib.rollups import DynamoRollupItems, RollupReader, RollupsHandler, change
from tests.rollup_reference import Expected, plain, rank_value, within
from tests.twins import Applied500, MemoryRollupItems

UPLOADED = "2026-11-26T12:15:00.000Z"
T0 = datetime(2026, 11, 26, 12, 15, tzinfo=UTC).timestamp()


def line(moment: datetime, *, level: str = "INFO", endpoint: str = "/a", ms: Any = 5,
         code: int = 200) -> bytes:
    return json.dumps({"timestamp": moment.isoformat(), "level": level, "endpoint": endpoint,
                       "response_time_ms": ms, "status_code": code, "user_id": "u"}).encode()


def spread_file(seed: int, lines: int = 300, hours: int = 5) -> bytes:
    """Lines over several hours before the upload, out of order, some malformed."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC) - timedelta(hours=hours)
    out = []
    for _ in range(lines):
        if rng.random() < 0.05:
            out.append(b'{"broken": ')
            continue
        moment = start + timedelta(seconds=rng.randrange(hours * 3600))
        if rng.random() < 0.3:
            moment = moment.astimezone(__import__("datetime").timezone(timedelta(hours=5)))
        error = rng.random() < 0.1
        out.append(line(moment, level="ERROR" if error else rng.choice(["INFO", "warn", "DEBUG"]),
                        endpoint=rng.choice(["/a", "/b", "/c/{id}"]),
                        ms=rng.choice([0, 0.5, rng.lognormvariate(4, 1), rng.randrange(1, 900)]),
                        code=rng.choice([200, 201, 404, 500, 503])))
    return b"\n".join(out) + b"\n"


def job(name: str = "a", key: str | None = None) -> Job:
    return Job(job_id=name * 32 if len(name) == 1 else name, bucket="b",
               key=key or f"logs/{name}.ndjson", size=10, etag=name, version_id=None,
               uploaded_at=UPLOADED, created_at=UPLOADED)


def completed(j: Job, data: bytes) -> dict[str, Any]:
    agg = aggregate_chunks([data])
    return dict(completed_record(j, agg.result(), T0, T0 + 1, 1,
                                 agg.event_hours(hour_of_iso(UPLOADED))))


def stream_record(seq: int, new: dict[str, Any] | None, old: dict[str, Any] | None,
                  name: str | None = None) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda hands it over (images in DynamoDB JSON)."""
    record = new or old
    assert record is not None
    stream: dict[str, Any] = {"Keys": {"job_id": {"S": record["job_id"]}},
                              "SequenceNumber": str(seq), "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        stream["NewImage"] = to_item(new)
    if old is not None:
        stream["OldImage"] = to_item(old)
    return {"eventName": name or ("MODIFY" if old and new else "INSERT" if new else "REMOVE"),
            "eventSource": "aws:dynamodb", "dynamodb": stream}


def life(j: Job, final: dict[str, Any], start: int = 100) -> list[dict[str, Any]]:
    """The stream records of a job's life: queued, processing, final."""
    queued = dict(queued_record(j))
    processing = {**queued, **processing_record(j, T0, 1)}
    return [stream_record(start, queued, None), stream_record(start + 1, processing, queued),
            stream_record(start + 2, final, processing)]


def answers(items: MemoryRollupItems, since: str = "2026-11-26T00",
            until: str = "2026-11-27T00") -> tuple[dict[str, Any], Any]:
    start = datetime.fromisoformat(since + ":00:00+00:00")
    end = datetime.fromisoformat(until + ":00:00+00:00")
    reader = RollupReader(items)
    hours = hour_list(start, end)
    return (stats_by_hour(reader.hours(start, end), hours, None),
            endpoints_in(reader.endpoints(start, end), hours, None))


def without_markers(items: MemoryRollupItems) -> dict[Any, dict[str, Any]]:
    """Each rollup item's document (markers and versions are bookkeeping)."""
    return {key: item["figures"] for key, item in items.items.items()
            if not key[0].startswith("ledger#")}


def test_a_file_adds_each_line_to_its_own_hour_and_its_file_figures_to_the_upload_hour() -> None:
    # GIVEN two files with events over five hours before their upload
    data = [spread_file(1), spread_file(2, lines=200, hours=3)]
    items = MemoryRollupItems()
    handler = RollupsHandler(items)
    expected = Expected()
    # WHEN their records' lives reach the stream
    for n, content in enumerate(data):
        j = job(str(n))
        handler.handle({"Records": life(j, completed(j, content), start=10 * n + 10)})
        expected.add_file(j.key, content, UPLOADED)
    # THEN every hour has what the raw lines of that hour say
    hours, (named, other) = answers(items)
    assert hours["2026-11-26T12"].received == 2 and hours["2026-11-26T12"].completed == 2
    for (hour, _), want in expected.hours.items():
        got = hours[hour]
        assert (got.received, got.completed, got.failed, got.malformed, got.records) == (
            want.received, want.completed, want.failed, want.malformed, want.records), hour
        assert {k: v for k, v in got.levels.items() if v} == dict(want.levels)
        assert got.status_codes == dict(want.status_codes)
        if want.times:
            latency = got.latency()
            assert latency is not None
            for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")):
                assert within(latency[name], rank_value(want.times, q)), (hour, name)
    assert other.requests == 0
    assert {e: (f.requests, f.errors) for e, f in named.items()} == {
        e: (v["requests"], v["errors"]) for e, v in expected.endpoints.items()}


def test_a_redrive_moves_the_file_from_failed_to_completed_and_a_remove_changes_nothing(
        ) -> None:
    # GIVEN a file that failed (retries exhausted), then ran again and completed
    j = job()
    data = spread_file(3, lines=50)
    queued = dict(queued_record(j))
    processing = {**queued, **processing_record(j, T0, 5)}
    failed = dict(failed_record(j, JobRejected("retries_exhausted", "x"), T0, T0, 5))
    again = {**failed, **processing_record(j, T0 + 5, 1)}
    done = completed(j, data)
    items = MemoryRollupItems()
    # WHEN the stream carries its whole life, then the TTL deletion
    RollupsHandler(items).handle({"Records": [
        stream_record(100, queued, None), stream_record(101, processing, queued),
        stream_record(102, failed, processing), stream_record(103, again, failed),
        stream_record(104, done, again), stream_record(105, None, done, "REMOVE")]})
    # THEN it counts once, as completed, with all its records
    hours, _ = answers(items)
    upload = hours["2026-11-26T12"]
    assert (upload.received, upload.completed, upload.failed) == (1, 1, 0)
    expected = Expected()
    expected.add_file(j.key, data, UPLOADED)
    assert sum(h.records for h in hours.values()) == sum(
        h.records for h in expected.hours.values())


def test_a_non_final_change_adds_nothing_but_the_received_file() -> None:
    j = job()
    queued = dict(queued_record(j))
    assert change(to_item({**queued, **processing_record(j, T0, 1)}), to_item(queued)) == {}
    assert list(contribution(queued).values()) == [{"12": {"files_received": 1}}]


@pytest.mark.parametrize("fault", ["crash", "applied_then_500"])
def test_a_failure_at_any_call_then_the_retried_batch_leaves_every_count_exact(fault: str
                                                                             ) -> None:
    # GIVEN the stream records of two files, and what they add when all goes well
    batch = []
    for n, seed in enumerate((4, 5)):
        j = job(str(n))
        batch += life(j, completed(j, spread_file(seed, lines=120)), start=10 * n + 10)
    clean = MemoryRollupItems()
    RollupsHandler(clean).handle({"Records": batch})
    assert {"ledgers", "apply", "mark_done", "forget"} <= set(clean.trace)
    for at in range(clean.calls):
        # WHEN the handler's call number `at` fails (before it acts, or after: a lost answer)
        items = MemoryRollupItems()
        items.fail_at(at, Applied500("answer lost") if fault == "applied_then_500"
                      else ConnectionError("the process dies here"))
        with pytest.raises(ConnectionError):
            RollupsHandler(items).handle({"Records": batch})
        # AND the mapping retries the whole batch, twice
        RollupsHandler(items).handle({"Records": batch})
        RollupsHandler(items).handle({"Records": batch})
        # THEN the items are those of one clean application, and no marker is left
        assert without_markers(items) == without_markers(clean), (fault, at)
        assert not any(k.startswith("m_") for item in items.items.values() for k in item)


def test_duplicate_deliveries_count_once() -> None:
    j = job()
    records = life(j, completed(j, spread_file(6, lines=80)))
    once, twice = MemoryRollupItems(), MemoryRollupItems()
    RollupsHandler(once).handle({"Records": records})
    RollupsHandler(twice).handle({"Records": records[:2]})
    RollupsHandler(twice).handle({"Records": records + records})
    assert without_markers(twice) == without_markers(once)


def test_a_file_with_500_status_codes_is_counted_in_full_in_one_small_write_an_item() -> None:
    # GIVEN a file with every status code 100..599 in one hour
    moment = datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    data = b"\n".join(line(moment, code=c, ms=c) for c in range(100, 600)) + b"\n"
    j = job()
    record = completed(j, data)
    # WHEN its final record is applied
    planned = writes([(j.job_id, "7", contribution(record))])
    items = MemoryRollupItems()
    RollupsHandler(items).handle({"Records": life(j, record)})
    # THEN one write an item (day and endpoints), each document far below DynamoDB's 400 KB,
    # and all 500 codes count
    assert len(planned) == len({w.target for w in planned}) == 2
    assert all(len(pack(Target(*key), item["figures"])) < 8_000
               for key, item in items.items.items() if "figures" in item)
    hours, _ = answers(items)
    assert hours["2026-11-26T11"].status_codes == {str(c): 1 for c in range(100, 600)}
    assert hours["2026-11-26T11"].records == 500


def test_a_file_with_10000_endpoints_keeps_the_busiest_per_hour_and_counts_the_rest_as_other(
        ) -> None:
    moment = datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    lines = [line(moment, endpoint=f"/e{i}", level="ERROR" if i % 10 == 0 else "INFO")
             for i in range(10_000)]
    lines += [line(moment, endpoint="/busy")] * 3
    j = job()
    items = MemoryRollupItems()
    RollupsHandler(items).handle({"Records": life(j, completed(j, b"\n".join(lines)))})
    _, (named, other) = answers(items)
    assert len(named) == ENDPOINTS_PER_HOUR and named["/busy"].requests == 3
    assert sum(f.requests for f in named.values()) + other.requests == 10_003
    assert sum(f.errors for f in named.values()) + other.errors == 1_000


def test_endpoints_named_like_the_documents_own_keys_count_as_any_other() -> None:
    # GIVEN a file whose endpoints are named like the keys the rollup documents use
    moment = datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    names = ["bins", "q", "named", "~other", "day", "requests", "errors", "levels"]
    data = b"\n".join(line(moment, endpoint=name, ms=10 * (n + 1))
                      for n, name in enumerate(names)) + b"\n"
    j = job()
    items = MemoryRollupItems()
    # WHEN its records are applied, THEN each is an endpoint like any other
    RollupsHandler(items).handle({"Records": life(j, completed(j, data))})
    hours, (named, other) = answers(items)
    assert {name: (f.requests, f.bins.count) for name, f in named.items()} == {
        name: (1, 1) for name in names}
    assert other.requests == 0 and hours["2026-11-26T11"].records == len(names)


def test_an_hour_keeps_the_busiest_endpoints_up_to_its_bound_and_its_totals_exactly() -> None:
    # GIVEN files of one hour, each with its own endpoints, some much busier than the rest
    moment = datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    items = MemoryRollupItems()
    handler = RollupsHandler(items)
    total = 0
    for n in range(ENDPOINTS_KEPT + 30):
        busy = 5 if n % 10 == 9 else 1
        lines = [line(moment, endpoint=f"/f{n}/e{i}") for i in range(2) for _ in range(busy)]
        total += len(lines)
        j = job(f"{n:032x}")
        handler.handle({"Records": life(j, completed(j, b"\n".join(lines)), start=10 * n + 10)})
    # THEN the hour keeps ENDPOINTS_KEPT named endpoints, the busy ones among them, and every
    # request is either with its endpoint or in other
    _, (named, other) = answers(items)
    assert len(named) == ENDPOINTS_KEPT
    busy_ones = {f"/f{n}/e{i}" for n in range(9, ENDPOINTS_KEPT + 30, 10) for i in range(2)}
    assert busy_ones <= set(named)
    assert all(named[e].requests == 5 for e in busy_ones)
    assert sum(f.requests for f in named.values()) + other.requests == total
    assert other.requests > 0


def test_a_document_packs_within_dynamodbs_item_limit_whatever_its_sketches_hold() -> None:
    # GIVEN an hour of 100 endpoints with 256-character names, each a full sketch of random
    # counts (703 KB packed as they are), and a day of 500 codes and full sketches an hour
    rng = random.Random(1)

    def full() -> list[Any]:
        return [0, MIN_KEY, [rng.randrange(1, 10**6) for _ in range(MAX_BINS - 1)]]

    target = endpoints_target("2026-11-26T10", "upload")
    named = {f"/e{n:03d}".ljust(256, "x"): {"requests": 1000 + n, "errors": n, BINS: full()}
             for n in range(ENDPOINTS_KEPT)}
    document = {NAMED: {name: dict(entry) for name, entry in named.items()}}
    day = day_target("2026-11-26T10", "upload")
    hours = {f"{h:02d}": {"records": 1, "codes": {str(c): rng.randrange(1, 10**6)
                                                  for c in range(100, 600)}, BINS: full()}
             for h in range(24)}
    # WHEN they are packed
    packed, packed_day = pack(target, document), pack(day, hours)
    # THEN both fit: the day as it is, the hour by moving its least busy endpoints to other,
    # its totals the same
    assert len(packed) <= DOCUMENT_BYTES_KEPT and len(packed_day) <= DOCUMENT_BYTES_KEPT
    stored = unpack(packed)
    kept = stored[NAMED]
    assert 0 < len(kept) < ENDPOINTS_KEPT
    assert min(named[n]["requests"] for n in kept) > max(
        named[n]["requests"] for n in named if n not in kept)
    assert sum(e["requests"] for e in kept.values()) + stored[OTHER]["requests"] == sum(
        e["requests"] for e in named.values())
    assert sum(DenseBins.from_json(e[BINS]).count for e in [*kept.values(), stored[OTHER]]) \
        == sum(DenseBins.from_json(e[BINS]).count for e in named.values())


def test_a_packed_document_reads_back_the_same_with_its_days_sketch() -> None:
    from chalicelib.core.rollup import DAY, fold
    target = day_target("2026-11-26T11", "upload")
    document = fold(target, {}, {
        "11": {"records": 3, "rt_sum": 0.5, "codes": {"200": 3}, "bins": {"5": 2, "z": 1}},
        "12": {"records": -1, "bins": {"-40": 1, "7": -2}}})
    read = plain(unpack(pack(target, document)))
    assert {k: v for k, v in read.items() if k != DAY} == document
    assert read[DAY] == {"bins": [1, -40, [1] + [0] * 44 + [2, 0, -2]]}


def test_the_range_sketch_uses_a_whole_days_sketch_and_a_cut_days_hours() -> None:
    from chalicelib.core.rollup import fold, range_sketch
    days = {}
    for day in ("2026-11-25", "2026-11-26"):
        target = day_target(f"{day}T00", "upload")
        delta = {f"{h:02d}": {"records": 1, "bins": {str(h + 10 * (day[-1] == "6")): 1}}
                 for h in range(24)}
        days[target] = unpack(pack(target, fold(target, {}, delta)))
    start = datetime(2026, 11, 25, tzinfo=UTC)
    for end_hour in (24, 30, 48):
        hours = hour_list(start, start + timedelta(hours=end_hour))
        by_hour = stats_by_hour(days.items(), hours, None)
        merged = DenseBins()
        for figures in by_hour.values():
            merged.add(figures.sketch())
        assert range_sketch(days.items(), hours, None) == merged, end_hour
        assert merged.count == end_hour


def test_a_batch_writes_each_item_once_however_many_files_it_holds() -> None:
    # GIVEN the whole lives of 30 files of one hour in one batch
    batch = []
    for n in range(30):
        j = job(f"{n:032x}")
        batch += life(j, completed(j, spread_file(n, lines=40, hours=1)), start=10 * n + 10)
    items = MemoryRollupItems()
    # WHEN the handler takes it
    counts = RollupsHandler(items).handle({"Records": batch})
    # THEN each item is read-modified-written once, the ledgers read and written in one call
    targets = {key for key in items.items if not key[0].startswith("ledger#")}
    assert counts == {"applied": 60, "skipped": 0, "unchanged": 30}
    assert items.trace.count("apply") == len(targets) <= 4
    assert items.trace.count("ledgers") == items.trace.count("mark_done") == 1
    assert len([key for key in items.items if key[0].startswith("ledger#")]) == 30


class UnprocessingClient:
    """BatchGetItem/BatchWriteItem that leave the first `left` requests' last key or item
    unprocessed, as DynamoDB does under throttling."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.calls: list[tuple[str, int]] = []
        self.ledgers: dict[str, str] = {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (table, request), = RequestItems.items()
        keys = request["Keys"]
        self.calls.append(("get", len(keys)))
        done, rest = (keys[:-1], keys[-1:]) if self.left else (keys, [])
        self.left = max(0, self.left - 1)
        found = [{**key, "applied": {"S": self.ledgers[key["series"]["S"]]}} for key in done
                 if key["series"]["S"] in self.ledgers]
        return {"Responses": {table: found},
                "UnprocessedKeys": {table: {**request, "Keys": rest}} if rest else {}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (table, puts), = RequestItems.items()
        self.calls.append(("write", len(puts)))
        done, rest = (puts[:-1], puts[-1:]) if self.left else (puts, [])
        self.left = max(0, self.left - 1)
        for put in done:
            item = put["PutRequest"]["Item"]
            self.ledgers[item["series"]["S"]] = item["applied"]["S"]
        return {"UnprocessedItems": {table: rest} if rest else {}}


def test_what_a_batch_call_leaves_unprocessed_is_asked_again_until_done_or_it_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import rollups
    monkeypatch.setattr(rollups, "UNPROCESSED_PAUSE_SECONDS", 0)
    jobs = {f"{n:032x}": f"{n + 1:040d}" for n in range(30)}
    # GIVEN a table that leaves a key or an item of the first three calls unprocessed
    client = UnprocessingClient(left=3)
    items = DynamoRollupItems(client, "stats")
    # WHEN 30 ledgers are written and read back
    items.mark_done(jobs, 2_000_000_000)
    # THEN every one arrives: 25 and 5 items a call, the unprocessed ones asked again
    assert client.calls == [("write", 25), ("write", 1), ("write", 1), ("write", 1), ("write", 5)]
    assert items.ledgers(jobs) == jobs
    # WHEN DynamoDB leaves some unprocessed on every attempt, THEN the batch fails (retried)
    client.left = rollups.UNPROCESSED_ATTEMPTS
    with pytest.raises(rollups.Unprocessed, match="batch_get_item"):
        items.ledgers(jobs)


@given(st.integers(0, 20_000), st.integers(0, 2_000))
def test_hour_list_names_every_hour_of_the_range(start_hour: int, length: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=start_hour)
    end = start + timedelta(hours=length)
    expected = [(start + timedelta(hours=n)).strftime("%Y-%m-%dT%H") for n in range(length)]
    assert hour_list(start, end) == expected
