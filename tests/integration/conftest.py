"""Moto-backed AWS for the handlers, with stage `local`'s resources provisioned."""

from __future__ import annotations

import dataclasses
import importlib
import io
import sys
from collections.abc import Iterator
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from localruntime.log import Console
from logctl.provision import provision
from logctl.stage import Stage, load_stage


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    local = dataclasses.replace(load_stage("local"), endpoint_url=None)
    for key, value in local.environment.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        provision(local)
        yield local


@pytest.fixture
def console() -> Console:
    """A console that keeps the runtime's lines in memory, with no status line."""
    return Console(io.StringIO(), status_line=False)


@pytest.fixture
def app_module(stage: Stage) -> Iterator[ModuleType]:
    """app.py imported fresh, so its module-level clients and settings follow this test."""
    sys.modules.pop("app", None)
    module = importlib.import_module("app")
    yield module
    sys.modules.pop("app", None)


@pytest.fixture
def s3(stage: Stage):
    return boto3.client("s3", region_name=stage.region)


@pytest.fixture
def sqs(stage: Stage):
    return boto3.client("sqs", region_name=stage.region)


@pytest.fixture
def dynamodb(stage: Stage):
    return boto3.client("dynamodb", region_name=stage.region)
