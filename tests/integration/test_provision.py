"""Provisioning creates every resource with the right settings, and is idempotent."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from moto import mock_aws

from logctl.hardening import Hardening, tls_only_policy
from logctl.provision import Safety, provision
from logctl.stage import StageError, load_stage


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


def test_provisioned_stage_is_hardened_and_alarms_notify_a_person(aws_env) -> None:
    # GIVEN the aws stage, raw uploads kept 7 days and an address for the alarms
    stage = dataclasses.replace(load_stage("aws"), endpoint_url=None)
    safety = Safety(Hardening(raw_log_days=7), alert_email="ops@example.com")
    with mock_aws():
        # WHEN it is provisioned, twice
        first = provision(stage, safety)
        provision(stage, safety)
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        block = s3.get_public_access_block(Bucket=stage.bucket)
        encryption = s3.get_bucket_encryption(Bucket=stage.bucket)
        bucket_policy = json.loads(s3.get_bucket_policy(Bucket=stage.bucket)["Policy"])
        versioning = s3.get_bucket_versioning(Bucket=stage.bucket)
        rules = s3.get_bucket_lifecycle_configuration(Bucket=stage.bucket)["Rules"]
        queues = [sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                  for url in (first.jobs_queue_url, first.dead_letter_queue_url)]
        backups = ddb.describe_continuous_backups(TableName=stage.results_table)
        topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        subscriptions = sns.list_subscriptions()["Subscriptions"]
        alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
        stream = boto3.client("kinesis", region_name="us-east-1").describe_stream_summary(
            StreamName=stage.ingest_stream)["StreamDescriptionSummary"]
    # THEN the bucket is closed to the public, encrypted, TLS-only, versioned
    assert all(block["PublicAccessBlockConfiguration"].values())
    assert len(block["PublicAccessBlockConfiguration"]) == 4
    assert encryption["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [deny] = bucket_policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert f"arn:aws:s3:::{stage.bucket}/*" in deny["Resource"]
    assert versioning["Status"] == "Enabled"
    # AND raw uploads expire after the configured days; incomplete uploads are aborted
    by_id = {r["ID"]: r for r in rules}
    expire = by_id["expire-raw-uploads"]
    assert expire["Status"] == "Enabled" and expire["Filter"]["Prefix"] == "logs/"
    assert expire["Expiration"]["Days"] == 7
    assert expire["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    assert by_id["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1}
    # AND both queues are encrypted, the table recoverable to a point in time
    assert [q.get("SqsManagedSseEnabled") for q in queues] == ["true", "true"]
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
        "PointInTimeRecoveryStatus"] == "ENABLED"
    # AND the ingest stream is encrypted and keeps records for less time than raw logs live
    assert first.ingest_stream_arn == stream["StreamARN"]
    assert (stream["EncryptionType"], stream["KeyId"]) == ("KMS", "alias/aws/kinesis")
    assert stream["RetentionPeriodHours"] == 24 < 7 * 24
    assert stream["OpenShardCount"] == 1
    # AND one topic, the address subscribed once, and every alarm notifies the topic
    [topic] = [t for t in topics if t.endswith(":log-pipeline-aws-alerts")]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions
            if s["TopicArn"] == topic] == [("email", "ops@example.com")]
    expected = {
        "log-pipeline-aws-jobs-dlq-not-empty": ("ApproximateNumberOfMessagesVisible",
                                                stage.dead_letter_queue),
        "log-pipeline-aws-worker-errors": ("Errors", "log-pipeline-aws-worker"),
        "log-pipeline-aws-worker-throttles": ("Throttles", "log-pipeline-aws-worker"),
        "log-pipeline-aws-trigger-errors": ("Errors", "log-pipeline-aws-trigger"),
        "log-pipeline-aws-jobs-oldest-age": ("ApproximateAgeOfOldestMessage",
                                             stage.jobs_queue),
        "log-pipeline-aws-rollups-errors": ("Errors", "log-pipeline-aws-rollups"),
        "log-pipeline-aws-rollups-iterator-age": ("IteratorAge", "log-pipeline-aws-rollups"),
        "log-pipeline-aws-ingest-errors": ("Errors", "log-pipeline-aws-ingest"),
        "log-pipeline-aws-ingest-iterator-age": ("IteratorAge", "log-pipeline-aws-ingest"),
    }
    rate = alarms.pop("log-pipeline-aws-log-error-rate")
    assert set(alarms) == set(expected)
    assert rate["AlarmActions"] == [topic] and rate["Threshold"] == 0.1
    [query] = [m for m in rate["Metrics"] if m.get("ReturnData")]
    assert query["Expression"] == ("IF(Lines - MalformedLines > 0, "
                                   "ErrorRecords / (Lines - MalformedLines), 0)")
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"]
            if "MetricStat" in m} == {"ErrorRecords", "Lines", "MalformedLines"}
    for name, (metric, dimension) in expected.items():
        alarm = alarms[name]
        assert alarm["AlarmActions"] == [topic], name
        assert (alarm["MetricName"], alarm["Dimensions"][0]["Value"]) == (metric, dimension)
    assert alarms["log-pipeline-aws-jobs-oldest-age"]["Threshold"] == 1800
    assert alarms["log-pipeline-aws-ingest-iterator-age"]["Threshold"] == 900_000  # ms


def test_raw_logs_must_outlive_the_streams_records(aws_env) -> None:
    stage = dataclasses.replace(load_stage("aws"), endpoint_url=None)
    with mock_aws():
        with pytest.raises(StageError, match="at least 2 days"):
            provision(stage, Safety(Hardening(raw_log_days=1)))
        assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_bad_retention_is_refused() -> None:
    with pytest.raises(StageError, match="RAW_LOG_DAYS"):
        Safety.from_env({"RAW_LOG_DAYS": "0"})
    assert Safety.from_env({}).hardening.raw_log_days == 30
    with pytest.raises(StageError, match="INGEST_SHARDS"):
        Safety.from_env({"INGEST_SHARDS": "0"})
    assert Safety.from_env({"INGEST_SHARDS": "3"}).stream.shards == 3


def test_the_tls_only_policy_denies_plain_requests_only() -> None:
    from localruntime.endpoint.motofixes import statement_applies

    [deny] = tls_only_policy("b")["Statement"]
    assert statement_applies(deny, {"aws:securetransport": "false"})
    assert not statement_applies(deny, {"aws:securetransport": "true"})
    assert statement_applies(deny, {}) is False
