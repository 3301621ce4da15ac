"""Adjustments to moto, applied in the endpoint process before it serves requests.

- S3 accepts notification filter rule names in any case (`Prefix`, as Chalice sends them).
- S3 events carry `versionId` (versioned buckets) and a `sequencer`, as AWS sends them.
- The list of moto's service modules, read from disk on every request, is read once.
- moto never runs a Lambda function: S3 notifications that target a function and SQS
  event source mappings are recorded but invoke nothing. The local runtime runs the
  handlers itself, from queues it polls.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any
from urllib.parse import quote_plus

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


def _patch_notification_filters() -> None:
    from moto.s3.responses import S3Response

    original = S3Response._notification_config_from_body

    def notification_config_from_body(self: Any) -> dict[str, Any]:
        if self.body:
            self.body = normalise_filter_rule_names(self.body)
        return original(self)

    S3Response._notification_config_from_body = notification_config_from_body


def _patch_s3_event_shape() -> None:
    from moto.s3 import notifications

    original = notifications._get_s3_event

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


def _patch_lambda_invocations() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.s3 import notifications
    from moto.sqs.models import sqs_backends

    def invoke_nothing(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        return None

    notifications._invoke_awslambda = invoke_nothing

    original_create = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original_create(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping


def _patch_module_listing() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def apply() -> None:
    _patch_module_listing()
    _patch_notification_filters()
    _patch_s3_event_shape()
    _patch_lambda_invocations()
