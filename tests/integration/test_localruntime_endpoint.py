"""The runtime's endpoint (moto's server with the runtime's adjustments), as a child process."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localruntime.background import free_port
from localruntime.sources.sqs_json import LocalSqsClient, SqsCallError

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "endpoint-test"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localruntime.endpoint.server", "--port", str(port),
         "--exit-with-parent"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the endpoint did not start")
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(30)


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 1}))


def queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_s3_notifications_accept_chalices_filter_names_and_look_like_aws(endpoint: str) -> None:
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    s3.create_bucket(Bucket=BUCKET)
    url, arn = queue(sqs, "notifications")
    # GIVEN a notification with filter rule names spelled as Chalice spells them
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "n", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [
                                     {"Name": "Prefix", "Value": "logs/"},
                                     {"Name": "Suffix", "Value": ".ndjson"}]}}}]})
    drain(sqs, url)
    # WHEN objects are written, versioned or not, inside and outside the filter
    s3.put_object(Bucket=BUCKET, Key="logs/a b+c.ndjson", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="other/x.ndjson", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="logs/x.txt", Body=b"1")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=BUCKET, Key="logs/v.ndjson", Body=b"22")["VersionId"]
    # THEN only the matching ones notify, with keys encoded as S3 encodes them
    records = [event["Records"][0] for event in drain(sqs, url)]
    objects = [r["s3"]["object"] for r in records]
    assert [o["key"] for o in objects] == ["logs/a+b%2Bc.ndjson", "logs/v.ndjson"]
    assert "versionId" not in objects[0] and objects[1]["versionId"] == version
    assert objects[1]["size"] == 2
    assert objects[0]["sequencer"] < objects[1]["sequencer"]
    assert all(r["eventName"] == "ObjectCreated:Put" for r in records)


def lambda_function(endpoint: str, name: str) -> str:
    iam, lam = client(endpoint, "iam"), client(endpoint, "lambda")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]
    }))["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    raise SystemExit(1)\n")
    return lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                               Handler="app.handler", Code={"ZipFile": package.getvalue()}
                               )["FunctionArn"]


def test_moto_never_runs_lambda_functions(endpoint: str) -> None:
    sqs, lam, s3 = client(endpoint, "sqs"), client(endpoint, "lambda"), client(endpoint, "s3")
    function_arn = lambda_function(endpoint, "consumer")
    url, arn = queue(sqs, "mapped")
    # GIVEN an SQS mapping and an S3 notification to a function
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function_arn,
                                    BatchSize=10)
    s3.create_bucket(Bucket="lambda-notified")
    s3.put_bucket_notification_configuration(Bucket="lambda-notified", NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function_arn,
                                          "Events": ["s3:ObjectCreated:*"]}]})
    # WHEN a message is sent and an object written
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"left": "alone"}))
    s3.put_object(Bucket="lambda-notified", Key="k", Body=b"1")
    # THEN the message is still there for a poller, and the mapping is listed by name and ARN
    assert drain(sqs, url) == [{"left": "alone"}]
    for name in ("consumer", function_arn):
        mappings = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        assert [m["EventSourceArn"] for m in mappings] == [arn]
    assert lam.list_event_source_mappings(FunctionName="other")["EventSourceMappings"] == []


def test_dynamodb_items_updates_and_projections_behave(endpoint: str) -> None:
    ddb = client(endpoint, "dynamodb")
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    item = {"id": {"S": "a"}, "status": {"S": "done"}, "n": {"N": "3"},
            "m": {"M": {"x": {"S": "1"}, "y": {"L": [{"N": "1"}, {"N": "2"}]}}}}
    ddb.put_item(TableName="t", Item=item)
    # Projections: top-level, nested and list elements
    get = lambda expression, **names: ddb.get_item(  # noqa: E731
        TableName="t", Key={"id": {"S": "a"}}, ProjectionExpression=expression,
        **({"ExpressionAttributeNames": names} if names else {}))["Item"]
    assert get("#s, n", **{"#s": "status"}) == {"status": {"S": "done"}, "n": {"N": "3"}}
    assert get("m.x") == {"m": {"M": {"x": {"S": "1"}}}}
    assert get("m.y[1]") == {"m": {"M": {"y": {"L": [{"N": "2"}]}}}}
    assert get("absent") == {}
    # The same update expression with different values, and a failing condition
    for value in ("1", "2"):
        ddb.update_item(TableName="t", Key={"id": {"S": "a"}},
                        UpdateExpression="SET n = :v, created = if_not_exists(created, :v)",
                        ExpressionAttributeValues={":v": {"N": value}})
    stored = ddb.get_item(TableName="t", Key={"id": {"S": "a"}})["Item"]
    assert stored["n"] == {"N": "2"} and stored["created"] == {"N": "1"}
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.update_item(TableName="t", Key={"id": {"S": "a"}}, UpdateExpression="SET n = :v",
                        ConditionExpression="n = :other",
                        ExpressionAttributeValues={":v": {"N": "9"}, ":other": {"N": "7"}})
    # Items over DynamoDB's 400 KB are refused, as before
    ddb.put_item(TableName="t", Item={"id": {"S": "big"}, "v": {"S": "x" * 390_000}})
    with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
        ddb.put_item(TableName="t", Item={"id": {"S": "huge"}, "v": {"S": "x" * 200_000},
                                           "w": {"S": "y" * 210_000}})


def test_connections_are_reused_and_bodies_never_leak_into_the_next_request(
        endpoint: str) -> None:
    host, port = endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "DynamoDB_20120810.ListTables",
               "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/"
                                "aws4_request, SignedHeaders=host, Signature=x"}
    for body in ("{}", json.dumps({"Limit": 5}), "{}"):
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert "TableNames" in json.loads(response.read())
        assert response.getheader("Connection") != "close"
    # A chunked request body still works (and closes its connection).
    connection.request("POST", "/", body=iter([b"{", b"}"]), headers=headers,
                       encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200 and "TableNames" in json.loads(response.read())
    connection.close()


def test_the_pollers_sqs_client_matches_boto3(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = queue(sqs, "polled")
    local = LocalSqsClient(endpoint, "us-east-1")
    sqs.send_message(QueueUrl=url, MessageBody="b1", MessageAttributes={
        "s": {"DataType": "String", "StringValue": "v"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}})
    sqs.send_message(QueueUrl=url, MessageBody="b2")
    # WHEN the pollers' client receives, with attributes, as a poller does
    received = local.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     MessageSystemAttributeNames=["All"],
                                     MessageAttributeNames=["All"])["Messages"]
    while len(received) < 2:
        received += local.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=1)["Messages"]
    # THEN it sees what boto3 would: bodies, receive counts, decoded binary attributes
    first = next(m for m in received if m["Body"] == "b1")
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert first["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\xff"
    assert first["MessageAttributes"]["s"]["StringValue"] == "v"
    # AND it can make one visible again and delete the other
    second = next(m for m in received if m["Body"] == "b2")
    local.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"],
                                    VisibilityTimeout=0)
    result = local.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "0", "ReceiptHandle": second["ReceiptHandle"]}])
    assert [s["Id"] for s in result["Successful"]] == ["0"]
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in again] == ["b1"]
    # Errors are reported with their code
    with pytest.raises(SqsCallError) as error:
        local.receive_message(QueueUrl=f"{endpoint}/123456789012/absent", WaitTimeSeconds=0)
    assert "NonExistentQueue" in error.value.code or "QueueDoesNotExist" in error.value.code
    with pytest.raises(SqsCallError, match="ConnectionError"):
        LocalSqsClient(f"http://127.0.0.1:{free_port()}", "us-east-1").receive_message(
            QueueUrl=url, WaitTimeSeconds=0)


def test_dynamodb_items_round_trip_and_put_item_answers_as_dynamodb_does(endpoint: str) -> None:
    ddb = client(endpoint, "dynamodb")
    ddb.create_table(TableName="items", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    item = {"id": {"S": "a"}, "n": {"N": "1.5"}, "b": {"B": b"\x00\xffbin"},
            "ss": {"SS": ["x", "y"]}, "bs": {"BS": [b"\x01", b"\x02"]}, "null": {"NULL": True},
            "flag": {"BOOL": False},
            "m": {"M": {"deep": {"L": [{"S": "s"}, {"N": "2"}, {"M": {}}, {"B": b"\x03"}]}}}}

    first = ddb.put_item(TableName="items", Item=item, ReturnConsumedCapacity="TOTAL")
    assert "Attributes" not in first
    assert first["ConsumedCapacity"]["TableName"] == "items"
    got = ddb.get_item(TableName="items", Key={"id": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert got == item

    second = ddb.put_item(TableName="items", Item={"id": {"S": "a"}, "n": {"N": "2"}},
                          ReturnValues="ALL_OLD")
    assert second["Attributes"] == item
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.put_item(TableName="items", Item={"id": {"S": "a"}},
                     ConditionExpression="attribute_not_exists(id)")
    projected = ddb.get_item(TableName="items", Key={"id": {"S": "a"}},
                             ProjectionExpression="n")["Item"]
    assert projected == {"n": {"N": "2"}}


def test_a_long_poll_does_not_hold_up_other_requests(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = queue(sqs, "long-poll")
    received: list[dict[str, Any]] = []
    poller = threading.Thread(target=lambda: received.extend(sqs.receive_message(
        QueueUrl=url, WaitTimeSeconds=10).get("Messages", [])))
    poller.start()
    time.sleep(0.5)  # let the poll reach the endpoint and start waiting
    try:
        other = client(endpoint, "dynamodb")
        for _ in range(5):
            other.list_tables()
        # Requests are served one at a time, yet the waiting poll let them through.
        assert poller.is_alive()
        client(endpoint, "sqs").send_message(QueueUrl=url, MessageBody="wake up")
    finally:
        poller.join(15)
    assert [m["Body"] for m in received] == ["wake up"]


def test_a_read_never_sees_an_update_half_applied(endpoint: str) -> None:
    # GIVEN an item whose 100 attributes an UpdateItem rewrites all at once, over and over
    ddb = client(endpoint, "dynamodb")
    ddb.create_table(TableName="atomic", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    key = {"id": {"S": "a"}}
    names = [f"a{i}" for i in range(100)]
    done = threading.Event()

    failures: list[Exception] = []

    def write() -> None:
        writer = client(endpoint, "dynamodb")
        try:
            for version in range(200):
                writer.update_item(
                    TableName="atomic", Key=key,
                    UpdateExpression="SET " + ", ".join(f"{n} = :v" for n in names),
                    ExpressionAttributeValues={":v": {"N": str(version)}})
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    # WHEN another client reads it meanwhile THEN every read shows one version throughout,
    # as DynamoDB's item-level atomicity guarantees
    mixed = []
    try:
        while not done.is_set():
            item = ddb.get_item(TableName="atomic", Key=key).get("Item", {})
            versions = {item[n]["N"] for n in names if n in item}
            if len(versions) > 1 or (versions and len(item) != len(names) + 1):
                mixed.append(versions)
    finally:
        writer.join(60)
    assert failures == [] and mixed == []


def test_rest_apis_import_as_chalice_writes_them(endpoint: str) -> None:
    # GIVEN a Swagger 2.0 document without a description, the way Chalice generates one
    apigateway = client(endpoint, "apigateway")
    integration = {"type": "aws_proxy", "httpMethod": "POST", "uri": (
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
        "arn:aws:lambda:us-east-1:123456789012:function:api/invocations")}
    method = {"responses": {"200": {"description": "ok"}},
              "x-amazon-apigateway-integration": integration}
    document = {"swagger": "2.0", "info": {"version": "1.0", "title": "chalice-style"},
                "schemes": ["https"], "paths": {"/jobs": {"get": method},
                                                "/jobs/{job_id}": {"get": method}}}
    # WHEN it is imported, then put again over itself (Chalice's create, then update)
    api_id = apigateway.import_rest_api(body=json.dumps(document))["id"]
    apigateway.put_rest_api(restApiId=api_id, mode="overwrite", body=json.dumps(document))
    # THEN the API has those routes, each with its Lambda integration
    resources = apigateway.get_resources(restApiId=api_id)["items"]
    by_path = {r["path"]: r for r in resources}
    assert {"/jobs", "/jobs/{job_id}"} <= set(by_path)
    got = apigateway.get_integration(restApiId=api_id, resourceId=by_path["/jobs"]["id"],
                                     httpMethod="GET")
    assert got["uri"] == integration["uri"]
