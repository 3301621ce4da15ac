"""Tear a stage down: `chalice delete`, then everything provisioning created.

    python -m logctl.destroy --stage local [--yes] [--purge]   # in the running local runtime
    python -m logctl.destroy --stage aws [--yes] [--purge]     # in AWS; needs credentials

Deleted: the functions, their role and triggers (`chalice delete`), their log groups,
the alarms and the SNS topic with its subscriptions, the jobs queue and its dead-letter
queue, the stream mappings' on-failure queues, the results and stats tables, the ingest
stream (with any events not yet written) and the bucket. A bucket that still holds uploads is
kept, and nothing is deleted, unless --purge (every object version goes). Asks first unless
--yes;
running it again when nothing is left does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from logctl.alarms import alarm_specs, topic_name
from logctl.cli import ENDPOINT_HELP, STAGE_HELP, LogctlError, run
from logctl.deploy import DeployError, run_chalice
from logctl.stage import (
    ENDPOINT_FILE,
    LOCAL_STAGE,
    PROJECT_ROOT,
    Stage,
    client,
    serving_runtime,
    session_for,
)
from logctl.streammappings import STREAM_MAPPINGS, on_failure_queue
from logctl.target import Target, TargetError, resolve

MISSING = {"NoSuchBucket", "404", "NotFound", "ResourceNotFoundException",
           "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NotFoundException"}
FUNCTIONS = ("trigger", "worker", "ingest")


class DestroyRefused(LogctlError):
    """Deleting would lose data, or was not confirmed; nothing was deleted (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=2)


def _existing(names: tuple[str, ...], probe: Callable[[str], Any]) -> list[str]:
    """The names whose probe finds the resource; a missing one is skipped, other errors raise."""
    found = []
    for name in names:
        try:
            probe(name)
        except ClientError as exc:
            if _code(exc) not in MISSING:
                raise
            continue
        found.append(name)
    return found


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class Plan:
    """What exists now, to be deleted."""

    stage: Stage
    deployed_state: Path
    bucket_objects: int | None
    queues: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    topic_arn: str | None = None
    alarms: list[str] = field(default_factory=list)
    log_groups: list[str] = field(default_factory=list)

    @property
    def deployed(self) -> bool:
        """Whether Chalice's state for the stage lists resources it deployed."""
        try:
            return bool(json.loads(self.deployed_state.read_text()).get("resources"))
        except (OSError, ValueError, AttributeError):
            return False

    def lines(self) -> list[str]:
        found = []
        if self.deployed:
            found.append(f"the Chalice deployment ({self.deployed_state.name}: functions, "
                         "role, bucket notification, SQS and Kinesis mappings)")
        found += [f"log group {name}" for name in self.log_groups]
        found += [f"alarm {name}" for name in self.alarms]
        if self.topic_arn:
            found.append(f"SNS topic {self.topic_arn} and its subscriptions")
        found += [f"queue {name}" for name in self.queues]
        found += [f"table {name}" for name in self.tables]
        found += [f"Kinesis stream {name} (events not yet written to the bucket are lost)"
                  for name in self.streams]
        if self.bucket_objects is not None:
            found.append(f"bucket {self.stage.bucket} ({self.bucket_objects} object versions)")
        return found


def _bucket_objects(s3: Any, bucket: str) -> int | None:
    """Object versions and delete markers in the bucket; None when there is no bucket."""
    try:
        count = 0
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            count += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        return count
    except ClientError as exc:
        if _code(exc) in MISSING:
            return None
        raise


def survey(target: Target) -> Plan:
    stage, session = target.stage, session_for(target.stage)
    s3, sqs = client(stage, "s3", session), client(stage, "sqs", session)
    ddb, sns = client(stage, "dynamodb", session), client(stage, "sns", session)
    cloudwatch, logs = client(stage, "cloudwatch", session), client(stage, "logs", session)
    plan = Plan(stage, target.project / ".chalice" / "deployed" / f"{stage.name}.json",
                _bucket_objects(s3, stage.bucket))
    failure_queues = tuple(on_failure_queue(stage, f) for f in STREAM_MAPPINGS)
    plan.queues += _existing((stage.jobs_queue, stage.dead_letter_queue, *failure_queues),
                             lambda name: sqs.get_queue_url(QueueName=name))
    plan.tables += _existing((stage.results_table, stage.stats_table),
                             lambda name: ddb.describe_table(TableName=name))
    kinesis = client(stage, "kinesis", session)
    plan.streams += _existing((stage.ingest_stream,),
                              lambda name: kinesis.describe_stream_summary(StreamName=name))
    wanted = topic_name(stage)
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == wanted:
                plan.topic_arn = topic["TopicArn"]
    names = [spec.name for spec in alarm_specs(stage)]
    plan.alarms = [a["AlarmName"] for a in cloudwatch.describe_alarms(
        AlarmNames=names)["MetricAlarms"]]
    for fn in FUNCTIONS:
        prefix = f"/aws/lambda/{stage.function_name(fn)}"
        groups = logs.describe_log_groups(logGroupNamePrefix=prefix).get("logGroups", [])
        plan.log_groups += [g["logGroupName"] for g in groups if g["logGroupName"] == prefix]
    return plan


