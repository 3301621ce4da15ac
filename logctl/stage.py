"""Stage settings from `.chalice/config.json` and boto3 clients bound to a stage."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_ROOT / ".chalice" / "config.json"
LOCAL_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_STAGE = "local"
# Where `make local` (python -m localruntime --endpoint-file) says which endpoint it serves.
ENDPOINT_FILE = PROJECT_ROOT / ".localruntime-endpoint"
VISIBILITY_FACTOR = 6
RESULT_TTL_DAYS = 7


class StageError(Exception):
    """The requested stage is missing or misconfigured."""


@dataclass(frozen=True)
class Stage:
    name: str
    bucket: str
    jobs_queue: str
    dead_letter_queue: str
    results_table: str
    stats_table: str
    ingest_stream: str
    environment: dict[str, str]
    functions: dict[str, dict[str, Any]]
    region: str
    endpoint_url: str | None
    app_name: str = "log-pipeline"

    def function_name(self, function: str) -> str:
        """The name `chalice deploy` gives a handler's Lambda function."""
        return f"{self.app_name}-{self.name}-{function}"

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    @property
    def dashboard_origins(self) -> list[str]:
        """Origins whose pages may PUT uploads into the bucket (its CORS rule)."""
        return [o.strip() for o in self.environment.get("DASHBOARD_ORIGINS", "").split(",")
                if o.strip()]

    def function_timeout(self, name: str) -> int:
        return int(self.functions.get(name, {}).get("lambda_timeout", 60))

    def function_memory(self, name: str) -> int:
        return int(self.functions.get(name, {}).get("lambda_memory_size", 128))


StageLike = Stage | str


def as_stage(stage: StageLike) -> Stage:
    """The Stage given, or the one its name resolves to (`load_stage`): every helper that
    takes a stage takes either."""
    return load_stage(stage) if isinstance(stage, str) else stage


def endpoint_for(stage_name: str, environ: Mapping[str, str]) -> str | None:
    """The endpoint a stage talks to when no --endpoint-url is given.

    Stage `local` follows AWS_ENDPOINT_URL, else the endpoint `make local` wrote down,
    else 127.0.0.1:4566. Every other stage
    talks to AWS: a leftover AWS_ENDPOINT_URL is refused rather than silently followed,
    since some commands would honour it and others not; rehearsing against a local
    endpoint takes an explicit --endpoint-url.
    """
    url = environ.get("AWS_ENDPOINT_URL") or None
    if stage_name == LOCAL_STAGE:
        return url or read_endpoint_file() or LOCAL_ENDPOINT
    if url:
        raise StageError(
            f"AWS_ENDPOINT_URL={url} is set, but stage {stage_name!r} talks to AWS: unset it "
            f"(`unset AWS_ENDPOINT_URL`), or pass --endpoint-url {url} to aim this command "
            "at that endpoint on purpose")
    return None


def read_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    with path.open() as f:
        return json.load(f)


def load_stage(name: str, *, endpoint_url: str | None = None,
               config: dict[str, Any] | None = None) -> Stage:
    """Resolve a stage. Stage `local` talks to AWS_ENDPOINT_URL, else to the endpoint a
    running `make local` wrote to ENDPOINT_FILE, else to 127.0.0.1:4566."""
    config = config if config is not None else read_config()
    stages = config.get("stages", {})
    if name not in stages:
        raise StageError(f"stage {name!r} is not in .chalice/config.json (have: {sorted(stages)})")
    stage_cfg = stages[name]
    env = {**config.get("environment_variables", {}), **stage_cfg.get("environment_variables", {})}
    required = ("LOG_BUCKET", "JOBS_QUEUE", "DEAD_LETTER_QUEUE", "RESULTS_TABLE", "STATS_TABLE",
                "INGEST_STREAM")
    missing = [k for k in required if not env.get(k)]
    if missing:
        raise StageError(f"stage {name!r} lacks environment variables: {', '.join(missing)}")
    functions: dict[str, dict[str, Any]] = {}
    for source in (config.get("lambda_functions", {}), stage_cfg.get("lambda_functions", {})):
        for fn, settings in source.items():
            functions.setdefault(fn, {}).update(settings)
    if endpoint_url is None:
        endpoint_url = endpoint_for(name, os.environ)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return Stage(
        name=name,
        bucket=env["LOG_BUCKET"],
        jobs_queue=env["JOBS_QUEUE"],
        dead_letter_queue=env["DEAD_LETTER_QUEUE"],
        results_table=env["RESULTS_TABLE"],
        stats_table=env["STATS_TABLE"],
        ingest_stream=env["INGEST_STREAM"],
        environment=env,
        functions=functions,
        region=region,
        endpoint_url=endpoint_url,
        app_name=config.get("app_name", "log-pipeline"),
    )


