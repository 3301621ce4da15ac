"""Metrics and structured logs of the handlers, through AWS Lambda Powertools.

Metrics are CloudWatch Embedded Metric Format (EMF) lines on stdout: CloudWatch Logs
turns them into metrics, so no PutMetricData call (or permission) is needed. Namespace
`LogPipeline`, dimensions `service` and `stage`:

    trigger, one line per invocation     JobsQueued, JobsRejected, JobsDuplicate
    worker, one line per finished file   FilesCompleted, or FilesFailed with dimension
                                         `reason` (too_large, not_found, ...); Lines,
                                         MalformedLines, ErrorRecords (level ERROR),
                                         ProcessingTime and
                                         UploadToResultLag (ms); the file's job_id rides
                                         along as metadata
    ingest, one line per Kinesis batch   StreamRecordsRead, StreamObjectsWritten,
                                         StreamDuplicatesSkipped (records already in an
                                         object: a batch delivered again)

Logs are JSON lines from Powertools' Logger: `message` names the event (job_queued,
job_done, job_error, ...) and `job_id` (or `message_id`) says which job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from chalicelib.core.results import epoch
from chalicelib.core.schema import Status

NAMESPACE = "LogPipeline"
SERVICE = "log-pipeline"
STAGE_VARIABLE = "STAGE"
UNKNOWN_STAGE = "unknown"
JOB_COUNTS = {"queued": "JobsQueued", "rejected": "JobsRejected", "duplicate": "JobsDuplicate"}


def reason_code(failure_reason: str | None) -> str:
    """`too_large` from `too_large: 2 GB exceeds ...`."""
    return (failure_reason or "unknown").split(":", 1)[0].strip() or "unknown"


class Telemetry:
    """What the handlers report. Metrics are per instance (EphemeralMetrics), so each line
    holds exactly what one call added."""

    def __init__(self, stage: str = UNKNOWN_STAGE, *, namespace: str = NAMESPACE,
                 service: str = SERVICE, logger: Logger | None = None) -> None:
        self.stage = stage
        self.namespace = namespace
        self.service = service
        self.logger = logger or Logger(service=service)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Telemetry:
        return cls(env.get(STAGE_VARIABLE) or UNKNOWN_STAGE)

    def event(self, name: str, *, level: str = "info", **fields: Any) -> None:
        """One structured log line; `name` is its message."""
        getattr(self.logger, level)(name, **fields)

    def _metrics(self, **dimensions: str) -> EphemeralMetrics:
        return EphemeralMetrics(namespace=self.namespace, service=self.service,
                                default_dimensions={"stage": self.stage, **dimensions})

    def jobs_created(self, counts: Mapping[str, int]) -> None:
        """The trigger's outcome for one S3 event: jobs queued, rejected, duplicate."""
        metrics = self._metrics()
        for outcome, name in JOB_COUNTS.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(outcome, 0))
        metrics.flush_metrics()

    def stream_batch(self, records: int, objects: int, duplicates: int) -> None:
        """The ingest handler's outcome for one Kinesis batch."""
        metrics = self._metrics()
        metrics.add_metric(name="StreamRecordsRead", unit=MetricUnit.Count, value=records)
        metrics.add_metric(name="StreamObjectsWritten", unit=MetricUnit.Count, value=objects)
        metrics.add_metric(name="StreamDuplicatesSkipped", unit=MetricUnit.Count,
                           value=duplicates)
        metrics.flush_metrics()

    def file_finished(self, record: Mapping[str, Any]) -> None:
        """One EMF line for a file the worker finished (its final record)."""
        completed = record.get("status") == Status.COMPLETED
        metrics = (self._metrics() if completed
                   else self._metrics(reason=reason_code(record.get("failure_reason"))))
        metrics.add_metric(name="FilesCompleted" if completed else "FilesFailed",
                           unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Lines", unit=MetricUnit.Count,
                           value=record.get("line_count") or 0)
        metrics.add_metric(name="MalformedLines", unit=MetricUnit.Count,
                           value=record.get("malformed_count") or 0)
        metrics.add_metric(name="ErrorRecords", unit=MetricUnit.Count,
                           value=record.get("error_count") or 0)
        metrics.add_metric(name="ProcessingTime", unit=MetricUnit.Milliseconds,
                           value=record.get("processing_time_ms") or 0)
        lag = upload_to_result_ms(record)
        if lag is not None:
            metrics.add_metric(name="UploadToResultLag", unit=MetricUnit.Milliseconds,
                               value=lag)
        metrics.add_metadata(key="job_id", value=str(record.get("job_id")))
        metrics.flush_metrics()


def upload_to_result_ms(record: Mapping[str, Any]) -> float | None:
    """From the upload (S3's eventTime) to the final record; None when either is unknown."""
    uploaded, completed = record.get("uploaded_at"), record.get("completed_at")
    if not uploaded or not completed:
        return None
    try:
        return max(0.0, round((epoch(completed) - epoch(uploaded)) * 1000, 3))
    except ValueError:
        return None