def _purge_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        entries = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(entries), 1000):
            s3.delete_objects(Bucket=bucket,
                              Delete={"Objects": entries[start:start + 1000], "Quiet": True})


def execute(target: Target, plan: Plan, purge: bool) -> list[str]:
    """Delete what the plan found, Chalice's resources first; returns what was done."""
    stage, session = target.stage, session_for(target.stage)
    done: list[str] = []
    if plan.deployed:
        run_chalice(target, "delete")
        done.append("chalice delete")
    logs = client(stage, "logs", session)
    for group in plan.log_groups:
        logs.delete_log_group(logGroupName=group)
        done.append(f"deleted log group {group}")
    if plan.alarms:
        client(stage, "cloudwatch", session).delete_alarms(AlarmNames=plan.alarms)
        done += [f"deleted alarm {name}" for name in plan.alarms]
    if plan.topic_arn:
        sns = client(stage, "sns", session)
        for sub in sns.list_subscriptions_by_topic(TopicArn=plan.topic_arn)["Subscriptions"]:
            if sub["SubscriptionArn"].startswith("arn:"):
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
        sns.delete_topic(TopicArn=plan.topic_arn)
        done.append(f"deleted SNS topic {plan.topic_arn}")
    sqs = client(stage, "sqs", session)
    for name in plan.queues:
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
        done.append(f"deleted queue {name}")
    ddb = client(stage, "dynamodb", session)
    for name in plan.tables:
        ddb.delete_table(TableName=name)
        ddb.get_waiter("table_not_exists").wait(TableName=name,
                                                WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        done.append(f"deleted table {name}")
    kinesis = client(stage, "kinesis", session)
    for name in plan.streams:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        kinesis.get_waiter("stream_not_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        done.append(f"deleted Kinesis stream {name}")
    if plan.bucket_objects is not None:
        s3 = client(stage, "s3", session)
        if plan.bucket_objects and purge:
            _purge_bucket(s3, stage.bucket)
            done.append(f"purged {plan.bucket_objects} object versions from {stage.bucket}")
        s3.delete_bucket(Bucket=stage.bucket)
        done.append(f"deleted bucket {stage.bucket}")
    return done


def confirm(stage: Stage, lines: list[str], answer: str | None) -> None:
    print(f"destroy: stage {stage.name} "
          f"({stage.endpoint_url or 'AWS'}) will lose:\n  " + "\n  ".join(lines), flush=True)
    if answer is None:
        if not sys.stdin.isatty():
            raise DestroyRefused("not confirmed: run it in a terminal, or pass --yes")
        answer = input(f"type the stage name ({stage.name}) to delete all of it: ").strip()
    if answer != stage.name:
        raise DestroyRefused("not confirmed; nothing was deleted")


def destroy(target: Target, *, yes: bool, purge: bool) -> list[str]:
    plan = survey(target)
    lines = plan.lines()
    if not lines:
        return []
    if plan.bucket_objects and not purge:
        raise DestroyRefused(
            f"bucket {target.stage.bucket} still holds {plan.bucket_objects} object versions "
            "(uploaded logs): copy what you need, then run again with --purge (make "
            "destroy-... PURGE=1); nothing was deleted")
    confirm(target.stage, lines, target.stage.name if yes else None)
    return execute(target, plan, purge)


def beside_runtime(target: Target) -> str:
    """What a running local runtime does once its stage is gone."""
    stage = target.stage
    runtime = serving_runtime(stage, target.project / ENDPOINT_FILE.name)
    who = (f"the local runtime at {stage.endpoint_url} (pid {runtime.pid})"
           if runtime is not None else f"a local runtime at {stage.endpoint_url}, if any,")
    return (f"{who} keeps running without the stage and waits for it: `make deploy-local` "
            "brings the stage back and the runtime reconnects; Ctrl-C in its terminal stops it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.destroy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=LOCAL_STAGE, help=STAGE_HELP)
    parser.add_argument("--endpoint-url", default=None, help=ENDPOINT_HELP)
    parser.add_argument("--port", type=int, default=None,
                        help="the local runtime's port on 127.0.0.1 (stage local; the same as "
                        "--endpoint-url http://127.0.0.1:PORT)")
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT,
                        help="directory with app.py and .chalice/ (default: this project)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--purge", action="store_true",
                        help="delete the uploaded logs (every object version) too")
    args = parser.parse_args(argv)
    endpoint = args.endpoint_url or (f"http://127.0.0.1:{args.port}" if args.port else None)

    def body() -> int:
        target = resolve(args.stage, args.project, endpoint, "destroy")
        done = destroy(target, yes=args.yes, purge=args.purge)
        for line in done or [f"nothing to delete: stage {args.stage} has no resources left"]:
            print(f"destroy: {line}", flush=True)
        if done and target.stage.name == LOCAL_STAGE:
            print(f"destroy: {beside_runtime(target)}", flush=True)
        return 0

    return run("destroy", body, (DeployError, TargetError, OSError, ValueError, EOFError))


if __name__ == "__main__":
    sys.exit(main())