@dataclass(frozen=True)
class RuntimeRecord:
    """What a running `make local` writes to ENDPOINT_FILE: its endpoint URL on the first
    line (all most readers need), then `key=value` lines: its pid, its API's URL, and the
    token its API's /health answers carry."""

    endpoint_url: str
    pid: int | None = None
    api_url: str | None = None
    token: str | None = None

    def text(self) -> str:
        fields = {"pid": self.pid, "api": self.api_url, "token": self.token}
        return "".join([self.endpoint_url + "\n", *(f"{key}={value}\n"
                                                    for key, value in fields.items()
                                                    if value is not None)])

    @classmethod
    def parse(cls, text: str) -> RuntimeRecord | None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            return None
        fields = dict(line.partition("=")[::2] for line in lines[1:])
        pid = fields.get("pid", "")
        return cls(lines[0], int(pid) if pid.isdigit() else None, fields.get("api") or None,
                   fields.get("token") or None)

    def alive(self) -> bool:
        """Whether the process that wrote it still runs (on this machine)."""
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_runtime_record(path: Path | None = None) -> RuntimeRecord | None:
    try:
        return RuntimeRecord.parse((path or ENDPOINT_FILE).read_text())
    except OSError:
        return None


def serving_runtime(stage: Stage, path: Path | None = None) -> RuntimeRecord | None:
    """The running `make local` that serves `stage`'s endpoint, from its endpoint file."""
    record = read_runtime_record(path)
    if (stage.name != LOCAL_STAGE or stage.endpoint_url is None or record is None
            or not record.alive()
            or record.endpoint_url.rstrip("/") != stage.endpoint_url.rstrip("/")):
        return None
    return record


def read_endpoint_file(path: Path | None = None) -> str | None:
    record = read_runtime_record(path)
    return record.endpoint_url if record is not None else None


def read_api_url(path: Path | None = None) -> str | None:
    """The results API and dashboard URL a running `make local` serves."""
    record = read_runtime_record(path)
    return record.api_url if record is not None else None


def write_endpoint_file(record: RuntimeRecord | str, path: Path) -> None:
    if isinstance(record, str):
        record = RuntimeRecord(record)
    path.write_text(record.text())


def remove_endpoint_file(record: RuntimeRecord | str, path: Path) -> None:
    """Remove the file if it is still the one `record` wrote (another runtime may own it)."""
    if isinstance(record, str):
        record = RuntimeRecord(record)
    if read_runtime_record(path) == record:
        path.unlink(missing_ok=True)


def session_for(stage: StageLike) -> boto3.session.Session:
    stage = as_stage(stage)
    if stage.is_local:
        return boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            region_name=stage.region,
        )
    return boto3.session.Session(region_name=stage.region)


def client(stage: StageLike, service: str, session: boto3.session.Session | None = None) -> Any:
    stage = as_stage(stage)
    session = session or session_for(stage)
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"},
                 max_pool_connections=32, tcp_keepalive=True)
    return session.client(service, endpoint_url=stage.endpoint_url, config=cfg)
