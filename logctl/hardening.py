"""Safety settings provisioning puts on a stage's bucket, queues and table.

Every stage gets the same settings, so the local runtime runs with what AWS runs:

- the bucket blocks public access, encrypts by default (SSE-S3), refuses requests
  without TLS, keeps versions, and expires raw uploads under `logs/` after
  `raw_log_days` (default 30); incomplete multipart uploads are aborted after a day;
- both queues use SQS-managed encryption (SSE-SQS);
- the results table has point-in-time recovery.

Versioning is on because a job is one object version: the trigger derives the job id
from the event's versionId, and the worker reads exactly that version, so a file
overwritten while its job waits is a second job rather than a silent swap of the bytes
the first job reads; and an identical re-upload is processed again, as the user asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from logctl.policy import LOG_PREFIX

DEFAULT_RAW_LOG_DAYS = 30
NONCURRENT_VERSION_DAYS = 1
INCOMPLETE_UPLOAD_DAYS = 1
QUEUE_ENCRYPTION = {"SqsManagedSseEnabled": "true"}
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
EXPIRE_RULE_ID = "expire-raw-uploads"
MULTIPART_RULE_ID = "abort-incomplete-uploads"


@dataclass(frozen=True)
class Hardening:
    raw_log_days: int = DEFAULT_RAW_LOG_DAYS

    def __post_init__(self) -> None:
        if self.raw_log_days < 1:
            raise ValueError(f"raw log retention must be at least 1 day, got {self.raw_log_days}")


def tls_only_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyRequestsWithoutTLS",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def lifecycle_rules(raw_log_days: int) -> list[dict[str, Any]]:
    return [
        {
            "ID": EXPIRE_RULE_ID,
            "Filter": {"Prefix": LOG_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": raw_log_days},
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_DAYS},
        },
        {
            "ID": MULTIPART_RULE_ID,
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": INCOMPLETE_UPLOAD_DAYS},
        },
    ]


def harden_bucket(s3: Any, bucket: str, settings: Hardening, actions: list[str]) -> None:
    """Idempotent: each call puts the same configuration; reported the first time."""
    first = s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled"
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": lifecycle_rules(settings.raw_log_days)})
    if first:
        actions.append(f"bucket {bucket}: public access blocked, SSE-S3, TLS only, versioned, "
                       f"raw uploads expire after {settings.raw_log_days} days")


def enable_point_in_time_recovery(ddb: Any, table: str, actions: list[str]) -> None:
    backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    status = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    if status == "ENABLED":
        return
    ddb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    actions.append(f"point-in-time recovery on {table}")
