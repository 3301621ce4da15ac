"""The rollups handler on moto: the results table's own stream records, shaped as Lambda hands
them over, through Chalice's test client; GET /stats and GET /endpoints read the items back."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client

from chalicelib.core.rollup import DAY, QUANTILES, Change, Target, Write, pack, position, unpack
from chalicelib.core.sketch import DenseBins
from chalicelib.rollups import DynamoRollupItems
from tests.integration.streams import StreamReader
from tests.integration.test_handlers import receive_jobs, s3_event, upload
from tests.rollup_reference import Expected, plain, rank_value, within
from tests.twins import MemoryRollupItems


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def corpus_file(seed: int, hours: int) -> bytes:
    """Events over `hours` hours before this hour, out of order, with malformed lines."""
    now = this_hour()
    rng = random.Random(seed)
    lines = []
    for _ in range(150):
        if rng.random() < 0.05:
            lines.append(b"not json")
            continue
        moment = now - timedelta(seconds=rng.randrange(hours * 3600))
        error = rng.random() < 0.15
        lines.append(json.dumps({
            "timestamp": moment.isoformat(), "level": "ERROR" if error else "INFO",
            "endpoint": rng.choice(["/a", "/b", "/c"]),
            "response_time_ms": rng.choice([0, 0.25, round(rng.lognormvariate(4, 1), 3)]),
            "status_code": 500 if error else rng.choice([200, 404]),
            "user_id": "u"}).encode())
    return b"\n".join(lines) + b"\n"


def run_pipeline(app_module: Any, s3: Any, sqs: Any, stage: Any, key: str, data: bytes) -> None:
    """Upload now (S3's event time is the upload's), trigger, work."""
    obj = upload(s3, stage, key, data)
    with Client(app_module.app) as client:
        event = s3_event(client, stage, obj)
        event["Records"][0]["eventTime"] = datetime.now(UTC).isoformat()[:23] + "Z"
        client.lambda_.invoke("trigger", event)
        client.lambda_.invoke("worker", {"Records": receive_jobs(sqs, stage)})


def feed(client: Client, reader: StreamReader, *, twice: bool = True) -> int:
    """Invoke the rollups handler on what the stream has, in batches; each batch twice (a
    duplicate delivery) and the last one again after the rest (a retried batch)."""
    records = reader.read()
    batches = [records[i:i + 7] for i in range(0, len(records), 7)]
    for batch in batches:
        for _ in range(2 if twice else 1):
            client.lambda_.invoke("rollups", {"Records": batch})
    if batches and twice:
        client.lambda_.invoke("rollups", {"Records": batches[0]})
    return len(records)


def get(client: Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.http.get(f"{path}?{urlencode(params)}")
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def test_stats_and_endpoints_equal_what_the_raw_files_say_and_outlive_the_records(
        app_module, s3, sqs, dynamodb, stage) -> None:
    # GIVEN a mixed corpus with events spread over several hours, through the pipeline
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    expected = Expected()
    start = this_hour()
    files = {f"logs/c{n}.ndjson": corpus_file(n, hours) for n, hours in enumerate((1, 3, 6, 2))}
    files["logs/stream/s.ndjson"] = corpus_file(9, 4)
    for key, data in files.items():
        run_pipeline(app_module, s3, sqs, stage, key, data)
    for item in dynamodb.scan(TableName=stage.results_table)["Items"]:
        expected.add_file(item["key"]["S"], files[item["key"]["S"]], item["uploaded_at"]["S"])
    since = (start - timedelta(hours=8)).isoformat()
    until = datetime.now(UTC).isoformat()  # the uploads' hour, also when it is past `start`'s
    with Client(app_module.app) as client:
        # WHEN the stream's records reach the handler, some twice
        assert feed(client, reader) > 0
        stats = get(client, "/stats", since=since, until=until)
        endpoints = get(client, "/endpoints", since=since, until=until)
        uploads_only = get(client, "/stats", since=since, until=until, source="upload")
        # AND the records expire (TTL deletions reach the stream as REMOVEs)
        for item in dynamodb.scan(TableName=stage.results_table)["Items"]:
            dynamodb.delete_item(TableName=stage.results_table, Key={"job_id": item["job_id"]})
        feed(client, reader)
        after = get(client, "/stats", since=since, until=until)
    # THEN every count equals the raw files', hour by hour, and percentiles are within 1 %
    assert stats["since"].startswith((start - timedelta(hours=8)).strftime("%Y-%m-%dT%H:00:00"))
    assert len(stats["hours"]) == 9 + (datetime.fromisoformat(until) - start) // timedelta(hours=1)
    totals = stats["totals"]
    want_hours = {}
    for (hour, _), h in expected.hours.items():
        merged = want_hours.setdefault(hour, {"records": 0, "errors": 0, "received": 0,
                                              "completed": 0, "malformed": 0, "times": []})
        merged["records"] += h.records
        merged["errors"] += h.levels["error"]
        merged["received"] += h.received
        merged["completed"] += h.completed
        merged["malformed"] += h.malformed
        merged["times"] += h.times
    for row in stats["hours"]:
        want = want_hours.get(row["hour"][:13], {"records": 0, "errors": 0, "received": 0,
                                                 "completed": 0, "malformed": 0, "times": []})
        assert (row["records"], row["errors"], row["files"]["received"],
                row["files"]["completed"], row["malformed"]) == (
            want["records"], want["errors"], want["received"], want["completed"],
            want["malformed"]), row["hour"]
        if want["times"]:
            assert within(row["p95"], rank_value(want["times"], 0.95)), row
    all_times = [t for h in expected.hours.values() for t in h.times]
    assert totals["records"] == len(all_times)
    assert totals["files"] == {"received": 5, "completed": 5, "failed": 0}
    assert totals["status_codes"] == {code: sum(h.status_codes[code]
                                                for h in expected.hours.values())
                                      for code in ("200", "404", "500")}
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")):
        assert within(totals["response_time_ms"][name], rank_value(all_times, q)), name
    assert endpoints["exact"] is True and endpoints["other"] == {"requests": 0, "errors": 0}
    assert {(e["endpoint"], e["requests"], e["errors"]) for e in endpoints["endpoints"]} == {
        (name, v["requests"], v["errors"]) for name, v in expected.endpoints.items()}
    for row in endpoints["endpoints"]:
        assert within(row["p95_ms"], rank_value(expected.endpoints[row["endpoint"]]["times"],
                                                0.95))
    assert uploads_only["totals"]["files"]["received"] == 4
    assert after == stats


def test_a_write_applied_then_answered_500_is_counted_once(app_module, s3, sqs, dynamodb,
                                                          stage) -> None:
    # GIVEN every stats-table write answered once with a lost answer: the SDK sends it again
    retried: list[str] = []

    def lose_first_answer(attempts: int, request_dict: dict[str, Any], **_: Any) -> int | None:
        body = request_dict.get("body") or b""
        if stage.stats_table.encode() in body and attempts == 1:
            retried.append(request_dict["headers"]["X-Amz-Target"])
            return 0  # retry at once, as after a 500 whose write was applied
        return None

    for operation in ("PutItem", "UpdateItem"):
        app_module.dynamodb.meta.events.register_first(f"needs-retry.dynamodb.{operation}",
                                                       lose_first_answer)
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    start = this_hour()
    data = corpus_file(11, 2)
    run_pipeline(app_module, s3, sqs, stage, "logs/once.ndjson", data)
    uploaded = dynamodb.scan(TableName=stage.results_table)["Items"][0]
    expected = Expected()
    expected.add_file("logs/once.ndjson", data, uploaded["uploaded_at"]["S"])
    with Client(app_module.app) as client:
        # WHEN the stream's records are applied
        feed(client, reader, twice=False)
        stats = get(client, "/stats", since=(start - timedelta(hours=3)).isoformat(),
                    until=datetime.now(UTC).isoformat())
    # THEN each counts once
    assert {"DynamoDB_20120810.PutItem", "DynamoDB_20120810.UpdateItem"} <= set(retried)
    assert stats["totals"]["records"] == sum(h.records for h in expected.hours.values())
    assert stats["totals"]["files"] == {"received": 1, "completed": 1, "failed": 0}


def test_a_crash_between_any_two_writes_then_a_retry_leaves_every_count_exact(
        app_module, s3, sqs, dynamodb, stage) -> None:
    # GIVEN a file's stream records, and the stats table after one clean application
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    run_pipeline(app_module, s3, sqs, stage, "logs/crash.ndjson", corpus_file(12, 3))
    records = reader.read()
    calls: list[int] = []

    def count(**_: Any) -> None:
        calls.append(1)

    app_module.dynamodb.meta.events.register("before-call.dynamodb", count)
    with Client(app_module.app) as client:
        client.lambda_.invoke("rollups", {"Records": records})
    clean = _stats_items(dynamodb, stage)
    total = len(calls)
    app_module.dynamodb.meta.events.unregister("before-call.dynamodb", count)
    for at in range(0, total, max(1, total // 12)):
        _clear(dynamodb, stage)
        seen: list[int] = []

        def crash(seen: list[int] = seen, at: int = at, **_: Any) -> None:
            seen.append(1)
            if len(seen) == at + 1:
                raise ConnectionError("the handler dies here")

        # WHEN the handler dies at call `at`, and the batch is retried
        app_module.dynamodb.meta.events.register("before-call.dynamodb", crash)
        with Client(app_module.app) as client, pytest.raises(ConnectionError):
            client.lambda_.invoke("rollups", {"Records": records})
        app_module.dynamodb.meta.events.unregister("before-call.dynamodb", crash)
        with Client(app_module.app) as client:
            client.lambda_.invoke("rollups", {"Records": records})
        # THEN the items equal the clean run's
        assert _stats_items(dynamodb, stage) == clean, at


def _stats_items(dynamodb: Any, stage: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Each rollup item's document (versions and markers are bookkeeping)."""
    items = dynamodb.scan(TableName=stage.stats_table)["Items"]
    return {(i["series"]["S"], i["hour"]["S"]): {
        name: value for name, value in plain(unpack(i["figures"]["B"])).items() if name != DAY}
            for i in items if not i["series"]["S"].startswith("ledger#")}


