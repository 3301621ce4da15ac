"""Every route, driven with arbitrary query strings, path values and bodies: never a 500.

GIVEN the app on moto with a few jobs, WHEN hypothesis sends any query string (known names,
misspelt ones, any text as values), any path parameter and any body to every route Chalice
knows (read from `app.routes`, so a new route is fuzzed without a change here), THEN the
status is below 500 and every 4xx carries the API's error body.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_api import put_job

NAMES = ("since", "until", "status", "prefix", "limit", "cursor", "source")
MOMENTS = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                     "9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00", "NaN", "1e400",
                     "1765000000000", "", "\u202e", "%00"]),
)
VALUES = st.one_of(st.text(max_size=60), MOMENTS,
                   st.sampled_from(["queued", "failed", "upload", "stream", "0", "201", "-1"]))
QUERIES = st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=12)),
                          VALUES, max_size=4)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"name": st.text(max_size=1100), "size": JSON_VALUES}).map(
        lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n),
)
PATH_VALUES = st.one_of(st.text(min_size=1, max_size=40), st.from_regex(r"[0-9a-f]{32}",
                                                                         fullmatch=True))


def check(status: int, body: bytes, what: str) -> None:
    assert status < 500, f"{what} -> {status} {body[:300]!r}"
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), what


@pytest.fixture
def fuzzed_app(app_module) -> Any:
    now = time.time()
    for i, status in enumerate(("completed", "failed", "queued")):
        put_job(app_module, f"logs/fuzz/{i}.ndjson", now - i * 3600, status)
    return app_module


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_route_answers_500(fuzzed_app, data) -> None:
    routes = sorted((path, method) for path, methods in fuzzed_app.app.routes.items()
                    for method in methods)
    path, method = data.draw(st.sampled_from(routes), label="route")
    concrete = path
    while "{" in concrete:
        name = concrete[concrete.index("{") + 1:concrete.index("}")]
        concrete = concrete.replace("{" + name + "}",
                                    quote(data.draw(PATH_VALUES, label=name), safe=""))
    query = data.draw(QUERIES, label="query")
    url = concrete + ("?" + urlencode(query) if query else "")
    headers = {"Content-Type": data.draw(st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain"]))}
    body = data.draw(BODIES, label="body") if method == "POST" else b""
    with Client(fuzzed_app.app) as client:
        response = client.http.request(method, url, headers=headers, body=body)
    check(response.status_code, response.body, f"{method} {url} {body[:80]!r}")
