"""The handlers' IAM policy of each stage, generated from the names in `.chalice/config.json`.

    python -m logctl.policy            # rewrite .chalice/policy-<stage>.json for every stage
    python -m logctl.policy --check    # exit 1 if a committed policy file is out of date

A stage's bucket, queue and table names are set once, in the stage's environment
variables in `.chalice/config.json`; the policy follows from them. `make deploy-aws`
regenerates the file before `chalice deploy` reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.jobindex import BY_DAY, BY_STATUS
from logctl.stage import CONFIG_PATH, Stage, StageError, load_stage, read_config
from logctl.streammappings import STREAM_MAPPINGS, on_failure_queue

# The calls the handlers make (tests/integration/test_iam_policy.py proves the list covers
# them, and the SQS event source mapping's own calls), by resource.
OBJECT_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
# The API presigns upload URLs (POST /uploads); ingest writes objects under logs/stream/.
UPLOAD_ACTIONS = ("s3:PutObject",)
# Without ListBucket, S3 answers a GetObject of a missing key with 403 AccessDenied, not 404;
# ingest lists an hour's objects of a shard to find which records are written already.
BUCKET_ACTIONS = ("s3:ListBucket",)
QUEUE_ACTIONS = ("sqs:GetQueueUrl", "sqs:SendMessage", "sqs:ReceiveMessage",
                 "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes")
DEAD_LETTER_ACTIONS = ("sqs:GetQueueUrl", "sqs:GetQueueAttributes")  # the API's DLQ depth
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
INDEX_ACTIONS = ("dynamodb:Query",)
STATS_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem",
                 "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")
# What Lambda's poller does with the function's role on the results table's stream (rollups),
# all four scoped to `table/NAME/stream/*` as in the DynamoDB guide's policy for a Lambda
# function reading a stream ("IAM policy to allow an AWS Lambda function to access DynamoDB
# stream records").
RESULTS_STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                          "dynamodb:GetShardIterator", "dynamodb:ListStreams")
# Lambda's Kinesis poller reads the stream with the function's role; POST /ingest puts.
INGEST_READ_ACTIONS = ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                       "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards")
INGEST_WRITE_ACTIONS = ("kinesis:PutRecords",)
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
# Lambda sends a stream batch it gives up to the mapping's on-failure queue with the
# function's role.
ON_FAILURE_ACTIONS = ("sqs:SendMessage",)
LOG_PREFIX = "logs/"


def _statement(sid: str, actions: tuple[str, ...], *resources: str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def policy_for(stage: Stage, app_name: str) -> dict[str, Any]:
    """Least privilege for the stage's handlers: named resources, no wildcard actions."""
    table = f"arn:aws:dynamodb:*:*:table/{stage.results_table}"
    stream = f"arn:aws:kinesis:*:*:stream/{stage.ingest_stream}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("ReadUploadedLogs", OBJECT_ACTIONS,
                       f"arn:aws:s3:::{stage.bucket}/{LOG_PREFIX}*"),
            _statement("MissingObjectsReadAsNotFound", BUCKET_ACTIONS,
                       f"arn:aws:s3:::{stage.bucket}"),
            _statement("PresignUploadsWriteStreamedObjects", UPLOAD_ACTIONS,
                       f"arn:aws:s3:::{stage.bucket}/{LOG_PREFIX}*"),
            _statement("JobsQueue", QUEUE_ACTIONS, f"arn:aws:sqs:*:*:{stage.jobs_queue}"),
            _statement("DeadLetterQueueDepth", DEAD_LETTER_ACTIONS,
                       f"arn:aws:sqs:*:*:{stage.dead_letter_queue}"),
            _statement("ResultsTable", TABLE_ACTIONS, table),
            _statement("ListJobs", INDEX_ACTIONS,
                       *(f"{table}/index/{name}" for name in (BY_DAY, BY_STATUS))),
            _statement("ResultsStream", RESULTS_STREAM_ACTIONS, f"{table}/stream/*"),
            _statement("Rollups", STATS_ACTIONS,
                       f"arn:aws:dynamodb:*:*:table/{stage.stats_table}"),
            _statement("ReadIngestStream", INGEST_READ_ACTIONS, stream),
            _statement("PutEvents", INGEST_WRITE_ACTIONS, stream),
            _statement("StreamBatchesGivenUp", ON_FAILURE_ACTIONS,
                       *(f"arn:aws:sqs:*:*:{on_failure_queue(stage, function)}"
                         for function in STREAM_MAPPINGS)),
            _statement("FunctionLogs", LOG_ACTIONS,
                       f"arn:aws:logs:*:*:log-group:/aws/lambda/{app_name}-{stage.name}-*"),
        ],
    }


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def expected_files(config_path: Path = CONFIG_PATH) -> dict[Path, str]:
    """Each stage's policy file and the text it must have."""
    config = read_config(config_path)
    files: dict[Path, str] = {}
    for name, settings in config.get("stages", {}).items():
        policy_file = settings.get("iam_policy_file")
        if not policy_file or settings.get("autogen_policy", True):
            continue
        stage = load_stage(name, endpoint_url="unused", config=config)
        files[config_path.parent / policy_file] = render(policy_for(stage, config["app_name"]))
    return files


def stale_files(config_path: Path = CONFIG_PATH) -> list[Path]:
    return [path for path, text in expected_files(config_path).items()
            if not path.is_file() or path.read_text() != text]


def write_files(config_path: Path = CONFIG_PATH) -> list[Path]:
    """Rewrite the policy files that differ; returns those written."""
    written = []
    for path, text in expected_files(config_path).items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logctl.policy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG_PATH,
                        help="the Chalice config to read (default: .chalice/config.json); each "
                        "stage with autogen_policy false gets the iam_policy_file it names, "
                        "beside the config")
    parser.add_argument("--check", action="store_true",
                        help="only report policy files that differ from the config")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files(args.config)
            for path in stale:
                print(f"policy: {path} does not match {args.config}: run `make policy`",
                      file=sys.stderr)
            return 1 if stale else 0
        for path in write_files(args.config):
            print(f"policy: wrote {path}")
    except (OSError, ValueError, KeyError, StageError) as exc:
        print(f"policy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
