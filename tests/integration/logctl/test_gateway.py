"""Post-deploy gives API Gateway's own error answers the API's error body."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logctl.cli import LogctlError
from logctl.gateway import GATEWAY_ERROR_CODES, error_template, set_error_bodies
from logctl.stage import Stage, client


def deployed(stage: Stage, project: Path) -> str:
    gateway = client(stage, "apigateway")
    api_id = gateway.create_rest_api(name=stage.app_name)["id"]
    root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
    gateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET",
                       authorizationType="NONE")
    gateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    (project / ".chalice" / "deployed").mkdir(parents=True)
    (project / ".chalice" / "deployed" / f"{stage.name}.json").write_text(json.dumps(
        {"resources": [{"resource_type": "rest_api", "name": "rest_api",
                        "rest_api_id": api_id,
                        "rest_api_url": f"https://{api_id}.execute-api.us-east-1"
                                        ".amazonaws.com/api/"}]}))
    return api_id


def test_every_gateway_answer_gets_the_error_body_once(stage: Stage, tmp_path: Path) -> None:
    api_id = deployed(stage, tmp_path)
    gateway = client(stage, "apigateway")

    first = set_error_bodies(stage, tmp_path)
    again = set_error_bodies(stage, tmp_path)

    assert set(first) == set(GATEWAY_ERROR_CODES) and again == []
    responses = {r["responseType"]: r["responseTemplates"]["application/json"]
                 for r in gateway.get_gateway_responses(restApiId=api_id)["items"]
                 if r.get("responseTemplates")}
    for response_type in ("MISSING_AUTHENTICATION_TOKEN", "ACCESS_DENIED", "REQUEST_TOO_LARGE",
                          "THROTTLED", "INTEGRATION_TIMEOUT", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert responses[response_type] == error_template(GATEWAY_ERROR_CODES[response_type])
    assert len(gateway.get_deployments(restApiId=api_id)["items"]) == 1


def test_a_template_is_the_error_body_once_the_message_is_filled_in() -> None:
    filled = error_template("too_many_requests").replace(
        "$context.error.messageString", json.dumps('Too Many "Requests"'))
    assert json.loads(filled) == {"error": {"code": "too_many_requests",
                                            "message": 'Too Many "Requests"'}}


def test_without_a_deployment_it_says_to_deploy_first(stage: Stage, tmp_path: Path) -> None:
    with pytest.raises(LogctlError, match="deploy first"):
        set_error_bodies(stage, tmp_path)
