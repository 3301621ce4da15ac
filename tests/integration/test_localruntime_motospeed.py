"""The endpoint's speed-ups change how fast moto answers, never what it answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localruntime.endpoint import motospeed

ROOT = Path(__file__).resolve().parents[2]
TABLE = "speed"


def _attempt(call: Any, **kwargs: Any) -> Any:
    try:
        answer = call(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        response = getattr(exc, "response", {}).get("Error", {})
        return {"error": response.get("Code", type(exc).__name__),
                "message": response.get("Message", str(exc))}
    answer.pop("ResponseMetadata", None)
    return answer


def outcomes() -> list[Any]:
    """DynamoDB requests the pipeline makes and their edge cases, with what moto answers."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        key = {"id": {"S": "a"}}
        many = {f"f{i}": {"N": str(i)} for i in range(40)}
        nested = {"M": {"xs": {"L": [{"S": "x"}, {"M": {"k": {"N": "1"}}}]},
                        "tags": {"SS": ["b", "a"]}, "raw": {"B": b"\x00\x01"}}}
        update = ddb.update_item
        found: list[Any] = [
            _attempt(ddb.put_item, TableName=TABLE, Item={**key, "keep": {"S": "first"}},
                     ConditionExpression="attribute_not_exists(id)"),
            _attempt(ddb.put_item, TableName=TABLE, Item={**key, "keep": {"S": "again"}},
                     ConditionExpression="attribute_not_exists(id)"),
            _attempt(update, TableName=TABLE, Key=key, ReturnValues="ALL_NEW",
                     UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in many)
                     + ", #keep = if_not_exists(#keep, :keep), #doc = :doc",
                     ExpressionAttributeNames={**{f"#{n}": n for n in many}, "#keep": "keep",
                                               "#doc": "doc"},
                     ExpressionAttributeValues={**{f":{n}": v for n, v in many.items()},
                                                ":keep": {"S": "second"}, ":doc": nested}),
            _attempt(update, TableName=TABLE, Key=key, ReturnValues="UPDATED_OLD",
                     UpdateExpression="SET doc.xs[1].k = doc.xs[1].k + :one, n = :one "
                     "ADD hits :one REMOVE f0, f1",
                     ExpressionAttributeValues={":one": {"N": "1"}}),
            _attempt(update, TableName=TABLE, Key=key, ReturnValues="ALL_NEW",
                     UpdateExpression="SET doc.xs = list_append(doc.xs, :more)",
                     ExpressionAttributeValues={":more": {"L": [{"N": "3"}]}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET a = :v SET b = :v",
                     ExpressionAttributeValues={":v": {"N": "1"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="ADD a :v ADD b :v",
                     ExpressionAttributeValues={":v": {"N": "1"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET a = :v, a = :w",
                     ExpressionAttributeValues={":v": {"N": "1"}, ":w": {"N": "2"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET #a = :v, #b = :w",
                     ExpressionAttributeNames={"#a": "same", "#b": "same"},
                     ExpressionAttributeValues={":v": {"N": "1"}, ":w": {"N": "2"}}),
            _attempt(update, TableName=TABLE, Key=key,
                     UpdateExpression="SET doc.tags = :v, doc = :w",
                     ExpressionAttributeValues={":v": {"N": "1"}, ":w": {"N": "2"}}),
            *(_attempt(update, TableName=TABLE, Key=key, UpdateExpression=expression,
                       ExpressionAttributeValues={f":{n}": {"N": str(n)} for n in range(1, 5)
                                                  if f":{n}" in expression},
                       **({"ExpressionAttributeNames": {"#a": "a"}} if "#a" in expression
                          else {}))
              for expression in ("SET a = :1, b = :2, b = :3, a = :4",
                                 "SET x = :1, y = :2, y.z = :3, x.w = :4",
                                 "SET #a = :1, #a = :2 REMOVE x, x.y",
                                 "ADD q :1 SET a = :1 SET b = :2 ADD r :1")),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET id = :v",
                     ExpressionAttributeValues={":v": {"S": "b"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET a = :missing"),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET a = #missing",
                     ExpressionAttributeValues={":v": {"N": "1"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET f2 = f2 + :s",
                     ExpressionAttributeValues={":s": {"S": "text"}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET big = :big",
                     ExpressionAttributeValues={":big": {"S": "x" * 410_000}}),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET keep = :v",
                     ConditionExpression="keep = :old",
                     ExpressionAttributeValues={":v": {"S": "third"}, ":old": {"S": "nope"}}),
            _attempt(update, TableName=TABLE, Key={"id": {"S": "new"}},
                     UpdateExpression="SET a = :v", ExpressionAttributeValues={":v": {"N": "5"}}),
            _attempt(ddb.get_item, TableName=TABLE, Key=key, ConsistentRead=True),
            _attempt(update, TableName=TABLE, Key=key, UpdateExpression="SET n1 = :a, n2 = :b",
                     ExpressionAttributeValues={":a": {"N": "0001"}, ":b": {"N": "1e3"}}),
            _attempt(ddb.get_item, TableName=TABLE, Key=key,
                     ProjectionExpression="keep, f5, doc, n1, n2"),
            _attempt(ddb.get_item, TableName=TABLE, Key=key, ProjectionExpression="doc.xs[1], #k",
                     ExpressionAttributeNames={"#k": "keep"}),
            _attempt(ddb.scan, TableName=TABLE),
        ]
    return _sets_sorted(json.loads(json.dumps(found, default=repr)))


def _sets_sorted(value: Any) -> Any:
    """DynamoDB sets have no order (moto's own path returns them in hash order)."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _sets_sorted(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


def kinesis_outcomes() -> list[Any]:
    """Kinesis calls over shards that grow, split and merge, with what moto answers (arrival
    times left out: they differ run to run), and a shard's reads at fixed arrival times."""
    import boto3
    from moto import mock_aws
    from moto.kinesis.models import Record, Shard

    found: list[Any] = []
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=2)
        for start in range(0, 60, 20):
            found.append(_attempt(kinesis.put_records, StreamName="s", Records=[
                {"Data": f"{i}".encode(), "PartitionKey": f"k{i}"}
                for i in range(start, start + 20)]))
        found.append(_attempt(kinesis.put_record, StreamName="s", Data=b"one",
                              PartitionKey="k1"))

        def read(shard: str, kind: str, limit: int | None, **where: Any) -> Any:
            iterator = _attempt(kinesis.get_shard_iterator, StreamName="s", ShardId=shard,
                                ShardIteratorType=kind, **where)
            if "ShardIterator" not in iterator:
                return iterator
            answer = _attempt(kinesis.get_records, ShardIterator=iterator["ShardIterator"],
                              **({"Limit": limit} if limit else {}))
            for record in answer.get("Records", []):
                record.pop("ApproximateArrivalTimestamp")
            answer.pop("MillisBehindLatest", None)
            return answer

        for shard in ("shardId-000000000000", "shardId-000000000001"):
            found += [read(shard, "TRIM_HORIZON", None), read(shard, "TRIM_HORIZON", 7),
                      read(shard, "LATEST", None),
                      read(shard, "AT_SEQUENCE_NUMBER", 5, StartingSequenceNumber="3"),
                      read(shard, "AFTER_SEQUENCE_NUMBER", 1000, StartingSequenceNumber="10"),
                      read(shard, "AFTER_SEQUENCE_NUMBER", 3, StartingSequenceNumber="999")]
        found.append(_attempt(kinesis.split_shard, StreamName="s",
                              ShardToSplit="shardId-000000000000",
                              NewStartingHashKey=str(2 ** 126)))
        found.append(_attempt(kinesis.merge_shards, StreamName="s",
                              ShardToMerge="shardId-000000000002",
                              AdjacentShardToMerge="shardId-000000000003"))
        shards = _attempt(kinesis.list_shards, StreamName="s")
        found.append(shards)
        for shard in shards.get("Shards", []):
            found += [read(shard["ShardId"], "TRIM_HORIZON", None),
                      read(shard["ShardId"], "LATEST", 2)]

    shard = Shard(0, 0, 2 ** 128)
    for n in range(1, 31):
        shard.records[n] = Record("k", "eA==", n, "")
        shard.records[n].created_at = 1000.0 + n * 0.25
    found.append([shard.get_max_sequence_number(), shard.get_min_sequence_number()])
    for last in ("0", "1", "14", "29", "30", "45"):
        for limit in (None, 1, 4, 100):
            records, next_last, behind = shard.get_records(last, limit)
            found.append([[r.sequence_number for r in records], next_last, behind])
    gappy = Shard(1, 0, 2 ** 128)
    for n in (2, 3, 7):
        gappy.records[n] = Record("k", "eA==", n, "")
        gappy.records[n].created_at = 1000.0 + n
    records, next_last, behind = gappy.get_records("2", 5)
    found.append([[r.sequence_number for r in records], next_last, behind])
    return json.loads(json.dumps(found, default=repr))


QUERY_SEED = 20261206


def _query_tables(ddb: Any) -> None:
    """`events`: a hash and a numeric range key, a GSI with a range key, one without, an
    LSI; `words`: a numeric hash key and a string range key; `single`: a hash key only;
    `mixed`: an index key of two types (moto does not refuse them)."""
    s, n = "S", "N"

    def key(*names: tuple[str, str]) -> list[dict[str, str]]:
        return [{"AttributeName": name, "KeyType": kind} for name, kind in names]

    def attributes(**types: str) -> list[dict[str, str]]:
        return [{"AttributeName": name, "AttributeType": kind} for name, kind in types.items()]

    ddb.create_table(
        TableName="events", BillingMode="PAY_PER_REQUEST",
        KeySchema=key(("pk", "HASH"), ("sk", "RANGE")),
        AttributeDefinitions=attributes(pk=s, sk=n, g=s, t=n),
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "KeySchema": key(("g", "HASH"), ("t", "RANGE")),
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by_g_only", "KeySchema": key(("g", "HASH")),
             "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        LocalSecondaryIndexes=[
            {"IndexName": "by_t", "KeySchema": key(("pk", "HASH"), ("t", "RANGE")),
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]}}])
    ddb.create_table(TableName="words", BillingMode="PAY_PER_REQUEST",
                     KeySchema=key(("n", "HASH"), ("w", "RANGE")),
                     AttributeDefinitions=attributes(n=n, w=s))
    ddb.create_table(TableName="mixed", BillingMode="PAY_PER_REQUEST",
                     KeySchema=key(("id", "HASH")), AttributeDefinitions=attributes(id=s, g=s, t=n),
                     GlobalSecondaryIndexes=[{"IndexName": "by_g",
                                              "KeySchema": key(("g", "HASH"), ("t", "RANGE")),
                                              "Projection": {"ProjectionType": "ALL"}}])
    ddb.create_table(TableName="single", BillingMode="PAY_PER_REQUEST",
                     KeySchema=key(("id", "HASH")), AttributeDefinitions=attributes(id=s, g=s),
                     GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": key(("g", "HASH")),
                                              "Projection": {"ProjectionType": "ALL"}}])


def _query_corpus(rng: Any) -> list[tuple[str, dict[str, Any]]]:
    """Items for the query tables, in a random order across partitions: partitions of 0 to
    40 items; `huge` holds 300 KB items (a page ends at 1 MB); index keys are sometimes
    missing (the item is not in that index)."""
    items: list[tuple[str, dict[str, Any]]] = []
    for p in range(8):
        keys = rng.sample(range(-500, 500), rng.choice([1, 2, 5, 13, 40]))
        for k in keys:
            note = rng.choice(["x", "yy", "zzz"]) * rng.randrange(1, 50)
            item: dict[str, Any] = {"pk": {"S": f"p{p}"}, "sk": {"N": f"{k / 4}"},
                                    "n": {"N": str(rng.randrange(100))}, "note": {"S": note}}
            if rng.random() < 0.8:
                item["g"] = {"S": rng.choice("abc")}
            if rng.random() < 0.8:
                item["t"] = {"N": str(rng.randrange(30))}
            items.append(("events", item))
    for k in range(7):
        items.append(("events", {"pk": {"S": "huge"}, "sk": {"N": str(k)}, "g": {"S": "h"},
                                 "t": {"N": str(k % 3)}, "n": {"N": str(k)},
                                 "blob": {"S": f"{k}" * 300_000}}))
    for number in ("1", "2.5", "-3", "10"):
        for word in rng.sample(["ant", "apple", "apt", "bee", "beet", "cat", "a", "b"], 6):
            items.append(("words", {"n": {"N": number}, "w": {"S": word},
                                    "n2": {"N": str(rng.randrange(9))}}))
    for i in range(25):
        item = {"id": {"S": f"{rng.randrange(10**6):06}"}, "n": {"N": str(i)}}
        if i % 3:
            item["g"] = {"S": rng.choice("ab")}
        items.append(("single", item))
    rng.shuffle(items)
    # 1 and true tie when sorted (Decimal(1) == True), ahead of their ids: by id, moto says.
    items += [("mixed", {"id": {"S": "z"}, "g": {"S": "a"}, "t": {"N": "1"}}),
              ("mixed", {"id": {"S": "y"}, "g": {"S": "a"}, "t": {"BOOL": True}}),
              ("mixed", {"id": {"S": "x"}, "g": {"S": "a"}, "t": {"N": "0"}})]
    return items


def _summary(value: Any) -> Any:
    """An answer with its long strings as length and digest (300 KB attributes)."""
    import hashlib

    if isinstance(value, dict):
        return {k: _summary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summary(v) for v in value]
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} {hashlib.sha256(value.encode()).hexdigest()[:12]}>"
    return value


def query_outcomes() -> list[Any]:
    """Queries over a seeded random corpus, read page by page (Limit, the 1 MB page), with
    range conditions, filters, projections, counts, both directions, on the table and on
    its indexes, before and after writes, with what moto answers."""
    import random

    import boto3
    from moto import mock_aws

    rng = random.Random(QUERY_SEED)
    found: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _query_tables(ddb)
        for table, item in _query_corpus(rng):
            ddb.put_item(TableName=table, Item=item)

        def pages(limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
            """Every page of a Query (at most 60), each answer as moto gave it."""
            asked = {"table": kwargs["TableName"], "index": kwargs.get("IndexName"),
                     "limit": limit}
            answers: list[Any] = []
            while len(answers) < 60:
                answer = _attempt(ddb.query, **kwargs, **({"Limit": limit} if limit else {}))
                answers.append(answer)
                if "LastEvaluatedKey" not in answer:
                    break
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            return {**asked, "pages": answers}

        def on_events(partition: str, condition: str = "", **values: Any) -> dict[str, Any]:
            return {"TableName": "events",
                    "KeyConditionExpression": "pk = :p" + (f" AND {condition}" if condition
                                                           else ""),
                    "ExpressionAttributeValues": {":p": {"S": partition},
                                                  **{f":{k}": {"N": str(v)}
                                                     for k, v in values.items()}}}

        def read_all() -> None:
            for forward in (True, False):  # 300 KB items: a page ends at 1 MB
                found.append(pages(None, **on_events("huge"), ScanIndexForward=forward))
                found.append(pages(2, **on_events("huge", "sk > :a", a=0),
                                   ScanIndexForward=forward))
            for partition in [f"p{p}" for p in range(8)] + ["nope"]:
                for limit in (None, 1, 4):
                    for forward in (True, False):
                        found.append(pages(limit, **on_events(partition),
                                           ScanIndexForward=forward))
                k1, k2 = sorted(rng.randrange(-130, 130) / 4 for _ in range(2))
                for condition, values in (("sk = :a", {"a": k1}), ("sk < :a", {"a": k1}),
                                          ("sk <= :a", {"a": k2}), ("sk > :a", {"a": k1}),
                                          ("sk >= :a", {"a": k2}),
                                          ("sk BETWEEN :a AND :b", {"a": k1, "b": k2})):
                    for limit in (None, 3):
                        found.append(pages(limit, **on_events(partition, condition, **values),
                                           ScanIndexForward=rng.random() < 0.5))
                found.append(pages(2, **on_events(partition, "sk > :a", a=k1, m=50),
                                   FilterExpression="n < :m"))
                found.append(pages(None, **on_events(partition), Select="COUNT",
                                   ConsistentRead=True))
                found.append(pages(5, **on_events(partition), ProjectionExpression="sk, #n",
                                   ExpressionAttributeNames={"#n": "note"}))
                found.append(pages(3, TableName="events", KeyConditions={
                    "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": partition}]},
                    "sk": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "-50"}]}}))
                found.append(pages(None, **on_events(partition, "t > :a", a=3),
                                   IndexName="by_t"))
            for g in ("a", "b", "c", "h", "none"):
                for limit, forward in ((None, True), (3, False), (7, True)):
                    found.append(pages(limit, TableName="events", IndexName="by_g",
                                       KeyConditionExpression="g = :g AND t BETWEEN :x AND :y",
                                       ExpressionAttributeValues={
                                           ":g": {"S": g}, ":x": {"N": "4"}, ":y": {"N": "20"}},
                                       ScanIndexForward=forward))
                    found.append(pages(limit, TableName="events", IndexName="by_g_only",
                                       KeyConditionExpression="g = :g",
                                       ExpressionAttributeValues={":g": {"S": g}},
                                       ScanIndexForward=forward))
                    found.append(pages(limit, TableName="single", IndexName="by_g",
                                       KeyConditionExpression="g = :g",
                                       ExpressionAttributeValues={":g": {"S": g}},
                                       ScanIndexForward=forward))
            found.append(pages(None, TableName="mixed", IndexName="by_g",
                               KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": "a"}}))
            found.append(pages(None, TableName="events", IndexName="by_g", ConsistentRead=True,
                               KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": "a"}}))
            found.append(pages(None, TableName="events", IndexName="nope",
                               KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": "a"}}))
            for number in ("1", "1.0", "2.5", "-3", "10", "11"):
                for condition, word in (("", ""), ("begins_with(w, :w)", "a"),
                                        ("w > :w", "b"), ("w = :w", "apt")):
                    found.append(pages(2, TableName="words", KeyConditionExpression="n = :n"
                                       + (f" AND {condition}" if condition else ""),
                                       ExpressionAttributeValues={
                                           ":n": {"N": number},
                                           **({":w": {"S": word}} if word else {})},
                                       ScanIndexForward=number != "2.5"))
            found.append(pages(None, TableName="words", KeyConditionExpression="n = :n",
                               ExpressionAttributeValues={":n": {"S": "1"}}))
            ids = [*sorted(rng.sample(range(10**6), 3)), 0]
            for i in ids:
                found.append(pages(None, TableName="single", KeyConditionExpression="id = :i",
                                   ExpressionAttributeValues={":i": {"S": f"{i:06}"}}))
            single = _attempt(ddb.scan, TableName="single")["Items"]
            found.append(pages(None, TableName="single", KeyConditionExpression="id = :i",
                               ExpressionAttributeValues={":i": single[0]["id"]},
                               ConsistentRead=True))

        read_all()
        events = [item for page in ddb.get_paginator("scan").paginate(
                      TableName="events", ProjectionExpression="pk, sk") for item in page["Items"]]
        for item in rng.sample(events, 20):
            found.append(_attempt(ddb.delete_item, TableName="events", Key=item))
        for item in rng.sample(events, 20):
            found.append(_attempt(ddb.update_item, TableName="events", Key=item,
                                  UpdateExpression="SET n = :n, g = :g",
                                  ExpressionAttributeValues={":n": {"N": "7"}, ":g": {"S": "c"}},
                                  ReturnValues="ALL_NEW"))
        for table, item in _query_corpus(rng)[:40]:
            ddb.put_item(TableName=table, Item=item)
        read_all()
    return _summary(json.loads(json.dumps(found, default=repr)))


def _outcomes_with(off: str, which: str = "outcomes") -> list[Any]:
    code = ("import json, os; from localruntime.endpoint import motofixes, motospeed; "
            "motospeed.apply(motospeed.switched_off(os.environ['OFF'])); motofixes.apply(); "
            f"from tests.integration.test_localruntime_motospeed import {which}; "
            f"print(json.dumps({which}()))")
    env = {**os.environ, "OFF": off, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_dynamodb_answers_the_same_with_and_without_the_speed_ups() -> None:
    plain = _outcomes_with("all")
    assert plain[1]["error"] == "ConditionalCheckFailedException"
    assert "SET" in plain[5]["message"] and "ADD" in plain[6]["message"]
    assert plain[7]["error"] == plain[8]["error"] == plain[14]["error"] == "ValidationException"
    assert "[b]" in plain[10]["message"] and "[y]" in plain[11]["message"]
    assert plain[2]["Attributes"]["keep"] == {"S": "first"}
    assert plain[3]["Attributes"]["doc"]["M"]["xs"]["L"][1] == {"M": {"k": {"N": "1"}}}
    assert plain[4]["Attributes"]["doc"]["M"]["xs"]["L"][2] == {"N": "3"}
    projected = next(o["Item"] for o in plain if "Item" in o and "n1" in o["Item"])
    assert projected["n1"] == {"N": "1"} and projected["n2"] == {"N": "1E+3"}
    assert _outcomes_with("") == plain


def test_kinesis_answers_the_same_with_and_without_the_speed_ups() -> None:
    plain = _outcomes_with("all", "kinesis_outcomes")
    reads = [o for o in plain if isinstance(o, dict) and "Records" in o and
             "NextShardIterator" in o]
    assert any(len(o["Records"]) == 7 for o in reads)
    assert plain[-1] == [[3, 7], 7, 0]  # a shard with a gap in its numbers
    assert plain[-15] == [[15, 16, 17, 18], 18, 3000]  # after 14, limit 4
    assert _outcomes_with("", "kinesis_outcomes") == plain


def test_queries_answer_the_same_with_and_without_the_speed_ups() -> None:
    plain = _outcomes_with("all", "query_outcomes")
    reads = [read for read in plain if isinstance(read, dict) and "pages" in read]
    answers = [answer for read in reads for answer in read["pages"]]

    def holds(read: dict[str, Any], key: str, value: str) -> bool:
        return any(item.get(key) == {"S": value} for answer in read["pages"]
                   for item in answer.get("Items", []))

    # The 1 MB page: 300 KB items, no Limit, more than one page.
    assert any(read["limit"] is None and read["index"] is None and holds(read, "pk", "huge")
               and len(read["pages"]) > 1 for read in reads)
    assert any(len(read["pages"]) >= 10 for read in reads)  # Limit 1 through a partition
    assert any(a.get("ScannedCount", 0) > a.get("Count", 0) for a in answers)  # filtered
    assert any(read["index"] == "by_g" and len(read["pages"]) > 2 for read in reads)
    assert sum(holds(read, "w", "bee") for read in reads if read["table"] == "words") >= 4
    assert {a["error"] for a in answers if "error" in a} >= {"ValidationException"}
    assert _outcomes_with("", "query_outcomes") == plain


def test_speed_ups_are_switched_off_by_name_or_all() -> None:
    assert motospeed.switched_off(None) == frozenset()
    assert motospeed.switched_off(" update-checks ,update-copy") == {"update-checks",
                                                                      "update-copy"}
    assert motospeed.switched_off("all") == frozenset(motospeed.SPEEDUPS)
    with pytest.raises(ValueError, match="no speed-up named fast; the speed-ups are method-names"):
        motospeed.switched_off("fast")


def test_the_endpoint_refuses_an_unknown_speed_up_name() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), motospeed.OFF_VARIABLE: "update-chekcs"}
    done = subprocess.run([sys.executable, "-m", "localruntime.endpoint.server", "--port", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert f"endpoint: {motospeed.OFF_VARIABLE}: no speed-up named update-chekcs" in done.stderr