def _clear(dynamodb: Any, stage: Any) -> None:
    for item in dynamodb.scan(TableName=stage.stats_table)["Items"]:
        dynamodb.delete_item(TableName=stage.stats_table,
                             Key={"series": item["series"], "hour": item["hour"]})


# ---- the contract the twin and the adapter share ----------------------------------------

@pytest.fixture(params=["twin", "dynamodb"])
def rollup_items(request, dynamodb, stage) -> Any:
    return MemoryRollupItems() if request.param == "twin" else DynamoRollupItems(
        dynamodb, stage.stats_table)


TARGET = Target("hours#2026-11", "26#upload")
JOB = "j" * 32


def write(seq: str, job: str = JOB, **figures: Any) -> Write:
    return Write(TARGET, (Change(job, position(seq), {"11": figures}),), 2_000_000_000)


def document(rollup_items: Any) -> dict[str, Any]:
    [(target, figures)] = rollup_items.items_between("hours", "2026-11-26", "2026-11-26")
    assert target == TARGET
    return {name: value for name, value in plain(figures).items() if name != DAY}


def test_contract_a_write_applies_once_and_only_after_a_lower_position(rollup_items) -> None:
    assert rollup_items.apply(write("5", records=2, bins={"7": 1}))
    assert not rollup_items.apply(write("5", records=2, bins={"7": 1}))  # the same again
    assert not rollup_items.apply(write("4", records=9))  # an older one
    assert rollup_items.apply(write("12", records=-1))  # 12 > 5 as numbers, and as text
    assert rollup_items.apply(write("3", job="k" * 32, records=5))  # another job's lane
    assert document(rollup_items) == {"11": {
        "records": 6, "bins": [0, 7, [1]], "q": DenseBins(0, 7, [1]).quantiles(QUANTILES)}}


