"""The endpoint's side of fault injection: a WSGI layer in front of moto that answers some
of the handlers' calls with the errors AWS answers with (see `localruntime.faults`).

A call is the handlers' when its user agent carries `app/localruntime-handler` (the
runtime sets AWS_SDK_UA_APP_ID for its handler processes); the stream pollers' reads, which
stand for the Lambda service's own, carry `app/localruntime-poller` and meet the errors
GetRecords gives. An error answer is given
before moto sees the request, so nothing is applied. A reset GetObject is served by moto,
then `localruntime.endpoint.httpserver` sends half of the body and resets the connection.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from localruntime.endpoint.s3errors import error_body
from localruntime.faults import HANDLER_APP_ID, POLLER_APP_ID, FaultSwitch, log_fault

RESET_BODY_KEY = "localruntime.fault.reset_body"
S3_GET_KINDS = ("s3_get_500", "s3_get_slowdown", "s3_get_reset")
DDB_WRITE_KINDS = ("ddb_throughput", "ddb_500")
KINDS_BY_OPERATION: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "GetObject"): S3_GET_KINDS,
    ("dynamodb", "PutItem"): DDB_WRITE_KINDS,
    ("dynamodb", "UpdateItem"): DDB_WRITE_KINDS,
    ("dynamodb", "BatchWriteItem"): DDB_WRITE_KINDS,
    ("sqs", "SendMessage"): ("sqs_send_500",),
    ("sqs", "ChangeMessageVisibility"): ("sqs_visibility_500",),
}
STREAM_READ_KINDS = ("stream_read_500", "stream_read_throttle", "stream_iterator_expired")
# DynamoDB Streams signs as `dynamodb`; DynamoDB itself has no GetRecords.
POLLER_KINDS_BY_OPERATION: dict[tuple[str, str], tuple[str, ...]] = {
    ("kinesis", "GetRecords"): STREAM_READ_KINDS,
    ("dynamodb", "GetRecords"): STREAM_READ_KINDS,
}
# Query parameters a GetObject may carry; any other names a sub-resource (?acl, ?tagging...).
_GET_OBJECT_PARAMETERS = ("versionId", "partNumber", "x-id")
_DDB_ERROR = "com.amazonaws.dynamodb.v20120810#"
_STREAM_ERRORS = {
    # kind: (status, Kinesis error type, DynamoDB Streams error type, message)
    "stream_read_500": ("500 Internal Server Error", "InternalFailureException",
                        _DDB_ERROR + "InternalServerError", "Internal service failure."),
    "stream_read_throttle": ("400 Bad Request", "ProvisionedThroughputExceededException",
                             _DDB_ERROR + "LimitExceededException", "Rate exceeded for shard."),
    "stream_iterator_expired": ("400 Bad Request", "ExpiredIteratorException",
                                _DDB_ERROR + "ExpiredIteratorException", "Iterator expired."),
}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _service(environ: dict[str, Any]) -> str:
    """The service named in the request's SigV4 credential scope."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scope = authorization.partition("Credential=")[2].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def _is_get_object(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") != "GET":
        return False
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if not bucket or not key:
        return False
    names = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return all(n in _GET_OBJECT_PARAMETERS or n.startswith("response-") for n in names)


def _query_action(environ: dict[str, Any]) -> str:
    """The Action of a query-protocol request; the body is put back for moto to read."""
    if "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return ""
    stream = environ["wsgi.input"]
    body = stream.read()
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]


def operation(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of an AWS request, as far as fault injection needs to know."""
    service = _service(environ)
    if service == "s3":
        return service, "GetObject" if _is_get_object(environ) else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return service, target.rpartition(".")[2]
    return service, _query_action(environ)


def _target(environ: dict[str, Any]) -> str:
    if _service(environ) == "s3":
        return environ.get("PATH_INFO", "")
    return environ.get("HTTP_X_AMZ_TARGET", "") or environ.get("PATH_INFO", "")


def _s3_error(status: str, code: str, message: str) -> tuple[str, str, bytes]:
    return status, "application/xml", error_body(code, message)


def _json_error(status: str, kind: str, message: str) -> tuple[str, str, bytes]:
    return status, "application/x-amz-json-1.0", json.dumps(
        {"__type": kind, "message": message}).encode()


def error_answer(kind: str, environ: dict[str, Any]) -> tuple[str, str, bytes, list[str]]:
    """Status line, content type, body and extra headers of the error AWS gives."""
    extra: list[str] = []
    if kind == "s3_get_500":
        answer = _s3_error("500 Internal Server Error", "InternalError",
                           "We encountered an internal error. Please try again.")
    elif kind == "s3_get_slowdown":
        answer = _s3_error("503 Slow Down", "SlowDown", "Please reduce your request rate.")
    elif kind == "ddb_throughput":
        answer = _json_error(
            "400 Bad Request", _DDB_ERROR + "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.")
    elif kind == "ddb_500":
        answer = _json_error("500 Internal Server Error", _DDB_ERROR + "InternalServerError",
                             "Internal server error")
    elif kind in _STREAM_ERRORS:
        status, kinesis, streams, message = _STREAM_ERRORS[kind]
        kinesis_call = _service(environ) == "kinesis"
        answer = _json_error(status, kinesis if kinesis_call else streams, message)
        if kinesis_call:
            answer = (answer[0], "application/x-amz-json-1.1", answer[2])
    elif environ.get("HTTP_X_AMZ_TARGET"):
        answer = _json_error("500 Internal Server Error", "com.amazonaws.sqs#InternalError",
                             "We encountered an internal error. Please try again.")
        extra = ["InternalError;Receiver"]
    else:
        body = (b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
                b"<Message>We encountered an internal error. Please try again.</Message>"
                b"</Error></ErrorResponse>")
        answer = ("500 Internal Server Error", "text/xml", body)
    return (*answer, extra)


class FaultingApp:
    """Wraps the endpoint's WSGI application; draws one fault decision per handler call
    from the plan in force."""

    def __init__(self, application: WsgiApp, faults: FaultSwitch) -> None:
        self.application = application
        self.faults = faults
        self.dice = faults.dice("endpoint")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        agent = environ.get("HTTP_USER_AGENT", "")
        if not self.faults.plan.endpoint_active():
            return self.application(environ, start_response)
        if HANDLER_APP_ID in agent:
            by_operation = KINDS_BY_OPERATION
        elif POLLER_APP_ID in agent:
            by_operation = POLLER_KINDS_BY_OPERATION
        else:
            return self.application(environ, start_response)
        service, name = operation(environ)
        kinds = by_operation.get((service, name))
        if not kinds:
            return self.application(environ, start_response)
        kind = self.dice.first(kinds)
        if kind is None:
            return self.application(environ, start_response)
        log_fault(kind, operation=name, target=_target(environ))
        if kind == "s3_get_reset":
            environ[RESET_BODY_KEY] = True
            return self.application(environ, start_response)
        status, content_type, body, query_error = error_answer(kind, environ)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("x-amzn-RequestId", str(uuid.uuid4()))]
        headers += [("x-amzn-query-error", value) for value in query_error]
        start_response(status, headers)
        return [body]
