"""Behaviour fixes: where moto differs from AWS in a way the pipeline can see.

- S3 accepts notification filter rule names in any case (`Prefix`, as Chalice sends them);
  moto asserts lower case and answers 500.
- S3 events carry `versionId` (versioned buckets) and a `sequencer`, and keys encoded as
  S3 encodes them (`+` for a space), as AWS sends them.
- Lambda's ListEventSourceMappings filters by function name or ARN alike, as AWS does.
- A bucket policy's `Bool` conditions (`aws:SecureTransport`) are evaluated; moto would
  deny every request under the TLS-only policy provisioning sets. The endpoint serves
  plain HTTP on loopback only: its requests count as TLS (AWS would refuse them).
- API Gateway's ImportRestApi and PutRestApi accept Swagger 2.0 (what Chalice generates)
  and a document without `info.description`, as AWS does; moto refuses both (500, 400)
  though it reads only the paths, methods and integrations, which the formats write alike.
- moto never runs a Lambda function: S3 notifications that target a function and SQS,
  DynamoDB stream and Kinesis event source mappings are recorded but invoke nothing (moto
  would invoke through Docker, inside SendMessage, PutItem or PutRecord). The local
  runtime runs the handlers itself.
- DynamoDB stream records say the table's region and event version 1.1, as AWS's do.
- DynamoDB's TTL deletes expired items (moto never does): some time after an item's TTL
  attribute has passed, the endpoint deletes it, and the deletion reaches the table's
  stream as a REMOVE whose `userIdentity` is the TTL service's (`expire_items`).

- Requests are atomic, as AWS calls are: they run in moto one at a time (`atomic`);
  moto's threaded server lets a GetItem read an item an UpdateItem has half written.

Each fix is a function of its own over moto's (`atomic` wraps moto's application), written
as the change moto itself needs.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any
from urllib.parse import quote_plus

from localruntime.endpoint.motoguard import replaced

_FILTER_RULE_NAME = re.compile(r"<Name>\s*(prefix|suffix)\s*</Name>", re.IGNORECASE)
_sequence = itertools.count()


def normalise_filter_rule_names(body: str | bytes) -> str | bytes:
    """Lower-case `<Name>Prefix</Name>` / `<Name>Suffix</Name>` in a notification configuration."""
    if isinstance(body, bytes):
        text = body.decode("utf-8")
        return _FILTER_RULE_NAME.sub(lambda m: f"<Name>{m.group(1).lower()}</Name>", text).encode()
    return _FILTER_RULE_NAME.sub(lambda m: f"<Name>{m.group(1).lower()}</Name>", body)


def next_sequencer() -> str:
    """A hex string that sorts after every earlier one, like S3's `sequencer`."""
    return f"{time.time_ns():016X}{next(_sequence) % 0x10000:04X}"


def function_name_of(name_or_arn: str) -> str:
    """`name` from `name`, `arn:...:function:name` or `arn:...:function:name:qualifier`."""
    if ":function:" in name_or_arn:
        return name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
    return name_or_arn


def _fix_notification_filters() -> None:
    from moto.s3.responses import S3Response

    original = replaced(S3Response, "_notification_config_from_body", ("self",))

    def notification_config_from_body(self: Any) -> dict[str, Any]:
        if self.body:
            self.body = normalise_filter_rule_names(self.body)
        return original(self)

    S3Response._notification_config_from_body = notification_config_from_body