def test_contract_one_write_applies_the_changes_an_item_has_not_seen_in_order(rollup_items
                                                                             ) -> None:
    rollup_items.apply(write("5", records=1))
    both = Write(TARGET, (Change(JOB, position("5"), {"11": {"records": 100}}),
                          Change("k" * 32, position("6"), {"11": {"records": 10}}),
                          Change(JOB, position("7"), {"11": {"records": 1000}})), 2_000_000_000)
    assert rollup_items.apply(both) == 2
    assert rollup_items.apply(both) == 0
    assert document(rollup_items)["11"]["records"] == 1011


def test_contract_forget_removes_a_marker_up_to_a_position_then_only_the_ledger_knows(
        rollup_items) -> None:
    rollup_items.apply(write("5", records=1))
    rollup_items.forget(TARGET, {JOB: position("4")})
    assert not rollup_items.apply(write("5", records=1))  # the marker is still there
    rollup_items.forget(TARGET, {JOB: position("5"), "k" * 32: position("5")})
    rollup_items.forget(TARGET, {JOB: position("5")})
    assert rollup_items.apply(write("5", records=1))  # forgotten: only the ledger knows now
    assert rollup_items.ledgers([JOB]) == {JOB: None}
    rollup_items.mark_done({JOB: position("7"), "k" * 32: position("3")}, 2_000_000_000)
    assert rollup_items.ledgers([JOB, "k" * 32, "n" * 32]) == {
        JOB: position("7"), "k" * 32: position("3"), "n" * 32: None}


