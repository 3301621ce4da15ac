"""The logctl modules run against a moto server: one per test module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from logctl.stage import Stage
from tests.integration.logctl.support import fresh_stage, moto_server


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def stage(endpoint: str) -> Stage:
    return fresh_stage(endpoint)
