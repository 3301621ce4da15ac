"""The log pipeline: S3 upload -> trigger -> SQS -> worker -> DynamoDB, and its results API;
events come in through Kinesis (ingest -> objects under logs/stream/) or POST /ingest.

Handlers only translate Lambda events and HTTP requests into calls on `chalicelib`.
"""

import gc
import os
import sys

import boto3
from botocore.config import Config
from chalice import Chalice, IAMAuthorizer, Response

from chalicelib.adapters import ResultsStore, S3Source, SqsJobQueue, StreamObjects
from chalicelib.api import ApiResponse, ApiSettings, ResultsApi, chalice_error
from chalicelib.ingest import NDJSON, EventProducer, Ingest, IngestApi, IngestSettings
from chalicelib.pipeline import Settings, Trigger, Worker
from chalicelib.rollups import DynamoRollupItems, RollupsHandler, results_stream_arn
from chalicelib.telemetry import Telemetry

# Logs go through Powertools' Logger (chalicelib.telemetry), whose logger has the app's name.
app = Chalice(app_name="log-pipeline", configure_logs=False)
# POST /ingest's body reaches the handler as the bytes sent (base64 through API Gateway).
app.api.binary_types.append(NDJSON)

settings = Settings.from_env(os.environ)
telemetry = Telemetry.from_env(os.environ)
api_settings = ApiSettings.from_env(os.environ)
ingest_settings = IngestSettings.from_env(os.environ)
_config = Config(retries={"max_attempts": 4, "mode": "standard"}, tcp_keepalive=True)
s3 = boto3.client("s3", config=_config.merge(Config(signature_version="s3v4")))
sqs = boto3.client("sqs", config=_config)
dynamodb = boto3.client("dynamodb", config=_config)
kinesis = boto3.client("kinesis", config=_config)

results = ResultsStore(dynamodb, settings.results_table)
queue = SqsJobQueue(sqs, settings.jobs_queue)
trigger_logic = Trigger(settings, results, queue, telemetry=telemetry)
worker_logic = Worker(settings, results, S3Source(s3), queue, telemetry=telemetry)
rollups_logic = RollupsHandler(DynamoRollupItems(dynamodb, api_settings.stats_table))
ingest_logic = Ingest(StreamObjects(s3, settings.bucket), telemetry=telemetry)
ingest_api = IngestApi(EventProducer(kinesis, ingest_settings.stream))
api = ResultsApi(settings, api_settings, dynamodb=dynamodb, sqs=sqs, s3=s3)
# API_AUTH=iam (stage aws, the default): every route needs a SigV4-signed request.
auth = IAMAuthorizer() if api_settings.auth == "iam" else None
# What the imports made survives every request: out of the collector's sight, a full pass
# scans only what a request made (GET /stats over 30 days: 124 ms of collection -> ~10 ms).
gc.freeze()


@app.on_s3_event(bucket=settings.bucket, events=["s3:ObjectCreated:*"], prefix="logs/")
def trigger(event):
    return trigger_logic.handle(event.to_dict())


@app.on_sqs_message(queue=settings.jobs_queue, batch_size=10,
                    maximum_batching_window_in_seconds=0)
def worker(event):
    return worker_logic.handle(event.to_dict(), remaining_ms=_remaining_ms(event))


# Each object is a job with a fixed cost: 10,000 records a batch (Lambda's most) cost 1/72 of
# 100 per event; a 1 s window adds at most 1 s to an event's latency, and Lambda reads a shard
# about once a second anyway (docs/performance.md, "Streamed events").
@app.on_kinesis_record(stream=ingest_settings.stream, starting_position="TRIM_HORIZON",
                       batch_size=10000, maximum_batching_window_in_seconds=1)
def ingest(event):
    return ingest_logic.handle(event.to_dict())


@app.middleware("http")
def error_body(event, get_response):
    """Chalice's own answers (405, 415, an unhandled error's 500) in the API's error body."""
    response = get_response(event)
    body = chalice_error(response.status_code, response.body)
    if body is not None:
        response.body = body
        response.headers["Content-Type"] = "application/json"
    return response


# Retries never give up on this mapping (a record skipped is a count lost): starting at
# TRIM_HORIZON, every record the stream holds is applied, each exactly once.
@app.on_dynamodb_record(stream_arn=results_stream_arn(os.environ, sys.argv), batch_size=100,
                        maximum_batching_window_in_seconds=1, starting_position="TRIM_HORIZON")
def rollups(event):
    return rollups_logic.handle(event.to_dict())


@app.route("/", authorizer=auth)
def dashboard():
    return _respond(api.dashboard())


@app.route("/favicon.ico", authorizer=auth)
def favicon():
    return _respond(api.favicon())


@app.route("/jobs", authorizer=auth)
def list_jobs():
    return _respond(api.list_jobs(app.current_request.query_params))


@app.route("/jobs/{job_id}", authorizer=auth)
def get_job(job_id):
    return _respond(api.get_job(job_id))


@app.route("/jobs/{job_id}/download", authorizer=auth)
def download_job(job_id):
    return _respond(api.download(job_id))


@app.route("/stats", authorizer=auth)
def stats():
    return _respond(api.stats(app.current_request.query_params))


@app.route("/endpoints", authorizer=auth)
def endpoints():
    return _respond(api.endpoints(app.current_request.query_params))


@app.route("/health", authorizer=auth)
def health():
    return _respond(api.health())


@app.route("/uploads", methods=["POST"], authorizer=auth, content_types=["application/json"])
def create_upload():
    return _respond(api.create_upload(app.current_request.raw_body))


# Every type reaches the handler, which answers a wrong one with 400 in the API's error body.
@app.route("/ingest", methods=["POST"], authorizer=auth, content_types=["*/*"])
def post_ingest():
    request = app.current_request
    return _respond(ingest_api.post(request.headers.get("content-type"), request.raw_body))


def _respond(response: ApiResponse) -> Response:
    return Response(body=response.wire_body(), status_code=response.status,
                    headers=response.headers)


def _remaining_ms(event):
    context = getattr(event, "context", None)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return context.get_remaining_time_in_millis
    return None
