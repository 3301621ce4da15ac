"""Provisioning creates every resource with the right settings, and is idempotent."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from moto import mock_aws

from logctl.provision import provision
from logctl.stage import load_stage


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.parametrize("name", ["local", "aws"])
def test_provision_creates_everything_once(aws_env, name: str) -> None:
    stage = dataclasses.replace(load_stage(name), endpoint_url=None)
    with mock_aws():
        first = provision(stage)
        second = provision(stage)
        sqs = boto3.client("sqs", region_name="us-east-1")
        attrs = sqs.get_queue_attributes(QueueUrl=first.jobs_queue_url,
                                         AttributeNames=["All"])["Attributes"]
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ttl = ddb.describe_time_to_live(TableName=stage.results_table)["TimeToLiveDescription"]
        buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert any(a.startswith("created bucket") for a in first.actions)
    assert not [a for a in second.actions if a.startswith("created")]
    assert int(attrs["VisibilityTimeout"]) == 6 * stage.function_timeout("worker")
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == first.dead_letter_queue_arn
    assert int(redrive["maxReceiveCount"]) == 5
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert stage.bucket in buckets