def _fix_s3_event_shape() -> None:
    from moto.s3 import notifications

    original = replaced(notifications, "_get_s3_event",
                        ("event_name", "bucket", "key", "notification_id"))

    def get_s3_event(event_name: str, bucket: Any, key: Any,
                     notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        s3_object = event["Records"][0]["s3"]["object"]
        s3_object["key"] = quote_plus(key.name, safe="/")
        version_id = getattr(key, "version_id", None)
        if version_id and version_id != "null":
            s3_object["versionId"] = version_id
        s3_object["sequencer"] = next_sequencer()
        return event

    notifications._get_s3_event = get_s3_event


def _fix_lambda_invocations() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.s3 import notifications
    from moto.sqs.models import sqs_backends

    replaced(notifications, "_invoke_awslambda",
             ("account_id", "event_body", "fn_arn", "region_name"))

    def invoke_nothing(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        return None

    notifications._invoke_awslambda = invoke_nothing

    original_create = replaced(LambdaBackend, "create_event_source_mapping", ("self", "spec"))

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original_create(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        for table in dynamodb_backends[self.account_id][self.region_name].tables.values():
            table.lambda_event_source_mappings.pop(esm.function_arn, None)
        for stream in kinesis_backends[self.account_id][self.region_name].streams.values():
            stream.lambda_event_source_mappings.pop(esm.event_source_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping

    original_list = replaced(LambdaBackend, "list_event_source_mappings",
                             ("self", "event_source_arn", "function_name"))

    def list_event_source_mappings(self: Any, event_source_arn: str,
                                   function_name: str) -> list[Any]:
        mappings = original_list(self, event_source_arn, None)
        if not function_name:
            return list(mappings)
        wanted = function_name_of(function_name)
        return [m for m in mappings if function_name_of(m.function_arn) == wanted]

    LambdaBackend.list_event_source_mappings = list_event_source_mappings


def _fix_stream_records() -> None:
    from moto.dynamodb.models.table import StreamRecord

    original = replaced(StreamRecord, "__init__",
                        ("self", "table", "stream_type", "event_name", "old", "new", "seq"))

    def init(self: Any, table: Any, stream_type: str, event_name: str, old: Any, new: Any,
             seq: int) -> None:
        original(self, table, stream_type, event_name, old, new, seq)
        self.record["awsRegion"] = table.region_name
        self.record["eventVersion"] = "1.1"

    StreamRecord.__init__ = init


# Who deletes an expired item, as DynamoDB Streams' GetRecords names it.
TTL_IDENTITY = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
# DynamoDB leaves alone items whose TTL is more than five years in the past.
TTL_HORIZON_SECONDS = 5 * 365 * 24 * 3600
TTL_SWEEP_VARIABLE = "LOCALRUNTIME_TTL_SWEEP_SECONDS"
TTL_SWEEP_SECONDS = 30.0


def ttl_expired(value: Any, now: float) -> bool:
    """Whether a TTL attribute value (a DynamoType) makes its item due for deletion."""
    if value is None or value.type != "N":
        return False
    try:
        expires = float(value.value)
    except ValueError:
        return False
    return now - TTL_HORIZON_SECONDS <= expires < now


def expire_items(now: float) -> int:
    """Delete every item whose TTL has passed, in every table with TTL on, as DynamoDB's
    TTL does; each deletion reaches the table's stream marked as the TTL service's."""
    from moto.dynamodb.models import dynamodb_backends

    deleted = 0
    for per_account in list(dynamodb_backends.values()):
        for backend in list(per_account.values()):
            for table in list(backend.tables.values()):
                if table.ttl.get("TimeToLiveStatus") != "ENABLED":
                    continue
                attribute = table.ttl.get("AttributeName")
                for item in table.all_items():
                    if not ttl_expired(item.attrs.get(attribute), now):
                        continue
                    shard = table.stream_shard
                    before = len(shard.items) if shard is not None else 0
                    table.delete_item(item.hash_key, item.range_key)
                    deleted += 1
                    if shard is not None and len(shard.items) > before:
                        shard.items[-1].record["userIdentity"] = dict(TTL_IDENTITY)
    return deleted


def _expire_items_forever(every: float) -> None:
    while True:
        time.sleep(every)
        with APP_LOCK:
            expire_items(time.time())


def start_ttl_sweeper(environ: dict[str, str]) -> float:
    """Start deleting expired items every LOCALRUNTIME_TTL_SWEEP_SECONDS (default 30 s)."""
    text = environ.get(TTL_SWEEP_VARIABLE) or str(TTL_SWEEP_SECONDS)
    every = float(text)
    if not every > 0:
        raise ValueError(f"{TTL_SWEEP_VARIABLE}={text!r}: must be a positive number")
    threading.Thread(target=_expire_items_forever, args=(every,), daemon=True,
                     name="ttl").start()
    return every


REQUEST_CONTEXT = {"aws:securetransport": "true"}


def statement_applies(statement: dict[str, Any], context: dict[str, str]) -> bool:
    """Whether a policy statement's `Bool` conditions hold for the request's context keys
    (lower-case); other operators are left to moto."""
    for key, expected in statement.get("Condition", {}).get("Bool", {}).items():
        values = expected if isinstance(expected, list) else [expected]
        actual = context.get(key.lower())
        if actual is None or actual not in {str(v).lower() for v in values}:
            return False
    return True


def _fix_bucket_policy_conditions() -> None:
    """moto treats a condition it cannot evaluate as met, and a condition not met as a
    denial: the statements whose `Bool` conditions do not hold are set aside first."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    replaced(FakeBucket, "get_permission", ("self", "action", "resource"))

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = []
        for statement in statements:
            if not statement_applies(statement, REQUEST_CONTEXT):
                continue
            statement = dict(statement)
            condition = {k: v for k, v in statement.pop("Condition", {}).items() if k != "Bool"}
            if condition:
                statement["Condition"] = condition
            kept.append(statement)
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(
            action, resource)

    FakeBucket.get_permission = get_permission


_applied_in_process = False


def apply_in_process() -> None:
    """The fixes in-process moto (tests) needs to answer as AWS does for a provisioned
    stage: the TLS-only bucket policy, versioned buckets' events carrying versionId.
    Applied once per process."""
    global _applied_in_process
    if _applied_in_process:
        return
    _applied_in_process = True
    _fix_bucket_policy_conditions()
    _fix_s3_event_shape()
    _fix_stream_records()


def as_openapi(api_doc: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 API document labelled OpenAPI 3, with an (empty) description."""
    api_doc = dict(api_doc)
    if str(api_doc.pop("swagger", "")).startswith("2."):
        api_doc["openapi"] = "3.0.1"
    api_doc["info"] = {"description": "", **api_doc.get("info", {})}
    return api_doc


def _fix_rest_api_import() -> None:
    from moto.apigateway.models import APIGatewayBackend

    original_import = replaced(APIGatewayBackend, "import_rest_api",
                               ("self", "api_doc", "fail_on_warnings"))
    original_put = replaced(APIGatewayBackend, "put_rest_api",
                            ("self", "function_id", "api_doc", "fail_on_warnings", "mode"))

    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        return original_import(self, as_openapi(api_doc), fail_on_warnings)

    def put_rest_api(self: Any, function_id: str, api_doc: dict[str, Any],
                     fail_on_warnings: bool, mode: str = "merge") -> Any:
        return original_put(self, function_id, as_openapi(api_doc), fail_on_warnings, mode)

    APIGatewayBackend.import_rest_api = import_rest_api
    APIGatewayBackend.put_rest_api = put_rest_api


APP_LOCK = threading.Lock()
_turn = threading.local()


def atomic(application: Any) -> Any:
    """Run one request at a time inside moto: each is atomic, as an AWS call is.

    moto's server runs requests on threads side by side, and moto applies an UpdateItem's
    actions one by one to the stored item: a GetItem in between reads a record half
    written (`status` completed, no `completed_at` yet), which DynamoDB never returns.
    In turn, each request runs to the end; it is also faster (moto is pure Python:
    threads get no parallelism, only the interpreter's hand-overs). A long poll
    (ReceiveMessage waiting for messages) gives its turn up while it waits
    (`_fix_long_polls`)."""

    def call(environ: dict[str, Any], start_response: Any) -> Any:
        with APP_LOCK:
            _turn.held = True
            try:
                return list(application(environ, start_response))
            finally:
                _turn.held = False

    return call


def _fix_long_polls() -> None:
    from moto.sqs.models import Queue

    original = replaced(Queue, "wait_for_messages", ("self", "timeout"))

    def wait_for_messages(self: Any, timeout: int) -> None:
        if not getattr(_turn, "held", False):
            original(self, timeout)
            return
        _turn.held = False
        APP_LOCK.release()
        try:
            original(self, timeout)
        finally:
            APP_LOCK.acquire()
            _turn.held = True

    Queue.wait_for_messages = wait_for_messages


def apply() -> None:
    _fix_long_polls()
    _fix_notification_filters()
    _fix_s3_event_shape()
    _fix_lambda_invocations()
    _fix_bucket_policy_conditions()
    _fix_rest_api_import()
    _fix_stream_records()
