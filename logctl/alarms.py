"""Alarms that reach a person: one SNS topic per stage, alarms that notify it.

    DLQ not empty          a job failed every retry (AWS/SQS, dead-letter queue)
    worker errors          errors in 2 of the last 3 five-minute periods (one retried job
                           does not page; one that keeps failing ends in the DLQ alarm)
    worker throttles       any throttled worker invocation in five minutes
    trigger errors         any failed trigger invocation in five minutes (S3 retries twice,
                           then drops the event)
    jobs queue age         the oldest job waited more than 30 minutes
    rollups errors         the rollups handler failed in 2 of the last 3 five-minute periods
                           (its batch is retried until it succeeds: the rollups lag behind)
    rollups iterator age   the newest stream record it handled was over 5 minutes old
    log error rate         ERROR records over valid records above 10 % in 2 of the last 3
                           five-minute periods (metric math over the worker's EMF counts:
                           ErrorRecords / (Lines - MalformedLines)): did errors rise after
                           the deploy
    ingest errors          errors in 2 of the last 3 five-minute periods (a failed batch is
                           retried, and holds its shard back until it succeeds)
    ingest iterator age    the ingest handler has lagged more than 15 minutes behind the
                           stream for 15 minutes (records expire after 24 hours)

An e-mail address (ALERT_EMAIL, or --alert-email) is subscribed to the topic; AWS then
sends a confirmation mail that must be accepted before alarms arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.telemetry import NAMESPACE, SERVICE
from logctl.stage import Stage

QUEUE_AGE_LIMIT_SECONDS = 1800
ITERATOR_AGE_LIMIT_MS = 300_000
LOG_ERROR_RATE_LIMIT = 0.10
WORKER = "worker"
TRIGGER = "trigger"
ROLLUPS = "rollups"
INGEST = "ingest"
INGEST_ITERATOR_AGE_LIMIT_SECONDS = 900


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    description: str
    namespace: str
    metric: str
    dimension: tuple[str, str]
    statistic: str
    period: int
    threshold: float
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    expression: str | None = None  # metric math over the metrics named in it (EMF counts)


def topic_name(stage: Stage) -> str:
    return f"{stage.app_name}-{stage.name}-alerts"


def dlq_alarm_name(stage: Stage) -> str:
    return f"{stage.dead_letter_queue}-not-empty"


def alarm_specs(stage: Stage) -> list[AlarmSpec]:
    worker, trigger = stage.function_name(WORKER), stage.function_name(TRIGGER)
    rollups = stage.function_name(ROLLUPS)
    ingest = stage.function_name(INGEST)
    return [
        AlarmSpec(dlq_alarm_name(stage),
                  "Jobs failed every retry and wait in the dead-letter queue "
                  "(python -m logctl dlq show / redrive).",
                  "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                  ("QueueName", stage.dead_letter_queue), "Maximum", 60, 0),
        AlarmSpec(f"{worker}-errors", "The worker keeps failing invocations.",
                  "AWS/Lambda", "Errors", ("FunctionName", worker), "Sum", 300, 0,
                  evaluation_periods=3, datapoints_to_alarm=2),
        AlarmSpec(f"{worker}-throttles", "Worker invocations were throttled.",
                  "AWS/Lambda", "Throttles", ("FunctionName", worker), "Sum", 300, 0),
        AlarmSpec(f"{trigger}-errors", "The trigger failed; uploads may not become jobs.",
                  "AWS/Lambda", "Errors", ("FunctionName", trigger), "Sum", 300, 0),
        AlarmSpec(f"{stage.jobs_queue}-oldest-age",
                  f"A job waited more than {QUEUE_AGE_LIMIT_SECONDS // 60} minutes in the "
                  "jobs queue.",
                  "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", stage.jobs_queue),
                  "Maximum", 300, QUEUE_AGE_LIMIT_SECONDS),
        AlarmSpec(f"{rollups}-errors", "The rollups handler keeps failing: /stats and "
                  "/endpoints lag behind until its batch succeeds.",
                  "AWS/Lambda", "Errors", ("FunctionName", rollups), "Sum", 300, 0,
                  evaluation_periods=3, datapoints_to_alarm=2),
        AlarmSpec(f"{rollups}-iterator-age",
                  f"The rollups handler is over {ITERATOR_AGE_LIMIT_MS // 60000} minutes behind "
                  "the results table's stream (records older than 24 h are lost to it).",
                  "AWS/Lambda", "IteratorAge", ("FunctionName", rollups), "Maximum", 300,
                  ITERATOR_AGE_LIMIT_MS),
        AlarmSpec(f"{stage.app_name}-{stage.name}-log-error-rate",
                  f"More than {LOG_ERROR_RATE_LIMIT:.0%} of the valid log records are ERROR.",
                  NAMESPACE, "ErrorRecords", ("stage", stage.name), "Sum", 300,
                  LOG_ERROR_RATE_LIMIT, evaluation_periods=3, datapoints_to_alarm=2,
                  expression="IF(Lines - MalformedLines > 0, "
                             "ErrorRecords / (Lines - MalformedLines), 0)"),
        AlarmSpec(f"{ingest}-errors",
                  "The ingest handler keeps failing: its shard's events wait in the stream.",
                  "AWS/Lambda", "Errors", ("FunctionName", ingest), "Sum", 300, 0,
                  evaluation_periods=3, datapoints_to_alarm=2),
        AlarmSpec(f"{ingest}-iterator-age",
                  f"The ingest handler lags more than {INGEST_ITERATOR_AGE_LIMIT_SECONDS // 60} "
                  "minutes behind the stream; records older than 24 h are dropped by Kinesis.",
                  "AWS/Lambda", "IteratorAge", ("FunctionName", ingest), "Maximum", 300,
                  INGEST_ITERATOR_AGE_LIMIT_SECONDS * 1000, evaluation_periods=3,
                  datapoints_to_alarm=3),
    ]


def _math(spec: AlarmSpec) -> list[dict[str, Any]]:
    """The metric-math query of an alarm over the worker's EMF counts (stage, service)."""
    dimensions = [{"Name": spec.dimension[0], "Value": spec.dimension[1]},
                  {"Name": "service", "Value": SERVICE}]
    return [*({"Id": name, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": spec.namespace, "MetricName": name, "Dimensions": dimensions},
        "Period": spec.period, "Stat": spec.statistic}}
        for name in ("ErrorRecords", "Lines", "MalformedLines")),
        {"Id": "rate", "Expression": spec.expression, "Label": "error rate",
         "ReturnData": True}]


