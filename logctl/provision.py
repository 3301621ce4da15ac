"""Create, idempotently, the resources Chalice does not: bucket, queues, tables, the ingest
stream, alarms.

    python -m logctl.provision --stage local            # before the app runs or deploys
    python -m logctl.provision --stage aws --post-deploy  # after `chalice deploy`

`--post-deploy` turns on ReportBatchItemFailures on the worker's SQS event source
mapping and sets the stream mappings' settings (logctl.streammappings), which Chalice's
decorators cannot configure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from chalicelib.jobindex import index_definitions
from chalicelib.pipeline import MAX_RECEIVE_COUNT
from logctl.alarms import ensure_alarms
from logctl.hardening import (
    DEFAULT_RAW_LOG_DAYS,
    QUEUE_ENCRYPTION,
    Hardening,
    enable_point_in_time_recovery,
    harden_bucket,
)
from logctl.ingest_stream import StreamSettings, check_retention, ensure_stream
from logctl.stage import (
    VISIBILITY_FACTOR,
    Stage,
    StageError,
    StageLike,
    as_stage,
    client,
    load_stage,
    session_for,
)
from logctl.streammappings import (
    ON_FAILURE_RETENTION_SECONDS,
    STREAM_MAPPINGS,
    configure_stream_mappings,
    on_failure_queue,
)

WORKER_FUNCTION = "worker"


@dataclass
class Provisioned:
    bucket: str
    jobs_queue_url: str
    jobs_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    results_table: str
    ingest_stream_arn: str
    results_stream_arn: str = ""
    actions: list[str] = field(default_factory=list)


def ensure_bucket(s3: Any, name: str, region: str, actions: list[str]) -> None:
    try:
        s3.head_bucket(Bucket=name)
        return
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
        actions.append(f"created bucket {name}")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str],
                 actions: list[str]) -> tuple[str, str]:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        actions.append(f"created queue {name}")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def ensure_table(ddb: Any, name: str, actions: list[str],
                 keys: tuple[tuple[str, str], ...] = (("job_id", "HASH"),)) -> None:
    """A pay-per-request table keyed by string attributes `keys`, with TTL on expires_at."""
    try:
        ddb.describe_table(TableName=name)
    except ddb.exceptions.ResourceNotFoundException:
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}
                                  for key, _ in keys],
            KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.get_waiter("table_exists").wait(TableName=name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        actions.append(f"created table {name}")
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
        actions.append(f"enabled TTL on {name}.expires_at")


def _wait_until_active(ddb: Any, name: str, poll_seconds: float) -> None:
    """DynamoDB accepts one index change at a time, on an ACTIVE table."""
    for _ in range(int(1800 / poll_seconds)):
        table = ddb.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE"
                for index in table.get("GlobalSecondaryIndexes", [])):
            return
        time.sleep(poll_seconds)
    raise StageError(f"table {name} did not become ACTIVE within 30 minutes")


def ensure_job_indexes(ddb: Any, name: str, actions: list[str],
                       poll_seconds: float = 5.0) -> None:
    """The secondary indexes GET /jobs and `logctl results` query (chalicelib.jobindex)."""
    attributes, indexes = index_definitions()
    table = ddb.describe_table(TableName=name)["Table"]
    existing = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    for index in indexes:
        if index["IndexName"] in existing:
            continue
        _wait_until_active(ddb, name, poll_seconds)
        ddb.update_table(TableName=name, AttributeDefinitions=attributes,
                         GlobalSecondaryIndexUpdates=[{"Create": index}])
        actions.append(f"created index {name}/{index['IndexName']}")
    _wait_until_active(ddb, name, poll_seconds)


STREAM_VIEW = "NEW_AND_OLD_IMAGES"


def ensure_results_stream(ddb: Any, name: str, actions: list[str]) -> str:
    """The results table's stream (new and old images), which drives the rollups; its ARN."""
    table = ddb.describe_table(TableName=name)["Table"]
    spec = table.get("StreamSpecification") or {}
    if spec.get("StreamEnabled") and spec.get("StreamViewType") == STREAM_VIEW:
        return table["LatestStreamArn"]
    if spec.get("StreamEnabled"):
        raise StageError(f"table {name} has a {spec.get('StreamViewType')} stream; the rollups "
                         f"need {STREAM_VIEW}: disable it (or destroy the stage) and provision "
                         "again")
    ddb.update_table(TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": STREAM_VIEW})
    actions.append(f"enabled the {STREAM_VIEW} stream of {name}")
    return ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def results_stream_arn(stage: Stage) -> str:
    """The stream ARN of a provisioned stage's results table (DescribeTable LatestStreamArn)."""
    table = client(stage, "dynamodb").describe_table(TableName=stage.results_table)["Table"]
    arn = table.get("LatestStreamArn")
    if not arn or not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
        raise StageError(f"table {stage.results_table} has no stream: provision the stage")
    return arn


def ensure_stats_table(ddb: Any, name: str, actions: list[str]) -> None:
    """Rollup items for GET /stats and GET /endpoints (chalicelib.rollups), expiring by TTL."""
    ensure_table(ddb, name, actions, keys=(("series", "HASH"), ("hour", "RANGE")))


def ensure_upload_cors(s3: Any, bucket: str, origins: list[str], actions: list[str]) -> None:
    """Let the dashboard's origins PUT to presigned upload URLs (POST /uploads)."""
    if not origins:
        return
    rules = [{"AllowedOrigins": origins, "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"],
              "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}]
    try:
        if s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules:
            return
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
            raise
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    actions.append(f"bucket {bucket}: uploads allowed from {', '.join(origins)}")


@dataclass(frozen=True)
class Safety:
    """What provisioning needs beyond the stage's names: hardening, alarms, stream shards."""

    hardening: Hardening = field(default_factory=Hardening)
    alert_email: str | None = None
    stream: StreamSettings = field(default_factory=StreamSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Safety:
        days = environ.get("RAW_LOG_DAYS") or str(DEFAULT_RAW_LOG_DAYS)
        try:
            hardening = Hardening(int(days))
        except ValueError as exc:
            raise StageError(f"RAW_LOG_DAYS={days!r}: {exc}") from None
        return cls(hardening, environ.get("ALERT_EMAIL") or None,
                   StreamSettings.from_env(environ))


def secure(stage: Stage, provisioned: Provisioned, safety: Safety,
           session: boto3.session.Session) -> None:
    """Hardening and alarms (logctl.hardening, logctl.alarms) on what provision() made."""
    harden_bucket(client(stage, "s3", session), stage.bucket, safety.hardening,
                  provisioned.actions)
    enable_point_in_time_recovery(client(stage, "dynamodb", session), stage.results_table,
                                  provisioned.actions)
    ensure_alarms(client(stage, "cloudwatch", session), client(stage, "sns", session), stage,
                  safety.alert_email, provisioned.actions)


def provision(stage: StageLike, safety: Safety | None = None) -> Provisioned:
    stage = as_stage(stage)
    safety = safety or Safety.from_env(os.environ)
    check_retention(safety.hardening.raw_log_days)
    session = session_for(stage)
    s3 = client(stage, "s3", session)
    sqs = client(stage, "sqs", session)
    ddb = client(stage, "dynamodb", session)
    actions: list[str] = []

    ensure_bucket(s3, stage.bucket, stage.region, actions)
    visibility = str(VISIBILITY_FACTOR * stage.function_timeout(WORKER_FUNCTION))
    dlq_url, dlq_arn = ensure_queue(
        sqs, stage.dead_letter_queue, {"MessageRetentionPeriod": "1209600", **QUEUE_ENCRYPTION},
        actions)
    jobs_url, jobs_arn = ensure_queue(
        sqs,
        stage.jobs_queue,
        {
            "VisibilityTimeout": visibility,
            "MessageRetentionPeriod": "345600",
            **QUEUE_ENCRYPTION,
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
        },
        actions,
    )
    ensure_table(ddb, stage.results_table, actions)
    ensure_job_indexes(ddb, stage.results_table, actions, 0.1 if stage.is_local else 5.0)
    results_stream_arn = ensure_results_stream(ddb, stage.results_table, actions)
    ensure_stats_table(ddb, stage.stats_table, actions)
    ensure_upload_cors(s3, stage.bucket, stage.dashboard_origins, actions)
    ingest_stream_arn = ensure_stream(client(stage, "kinesis", session), stage, safety.stream,
                                      actions, 0.1 if stage.is_local else 5.0)
    for function in STREAM_MAPPINGS:
        ensure_queue(sqs, on_failure_queue(stage, function),
                     {"MessageRetentionPeriod": str(ON_FAILURE_RETENTION_SECONDS),
                      **QUEUE_ENCRYPTION}, actions)
    provisioned = Provisioned(stage.bucket, jobs_url, jobs_arn, dlq_url, dlq_arn,
                              stage.results_table, ingest_stream_arn, results_stream_arn,
                              actions)
    secure(stage, provisioned, safety, session)
    return provisioned


def enable_batch_item_failures(stage: Stage, function_name: str) -> list[str]:
    """Turn on ReportBatchItemFailures for the deployed worker's SQS mapping."""
    lam = client(stage, "lambda")
    sqs = client(stage, "sqs")
    url = sqs.get_queue_url(QueueName=stage.jobs_queue)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    changed: list[str] = []
    mappings = lam.list_event_source_mappings(
        EventSourceArn=queue_arn, FunctionName=function_name)["EventSourceMappings"]
    if not mappings:
        raise StageError(f"no SQS event source mapping for {function_name}: deploy first")
    for mapping in mappings:
        if "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []):
            continue
        lam.update_event_source_mapping(
            UUID=mapping["UUID"], FunctionResponseTypes=["ReportBatchItemFailures"])
        changed.append(mapping["UUID"])
    return changed


def deployed_function_name(stage: Stage) -> str:
    return stage.function_name(WORKER_FUNCTION)


def add_safety_options(parser: argparse.ArgumentParser) -> None:
    """--raw-log-days, --alert-email and --ingest-shards (provision and deploy)."""
    parser.add_argument("--raw-log-days", type=int, default=None,
                        help="days before raw uploads expire (default: RAW_LOG_DAYS, or "
                             f"{DEFAULT_RAW_LOG_DAYS}; at least 2)")
    parser.add_argument("--alert-email", default=None,
                        help="subscribe this address to the alarms (default: ALERT_EMAIL)")
    parser.add_argument("--ingest-shards", type=int, default=None,
                        help="shards of a new ingest stream (default: INGEST_SHARDS, or 1)")
def configure_mappings(stage: Stage) -> list[str]:
    """What `chalice deploy` cannot configure: one line per mapping said what was done."""
    name = deployed_function_name(stage)
    changed = enable_batch_item_failures(stage, name)
    lines = [f"{name}: ReportBatchItemFailures "
             f"{'enabled on ' + ', '.join(changed) if changed else 'already enabled'}"]
    return lines + configure_stream_mappings(client(stage, "lambda"), client(stage, "sqs"),
                                             stage)


def safety_from(args: argparse.Namespace) -> Safety:
    """The options of add_safety_options, else RAW_LOG_DAYS, ALERT_EMAIL, INGEST_SHARDS."""
    safety = Safety.from_env(os.environ)
    if args.raw_log_days is not None:
        try:
            safety = dataclasses.replace(safety, hardening=Hardening(args.raw_log_days))
        except ValueError as exc:
            raise StageError(f"--raw-log-days: {exc}") from None
    if args.alert_email:
        safety = dataclasses.replace(safety, alert_email=args.alert_email)
    if args.ingest_shards is not None:
        try:
            safety = dataclasses.replace(safety, stream=StreamSettings(args.ingest_shards))
        except ValueError as exc:
            raise StageError(f"--ingest-shards: {exc}") from None
    return safety


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.provision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="stage in .chalice/config.json")
    parser.add_argument("--endpoint-url", default=None,
                        help="AWS endpoint (default: AWS_ENDPOINT_URL; 127.0.0.1:4566 for local)")
    add_safety_options(parser)
    parser.add_argument("--post-deploy", action="store_true",
                        help="configure the deployed functions' event source mappings")
    args = parser.parse_args(argv)
    try:
        stage = load_stage(args.stage, endpoint_url=args.endpoint_url)
        if args.post_deploy:
            for line in configure_mappings(stage):
                print(line)
            return 0
        result = provision(stage, safety_from(args))
    except StageError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - report any AWS failure plainly
        print(f"provision: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for action in result.actions or ["nothing to do: every resource exists"]:
        print(f"provision[{stage.name}]: {action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
