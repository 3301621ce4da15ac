"""The environment holds exactly what requirements.lock pins, and the lock covers the inputs."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    return {_normal(n): v for n, v in PIN.findall((ROOT / name).read_text())}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_locked_package_is_installed_at_its_locked_version() -> None:
    wrong = {}
    for name, version in pins("requirements.lock").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert wrong == {}


def test_every_direct_requirement_is_pinned_exactly_and_locked_at_that_version() -> None:
    locked = pins("requirements.lock")
    for name in ("requirements.txt", "requirements-dev.in"):
        lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
        direct = [line for line in lines if line]
        assert all("==" in line for line in direct), name
        for package, version in pins(name).items():
            assert locked.get(package) == version, (name, package)