def ensure_topic(sns: Any, stage: Stage, alert_email: str | None, actions: list[str]) -> str:
    """The stage's alert topic (created if missing), with the e-mail subscribed once."""
    arn = sns.create_topic(Name=topic_name(stage))["TopicArn"]
    if alert_email:
        subscribed = {s["Endpoint"] for s in sns.list_subscriptions_by_topic(
            TopicArn=arn)["Subscriptions"] if s["Protocol"] == "email"}
        if alert_email not in subscribed:
            sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=alert_email)
            actions.append(f"subscribed {alert_email} to {topic_name(stage)} "
                           "(confirm the mail AWS sends)")
    return arn


def ensure_alarms(cloudwatch: Any, sns: Any, stage: Stage, alert_email: str | None,
                  actions: list[str]) -> str:
    """Create or update every alarm with the topic as action; returns the topic ARN."""
    topic = ensure_topic(sns, stage, alert_email, actions)
    specs = alarm_specs(stage)
    existing = {a["AlarmName"] for a in cloudwatch.describe_alarms(
        AlarmNames=[s.name for s in specs])["MetricAlarms"]}
    for spec in specs:
        name, value = spec.dimension
        metric: dict[str, Any] = {"Metrics": _math(spec)} if spec.expression else {
            "Namespace": spec.namespace, "MetricName": spec.metric,
            "Dimensions": [{"Name": name, "Value": value}], "Statistic": spec.statistic,
            "Period": spec.period}
        cloudwatch.put_metric_alarm(
            AlarmName=spec.name, AlarmDescription=spec.description, **metric,
            EvaluationPeriods=spec.evaluation_periods,
            DatapointsToAlarm=spec.datapoints_to_alarm, Threshold=spec.threshold,
            ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
            AlarmActions=[topic], OKActions=[topic])
    if existing != {s.name for s in specs}:
        actions.append(f"{len(specs)} alarms notify SNS topic {topic_name(stage)}")
    return topic