def test_contract_ledgers_of_more_jobs_than_one_batch_call_takes(rollup_items) -> None:
    jobs = {f"{n:032x}": position(str(n + 1)) for n in range(130)}
    rollup_items.mark_done(jobs, 2_000_000_000)
    assert rollup_items.ledgers([*jobs, "none"]) == {**jobs, "none": None}


def test_contract_a_write_of_every_code_and_bin_is_one_write(rollup_items) -> None:
    codes = {str(code): 1 for code in range(100, 600)}
    bins = {str(key): 2 for key in range(-700, 1200)}
    assert rollup_items.apply(write("9" * 40, codes=codes, bins=bins))
    stored = document(rollup_items)["11"]
    assert sum(stored["codes"].values()) == 500 and sum(stored["bins"][2]) == 2 * 1900


def test_contract_ranges_span_months(rollup_items) -> None:
    for day, hour in (("2026-11-30", "23"), ("2026-12-01", "00"), ("2026-12-02", "05")):
        target = Target(f"hours#{day[:7]}", f"{day[8:]}#upload")
        rollup_items.apply(Write(target, (Change(JOB, position("1"), {hour: {"records": 1}}),),
                                 2_000_000_000))
    found = rollup_items.items_between("hours", "2026-11-30", "2026-12-01")
    assert [t.day for t, _ in found] == ["2026-11-30", "2026-12-01"]


def test_a_concurrent_write_between_read_and_write_is_not_lost(dynamodb, stage) -> None:
    # GIVEN another writer that changes the item after each of our reads, twice
    items = DynamoRollupItems(dynamodb, stage.stats_table)
    items.apply(write("1", job="a" * 32, records=1))
    other = DynamoRollupItems(dynamodb, stage.stats_table)
    interleaved: list[str] = []

    def sneak_in(**_: Any) -> None:
        if len(interleaved) < 2:
            interleaved.append("bc"[len(interleaved)] * 32)
            other.apply(write("1", job=interleaved[-1], records=10))

    dynamodb.meta.events.register("after-call.dynamodb.GetItem", sneak_in)
    try:
        # WHEN we add ours
        assert items.apply(write("7", records=100))
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.GetItem", sneak_in)
    # THEN every write is in the item
    assert document(items) == {"11": {"records": 121}}


