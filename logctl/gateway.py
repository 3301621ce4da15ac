"""API Gateway's own answers in the API's error body (post-deploy).

API Gateway answers some requests without calling the app: an unknown path or an unsigned
request (403), a body over 10 MB (413), throttling (429), a Lambda that runs past 29 s
(504). Its gateway responses are set here so those answers carry the same
`{"error": {"code", "message"}}` body as the app's, then the stage is redeployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from logctl.dashboard import deployed_rest_api
from logctl.stage import PROJECT_ROOT, Stage, client

# response type -> the error body's code; DEFAULT_4XX/5XX cover every other type.
GATEWAY_ERROR_CODES = {
    "MISSING_AUTHENTICATION_TOKEN": "not_found",  # API Gateway's answer to an unknown path
    "ACCESS_DENIED": "forbidden",
    "INVALID_SIGNATURE": "forbidden",
    "EXPIRED_TOKEN": "forbidden",
    "UNAUTHORIZED": "unauthorized",
    "RESOURCE_NOT_FOUND": "not_found",
    "REQUEST_TOO_LARGE": "request_too_large",
    "THROTTLED": "too_many_requests",
    "QUOTA_EXCEEDED": "too_many_requests",
    "INTEGRATION_TIMEOUT": "timeout",
    "DEFAULT_4XX": "bad_request",
    "DEFAULT_5XX": "internal_error",
}


def error_template(code: str) -> str:
    """A mapping template: `$context.error.messageString` is already a quoted JSON string."""
    return '{"error":{"code":"' + code + '","message":$context.error.messageString}}'


def set_error_bodies(stage: Stage, project: Path = PROJECT_ROOT,
                     apigateway: Any | None = None) -> list[str]:
    """Put a gateway response per type, redeploy the API stage; the types changed."""
    api = deployed_rest_api(stage, project)
    gateway = apigateway or client(stage, "apigateway")
    rest_api_id = api["rest_api_id"]
    current = {item["responseType"]: item.get("responseTemplates", {})
               for item in gateway.get_gateway_responses(restApiId=rest_api_id)["items"]}
    changed = []
    for response_type, code in GATEWAY_ERROR_CODES.items():
        templates = {"application/json": error_template(code)}
        if current.get(response_type) == templates:
            continue
        gateway.put_gateway_response(restApiId=rest_api_id, responseType=response_type,
                                     responseTemplates=templates)
        changed.append(response_type)
    if changed:
        # rest_api_url is https://ID.execute-api.REGION.amazonaws.com/STAGE/
        stage_name = urlsplit(api["rest_api_url"]).path.strip("/").split("/")[0]
        gateway.create_deployment(restApiId=rest_api_id, stageName=stage_name)
    return changed
