"""Faults injected by the endpoint: real SDK clients see the errors AWS sends; only calls
tagged as the handlers' are hit, and each fault is one JSON line in the endpoint's log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ResponseStreamingError

from localruntime.faults import HANDLER_APP_ID, FaultPlan, count_faults
from tests.integration.endpointprocess import running_endpoint

PLAN = FaultPlan({"s3_get_reset": 1.0, "ddb_throughput": 1.0, "sqs_send_500": 1.0,
                  "sqs_visibility_500": 1.0}, seed=1)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("endpoint") / "endpoint.log"
    with running_endpoint(log, "--faults", PLAN.to_json()) as url:
        yield url, log


def client(service: str, url: str, *, handler: bool) -> object:
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                    user_agent_appid=HANDLER_APP_ID if handler else None)
    return boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t",
                                 region_name="us-east-1").client(service, endpoint_url=url,
                                                                 config=config)


def test_get_object_is_reset_mid_body_for_handlers_only(endpoint) -> None:
    url, _ = endpoint
    tool = client("s3", url, handler=False)
    tool.create_bucket(Bucket="soak-faults")
    where = {"Bucket": "soak-faults", "Key": "logs/a.ndjson"}
    tool.put_object(**where, Body=b"x" * 100_000)
    assert len(tool.get_object(**where)["Body"].read()) == 100_000
    body = client("s3", url, handler=True).get_object(**where)["Body"]
    with pytest.raises(ResponseStreamingError):
        body.read()


def test_dynamodb_writes_are_throttled_and_not_applied(endpoint) -> None:
    url, _ = endpoint
    tool = client("dynamodb", url, handler=False)
    tool.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                      AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                      KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    handler = client("dynamodb", url, handler=True)
    with pytest.raises(handler.exceptions.ProvisionedThroughputExceededException):
        handler.put_item(TableName="t", Item={"k": {"S": "1"}})
    with pytest.raises(handler.exceptions.ProvisionedThroughputExceededException):
        handler.update_item(TableName="t", Key={"k": {"S": "2"}},
                            UpdateExpression="SET v = :v",
                            ExpressionAttributeValues={":v": {"S": "x"}})
    assert tool.scan(TableName="t")["Count"] == 0
    assert handler.get_item(TableName="t", Key={"k": {"S": "1"}}).get("Item") is None


def test_sqs_send_and_visibility_changes_fail_with_internal_error(endpoint) -> None:
    url, log = endpoint
    tool = client("sqs", url, handler=False)
    queue = tool.create_queue(QueueName="q")["QueueUrl"]
    handler = client("sqs", url, handler=True)
    with pytest.raises(ClientError) as failure:
        handler.send_message(QueueUrl=queue, MessageBody="m")
    assert failure.value.response["Error"]["Code"] == "InternalError"
    tool.send_message(QueueUrl=queue, MessageBody="m")
    message = tool.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]
    with pytest.raises(ClientError):
        handler.change_message_visibility(QueueUrl=queue,
                                          ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
    assert handler.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages") is None
    counts = count_faults(log.read_text().splitlines())
    assert counts["sqs_send_500"] == 1 and counts["sqs_visibility_500"] == 1
