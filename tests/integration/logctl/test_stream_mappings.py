"""Post-deploy sets the stream mappings' settings from logctl's one table, and the local
runtime reads them back as Lambda would."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from localruntime.log import Console
from localruntime.sources.mapping import StreamMappingReader
from localruntime.sources.streams import StreamOptions
from logctl.stage import Stage, client
from logctl.streammappings import (
    STREAM_MAPPINGS,
    configure_stream_mappings,
    on_failure_queue,
)


def deploy_function(stage: Stage, function: str) -> str:
    iam, lam = client(stage, "iam"), client(stage, "lambda")
    role = iam.create_role(RoleName=f"{function}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]
    }))["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    name = stage.function_name(function)
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                        Handler="app.handler", Code={"ZipFile": package.getvalue()})
    return name


def queue_arn(sqs: Any, name: str) -> str:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"])


def test_post_deploy_sets_the_table_and_the_runtime_reads_it_back(stage: Stage) -> None:
    # GIVEN the stage provisioned (with its on-failure queues) and `ingest` deployed on a
    # Kinesis stream the way `chalice deploy` maps it: batch size and position only
    lam, sqs, kinesis = (client(stage, s) for s in ("lambda", "sqs", "kinesis"))
    kinesis.create_stream(StreamName="events", ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName="events")[
        "StreamDescriptionSummary"]["StreamARN"]
    name = deploy_function(stage, "ingest")
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=name,
                                    BatchSize=500, StartingPosition="TRIM_HORIZON")
    out = io.StringIO()
    reader = StreamMappingReader(lam, name, lambda: stream_arn, StreamOptions(batch_size=500),
                                 Console(out, status_line=False), refresh=0)
    assert reader.options() == StreamOptions(batch_size=500)

    # WHEN post-deploy runs, twice
    lines = configure_stream_mappings(lam, sqs, stage)
    again = configure_stream_mappings(lam, sqs, stage)

    # THEN the deployed mapping has the table's settings; undeployed functions are skipped
    assert any(line.startswith(f"{name}: stream mapping settings set on") for line in lines)
    assert f"{name}: stream mapping settings already set" in again
    assert any("rollups" in line and "skipped" in line for line in lines)
    wanted = STREAM_MAPPINGS["ingest"]
    assert reader.options() == StreamOptions(
        batch_size=500, bisect=wanted.bisect,
        maximum_retry_attempts=wanted.maximum_retry_attempts,
        maximum_record_age_seconds=wanted.maximum_record_age_seconds,
        on_failure=queue_arn(sqs, on_failure_queue(stage, "ingest")),
        report_item_failures=wanted.report_batch_item_failures)
    assert "ReportBatchItemFailures on" in out.getvalue()


def test_every_function_in_the_table_has_its_queue_with_the_stage(stage: Stage) -> None:
    sqs = client(stage, "sqs")
    for function in STREAM_MAPPINGS:
        url = sqs.get_queue_url(QueueName=on_failure_queue(stage, function))["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"]
        assert attributes["MessageRetentionPeriod"] == "1209600"
