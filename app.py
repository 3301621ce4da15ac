"""The log pipeline: S3 upload -> trigger -> SQS -> worker -> DynamoDB.

Handlers only translate Lambda events into calls on `chalicelib`.
"""

import os

import boto3
from botocore.config import Config
from chalice import Chalice

from chalicelib.adapters import ResultsStore, S3Source, SqsJobQueue
from chalicelib.pipeline import Settings, Trigger, Worker
from chalicelib.telemetry import Telemetry

# Logs go through Powertools' Logger (chalicelib.telemetry), whose logger has the app's name.
app = Chalice(app_name="log-pipeline", configure_logs=False)

settings = Settings.from_env(os.environ)
telemetry = Telemetry.from_env(os.environ)
_config = Config(retries={"max_attempts": 4, "mode": "standard"}, tcp_keepalive=True)
s3 = boto3.client("s3", config=_config)
sqs = boto3.client("sqs", config=_config)
dynamodb = boto3.client("dynamodb", config=_config)

results = ResultsStore(dynamodb, settings.results_table)
queue = SqsJobQueue(sqs, settings.jobs_queue)
trigger_logic = Trigger(settings, results, queue, telemetry=telemetry)
worker_logic = Worker(settings, results, S3Source(s3), queue, telemetry=telemetry)


@app.on_s3_event(bucket=settings.bucket, events=["s3:ObjectCreated:*"], prefix="logs/")
def trigger(event):
    return trigger_logic.handle(event.to_dict())


@app.on_sqs_message(queue=settings.jobs_queue, batch_size=10,
                    maximum_batching_window_in_seconds=0)
def worker(event):
    return worker_logic.handle(event.to_dict(), remaining_ms=_remaining_ms(event))


def _remaining_ms(event):
    context = getattr(event, "context", None)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return context.get_remaining_time_in_millis
    return None
