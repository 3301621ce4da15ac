"""The stream event source mappings' settings that `chalice deploy` cannot make, per function.

Chalice's `on_dynamodb_record` and `on_kinesis_record` set batch size, batching window and
starting position only. Everything else Lambda offers for a stream mapping is set here after
the deploy (`logctl provision --post-deploy`, `logctl deploy`) with
UpdateEventSourceMapping, from the one table below; the local runtime reads the mapping
back. Each function listed gets an on-failure queue, provisioned with the stage
(`on_failure_queue`), that receives the metadata of every batch Lambda gives up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logctl.stage import Stage

REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
STREAM_SERVICES = ("dynamodb", "kinesis")
ON_FAILURE_RETENTION_SECONDS = 1_209_600


@dataclass(frozen=True)
class StreamMappingSettings:
    """-1 for retries and age: never give up (records leave only with the stream's
    retention)."""

    bisect: bool
    maximum_retry_attempts: int
    maximum_record_age_seconds: int = -1
    report_batch_item_failures: bool = False


STREAM_MAPPINGS: dict[str, StreamMappingSettings] = {
    # A skipped change is a count lost for good: never give up; bisect isolates a bad one.
    "rollups": StreamMappingSettings(bisect=True, maximum_retry_attempts=-1),
    # Objects are written conditionally, so a retried batch is harmless, and a skipped one is
    # events never counted: never give up (the iterator-age alarm says when a shard is stuck).
    # The handler fails only when S3 does, for the whole batch: bisecting would not help. It
    # answers {"batchItemFailures": []} when it succeeds, so partial responses may be on.
    "ingest": StreamMappingSettings(bisect=False, maximum_retry_attempts=-1,
                                    report_batch_item_failures=True),
}


def on_failure_queue(stage: Stage, function: str) -> str:
    return f"{stage.app_name}-{stage.name}-{function}-failed"


def mapping_update(settings: StreamMappingSettings, on_failure_arn: str) -> dict[str, Any]:
    """The UpdateEventSourceMapping fields for a function's stream mapping."""
    return {
        "BisectBatchOnFunctionError": settings.bisect,
        "MaximumRetryAttempts": settings.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": settings.maximum_record_age_seconds,
        "DestinationConfig": {"OnFailure": {"Destination": on_failure_arn}},
        "FunctionResponseTypes": ([REPORT_BATCH_ITEM_FAILURES]
                                  if settings.report_batch_item_failures else []),
    }


def _differs(mapping: dict[str, Any], update: dict[str, Any]) -> bool:
    current = {
        "BisectBatchOnFunctionError": bool(mapping.get("BisectBatchOnFunctionError")),
        "MaximumRetryAttempts": mapping.get("MaximumRetryAttempts", -1),
        "MaximumRecordAgeInSeconds": mapping.get("MaximumRecordAgeInSeconds", -1),
        "DestinationConfig": {"OnFailure": {"Destination": (
            (mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination")}},
        "FunctionResponseTypes": list(mapping.get("FunctionResponseTypes") or []),
    }
    return current != update


def configure_stream_mappings(lam: Any, sqs: Any, stage: Stage) -> list[str]:
    """Apply STREAM_MAPPINGS to the deployed functions' stream mappings; one line per
    function saying what was done (a function not deployed is skipped, and said so)."""
    lines = []
    for function, settings in STREAM_MAPPINGS.items():
        name = stage.function_name(function)
        url = sqs.get_queue_url(QueueName=on_failure_queue(stage, function))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        update = mapping_update(settings, queue_arn)
        mappings = [m for m in lam.list_event_source_mappings(
            FunctionName=name)["EventSourceMappings"]
            if m["EventSourceArn"].split(":")[2] in STREAM_SERVICES]
        if not mappings:
            lines.append(f"{name}: no stream event source mapping (not deployed): skipped")
            continue
        changed = [m["UUID"] for m in mappings if _differs(m, update)]
        for uuid in changed:
            lam.update_event_source_mapping(UUID=uuid, **update)
        lines.append(f"{name}: stream mapping settings "
                     f"{'set on ' + ', '.join(changed) if changed else 'already set'}")
    return lines
