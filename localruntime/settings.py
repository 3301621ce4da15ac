"""What the runtime runs: the project, its stage from `.chalice/config.json`, and overrides."""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localruntime.endpoint.presigned import RUNTIME_ACCESS_KEY_ID, RUNTIME_SECRET_ACCESS_KEY
from localruntime.faults import HANDLER_APP_ID, FaultPlan
from logctl.stage import Stage, StageError, load_stage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
DEFAULT_CONCURRENCY = 2
DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_MEMORY_MB = 128
RUNTIME_ROOT = Path(__file__).resolve().parent.parent
# A function whose own time budget is a stage variable: on AWS both come from one config,
# so a --timeout for the function without the same value in the variable is a mismatch.
TIMEOUT_VARIABLES = {"worker": "WORKER_TIMEOUT_SECONDS"}


class SettingsError(Exception):
    """The command line or the project configuration is unusable."""


@dataclass(frozen=True)
class FunctionSettings:
    name: str
    timeout_seconds: float
    memory_mb: int
    concurrency: int


@dataclass(frozen=True)
class RuntimeSettings:
    project: Path
    stage_name: str
    host: str
    port: int
    overrides: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    reload: bool = True
    status_line: bool = True
    faults: FaultPlan = field(default_factory=FaultPlan)
    enforce_memory: bool = True
    endpoint_file: Path | None = None
    api_port: int | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.project / ".chalice" / "config.json"

    def _project_config(self) -> dict[str, Any]:
        """The project's Chalice config as written, with the stage checked to exist."""
        try:
            config: dict[str, Any] = json.loads(self.config_path.read_text())
        except OSError as exc:
            raise SettingsError(f"cannot read {self.config_path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise SettingsError(f"{self.config_path} is not valid JSON: {exc}") from exc
        stages = config.get("stages", {})
        if self.stage_name not in stages:
            raise SettingsError(f"stage {self.stage_name!r} is not in {self.config_path} "
                                f"(have: {', '.join(sorted(stages)) or 'none'})")
        return config

    def _declared_variables(self, config: dict[str, Any]) -> dict[str, str]:
        stage = config["stages"][self.stage_name]
        return {**config.get("environment_variables", {}),
                **stage.get("environment_variables", {})}

    def read_config(self) -> dict[str, Any]:
        """The project's Chalice config with the command line's overrides applied.

        `--set` may only change a variable the stage declares: on AWS the functions see
        exactly the config's variables, so any other name is a typo here.
        """
        config = copy.deepcopy(self._project_config())
        declared = self._declared_variables(config)
        for name in self.overrides:
            if name not in declared:
                raise SettingsError(f"--set {name}: stage {self.stage_name!r} declares no such "
                                    f"variable{_did_you_mean(name, declared)} (declare a new "
                                    f"one in {self.config_path} first)")
        stage = config["stages"][self.stage_name]
        stage.setdefault("environment_variables", {}).update(self.overrides)
        functions = stage.setdefault("lambda_functions", {})
        for name, seconds in self.timeouts.items():
            functions.setdefault(name, {})["lambda_timeout"] = seconds
        return config

    def stage(self) -> Stage:
        try:
            return load_stage(self.stage_name, endpoint_url=self.endpoint_url,
                              config=self.read_config())
        except StageError as exc:
            raise SettingsError(str(exc)) from exc

    def check_functions(self, names: Iterable[str]) -> None:
        """Refuse a --timeout or --concurrency for a function the app does not have."""
        have = sorted(names)
        for option, values in (("--timeout", self.timeouts),
                               ("--concurrency", self.concurrency)):
            for name in values:
                if name not in have:
                    raise SettingsError(f"{option} {name}: the app has no function {name!r}"
                                        f"{_did_you_mean(name, have)} (it has: "
                                        f"{', '.join(have) or 'none'})")

    def applied_overrides(self) -> list[str]:
        """One line per override given on the command line, with the value it replaces."""
        config = self._project_config()
        declared = self._declared_variables(config)
        functions = load_stage(self.stage_name, endpoint_url=self.endpoint_url,
                               config=config).functions
        lines = [f"override: --set {name}={value} (stage value {declared.get(name)!r})"
                 for name, value in self.overrides.items()]
        for name, seconds in self.timeouts.items():
            was = functions.get(name, {}).get("lambda_timeout", DEFAULT_TIMEOUT_SECONDS)
            lines.append(f"override: --timeout {name}={seconds:g} s (stage value {was} s)")
        for name, count in self.concurrency.items():
            was = functions.get(name, {}).get("reserved_concurrency")
            lines.append(f"override: --concurrency {name}={count} (stage value: "
                         + (f"reserved_concurrency {was})" if was else "none, default "
                            f"{DEFAULT_CONCURRENCY} or the event source's maximum)"))
        return lines

    def timeout_warnings(self, stage: Stage) -> list[str]:
        """A function timeout changed here that its time-budget variable does not match."""
        warnings = []
        for function, variable in TIMEOUT_VARIABLES.items():
            if function not in self.timeouts and variable not in self.overrides:
                continue
            seconds = float(stage.functions.get(function, {}).get(
                "lambda_timeout", DEFAULT_TIMEOUT_SECONDS))
            value = stage.environment.get(variable)
            try:
                matches = value is not None and float(value) == seconds
            except ValueError:
                matches = False
            if not matches:
                warnings.append(
                    f"warning: {function} times out after {seconds:g} s but {variable} is "
                    f"{value!r}; the {function} plans its work by {variable}, so the two "
                    f"disagree (add --set {variable}={seconds:g})")
        return warnings

    def function(self, name: str, stage: Stage,
                 declared_concurrency: int | None = None) -> FunctionSettings:
        configured = stage.functions.get(name, {})
        concurrency = (self.concurrency.get(name) or configured.get("reserved_concurrency")
                       or declared_concurrency or DEFAULT_CONCURRENCY)
        return FunctionSettings(
            name=name,
            timeout_seconds=float(configured.get("lambda_timeout", DEFAULT_TIMEOUT_SECONDS)),
            memory_mb=int(configured.get("lambda_memory_size", DEFAULT_MEMORY_MB)),
            concurrency=max(1, int(concurrency)),
        )

    def app_environment(self, stage: Stage) -> dict[str, str]:
        """What app code sees: the stage's variables, the endpoint, stand-in credentials."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "LOCALSTACK_"))}
        env.update(stage.environment)
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": RUNTIME_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": RUNTIME_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": stage.region,
            "AWS_REGION": stage.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            # botocore's account-id endpoints are hosts moto does not serve (DynamoDB Streams).
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "PYTHONPATH": os.pathsep.join([str(self.project), str(RUNTIME_ROOT), *(
                os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if p)]),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def handler_environment(self, stage: Stage, function: FunctionSettings) -> dict[str, str]:
        """The app environment plus the variables Lambda sets for a function."""
        return {
            **self.app_environment(stage),
            "AWS_LAMBDA_FUNCTION_NAME": stage.function_name(function.name),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(function.timeout_seconds)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            # Tags the handlers' SDK calls, so injected faults hit them and nothing else.
            "AWS_SDK_UA_APP_ID": HANDLER_APP_ID,
        }


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_assignment(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise SettingsError(f"{what} must look like NAME=VALUE, got {text!r}")
    return name.strip(), value


def parse_positive(text: str, name: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}: not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name}: must be a positive number, got {text!r}")
    return value


def endpoint_from_environment() -> tuple[str, int]:
    """Host and port from AWS_ENDPOINT_URL, as other AWS tools would read it."""
    url = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if not url:
        return DEFAULT_HOST, DEFAULT_PORT
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise SettingsError(f"AWS_ENDPOINT_URL={url!r}: the local runtime serves plain "
                            "http://HOST:PORT")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise SettingsError(f"AWS_ENDPOINT_URL={url!r}: {exc}") from None
    return parts.hostname, port
