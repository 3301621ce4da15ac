"""Connect the app's event sources to queues the runtime polls.

An S3 source gets a queue of its own (`__runtime-<function>-s3`, plus a queue for events
that failed every attempt) and a queue notification on the bucket with the decorator's
events, prefix and suffix. Notifications already on the bucket (e.g. the Lambda ones
`chalice deploy` adds) are kept.
"""

from __future__ import annotations

import json
from typing import Any

from localruntime.sources.app import S3Source, SqsSource
from localruntime.sources.pollers import ASYNC_MAX_ATTEMPTS, QueueRef

NOTIFICATION_PREFIX = "localruntime-"
FAILED_EVENT_RETENTION_SECONDS = 1_209_600


def s3_queue_name(function: str) -> str:
    return f"__runtime-{function}-s3"


def notification_id(function: str) -> str:
    return f"{NOTIFICATION_PREFIX}{function}"


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url,
                                    AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> QueueRef:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return QueueRef(url, _queue_arn(sqs, url))


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)


def _current_notifications(s3: Any, bucket: str) -> dict[str, Any]:
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def connect_s3_source(s3: Any, sqs: Any, source: S3Source, timeout_seconds: float,
                      region: str) -> QueueRef:
    failed = ensure_queue(sqs, s3_queue_name(source.function) + "-failed",
                          {"MessageRetentionPeriod": str(FAILED_EVENT_RETENTION_SECONDS)})
    queue = ensure_queue(sqs, s3_queue_name(source.function), {
        "VisibilityTimeout": str(int(timeout_seconds) + 5),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": failed.arn,
                                     "maxReceiveCount": str(ASYNC_MAX_ATTEMPTS)}),
    })
    _ensure_bucket(s3, source.bucket, region)
    config = _current_notifications(s3, source.bucket)
    ours = notification_id(source.function)
    entry: dict[str, Any] = {"Id": ours, "QueueArn": queue.arn, "Events": list(source.events)}
    rules = [{"Name": name, "Value": value}
             for name, value in (("Prefix", source.prefix), ("Suffix", source.suffix)) if value]
    if rules:
        entry["Filter"] = {"Key": {"FilterRules": rules}}
    config["QueueConfigurations"] = [
        *(c for c in config.get("QueueConfigurations", []) if c.get("Id") != ours), entry]
    s3.put_bucket_notification_configuration(Bucket=source.bucket,
                                             NotificationConfiguration=config)
    return queue


def s3_source_connected(s3: Any, source: S3Source) -> bool:
    """Whether the bucket still notifies the source's queue (raises if there is no bucket)."""
    config = _current_notifications(s3, source.bucket)
    ours = notification_id(source.function)
    return any(c.get("Id") == ours for c in config.get("QueueConfigurations", []))


def disconnect_s3_source(s3: Any, source: S3Source) -> None:
    config = _current_notifications(s3, source.bucket)
    ours = notification_id(source.function)
    kept = [c for c in config.get("QueueConfigurations", []) if c.get("Id") != ours]
    if kept:
        config["QueueConfigurations"] = kept
    else:
        config.pop("QueueConfigurations", None)
    s3.put_bucket_notification_configuration(Bucket=source.bucket,
                                             NotificationConfiguration=config)


def resolve_sqs_source(sqs: Any, source: SqsSource) -> QueueRef:
    """The queue an `on_sqs_message` handler consumes (by name, or by ARN)."""
    name = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return QueueRef(url, _queue_arn(sqs, url))