def test_rebuild_recomputes_a_range_from_the_records_and_migrates_the_former_items(
        app_module, s3, sqs, dynamodb, stage) -> None:
    from logctl.rollups import rebuild
    # GIVEN rollups kept from the stream, then damaged; and items of the former layouts
    reader = StreamReader(stage.region, dynamodb, stage.results_table)
    run_pipeline(app_module, s3, sqs, stage, "logs/r1.ndjson", corpus_file(21, 3))
    run_pipeline(app_module, s3, sqs, stage, "logs/r2.ndjson", corpus_file(22, 2))
    with Client(app_module.app) as client:
        feed(client, reader, twice=False)
    clean = _stats_items(dynamodb, stage)
    uploaded = datetime.fromisoformat(
        dynamodb.scan(TableName=stage.results_table)["Items"][0]["uploaded_at"]["S"])
    today = (f"hours#{uploaded:%Y-%m}", f"{uploaded:%d}#upload")
    damaged = {**clean[today], "07": {"files_received": 7}}
    dynamodb.update_item(TableName=stage.stats_table,
                         Key={"series": {"S": today[0]}, "hour": {"S": today[1]}},
                         UpdateExpression="SET figures = :f",
                         ExpressionAttributeValues={":f": {"B": pack(Target(*today), damaged)}})
    old = uploaded - timedelta(days=10)
    dynamodb.put_item(TableName=stage.stats_table, Item={
        "series": {"S": "hourly"}, "hour": {"S": f"{old:%Y-%m-%dT%H}"},
        "files_received": {"N": "2"}, "files_completed": {"N": "2"}, "lines": {"N": "30"},
        "malformed": {"N": "3"}, "level_error": {"N": "4"}, "level_info": {"N": "23"},
        "sc_200": {"N": "27"}})
    dynamodb.put_item(TableName=stage.stats_table, Item={
        "series": {"S": f"hours#{old:%Y-%m-%d}"}, "hour": {"S": f"{old:%H}#stream"},
        "files_received": {"N": "1"}, "records": {"N": "5"}, "level_info": {"N": "5"},
        "sc_200": {"N": "5"}, "b_300": {"N": "5"}, "rt_sum": {"N": "2000"}})
    dynamodb.put_item(TableName=stage.stats_table, Item={
        "series": {"S": f"endpoints#{old:%Y-%m-%d}"}, "hour": {"S": f"{old:%H}#stream#ab12"},
        "endpoint": {"S": "/x"}, "requests": {"N": "5"}, "errors": {"N": "1"},
        "b_300": {"N": "5"}})
    # WHEN the range from 11 days ago to now is rebuilt
    done = rebuild(stage, uploaded - timedelta(days=11), datetime.now(UTC), datetime.now(UTC))
    assert (done.records, done.legacy_migrated) == (2, 3)
    # THEN the items are those the stream made, plus the migrated ones; the former are gone
    after = _stats_items(dynamodb, stage)
    upload = after.pop((f"hours#{old:%Y-%m}", f"{old:%d}#upload"))
    assert upload == {f"{old:%H}": {
        "files_received": 2, "files_completed": 2, "malformed": 3, "records": 27,
        "levels": {"error": 4, "info": 23}, "codes": {"200": 27}}}
    streamed = after.pop((f"hours#{old:%Y-%m}", f"{old:%d}#stream"))
    assert streamed == {f"{old:%H}": {
        "files_received": 1, "records": 5, "rt_sum": 2000, "levels": {"info": 5},
        "codes": {"200": 5}, "bins": [0, 300, [5]],
        "q": DenseBins(0, 300, [5]).quantiles(QUANTILES)}}
    endpoints = after.pop((f"endpoints#{old:%Y-%m}", f"{old:%dT%H}#stream"))
    assert endpoints == {"named": {"/x": {"requests": 5, "errors": 1, "bins": [0, 300, [5]]}}}
    assert after == clean
    for series in ("hourly", f"hours#{old:%Y-%m-%d}", f"endpoints#{old:%Y-%m-%d}"):
        assert not dynamodb.query(TableName=stage.stats_table,
                                  KeyConditionExpression="series = :s",
                                  ExpressionAttributeValues={":s": {"S": series}})["Items"]
