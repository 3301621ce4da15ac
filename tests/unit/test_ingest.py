"""The ingest handler against an in-memory object store: each record written once."""

from __future__ import annotations

import base64
import gzip

from chalicelib.core.stream import StreamRecord, object_body, object_key
from chalicelib.ingest import Ingest
from tests.twins import MemoryStreamObjects

SHARD = "shardId-000000000001"
T0 = 1_780_000_000.0


def event(sequences: range, arrived: float = T0) -> dict:
    return {"Records": [{
        "eventID": f"{SHARD}:{s}",
        "kinesis": {"sequenceNumber": str(s), "data": base64.b64encode(f"{s}\n".encode()),
                    "approximateArrivalTimestamp": arrived}} for s in sequences]}


def lines(store: MemoryStreamObjects) -> list[int]:
    return sorted(int(line) for body, _ in store.objects.values()
                  for line in gzip.decompress(body).split())


def test_an_object_written_between_listing_and_write_is_continued_after() -> None:
    store = MemoryStreamObjects()

    def other_writer(target: MemoryStreamObjects) -> None:
        first = StreamRecord(SHARD, "10", b"", T0)
        target.objects[object_key(first)] = (object_body([first]), "14")

    store.before_create.append(other_writer)
    Ingest(store).handle(event(range(10, 20)))
    assert sorted(last for _, last in store.objects.values()) == ["14", "19"]
    assert lines(store) == list(range(15, 20))  # 10-14 are the other writer's (empty here)


def test_a_failed_write_raises_and_the_retry_writes_once() -> None:
    store = MemoryStreamObjects()
    store.fail_next("create")
    try:
        Ingest(store).handle(event(range(1, 6)))
    except ConnectionError:
        pass
    else:
        raise AssertionError("a failed write must fail the batch, so Lambda retries it")
    assert store.objects == {}
    assert Ingest(store).handle(event(range(1, 6))) == {"batchItemFailures": []}
    Ingest(store).handle(event(range(3, 9)))
    assert lines(store) == list(range(1, 9))
    assert len(store.objects) == 2


def test_records_of_two_hours_become_two_objects_each_in_its_hour() -> None:
    store = MemoryStreamObjects()
    batch = event(range(1, 4))
    late = event(range(4, 6), T0 + 3600)
    Ingest(store).handle({"Records": batch["Records"] + late["Records"]})
    assert sorted(store.objects) == [
        "logs/stream/2026/05/28/20/shardId-000000000001-1.ndjson.gz",
        "logs/stream/2026/05/28/21/shardId-000000000001-4.ndjson.gz"]
    assert lines(store) == [1, 2, 3, 4, 5]
