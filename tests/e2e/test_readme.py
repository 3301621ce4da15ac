"""The README's commands work as written, in order, the way a newcomer runs them.

GIVEN a copy of the project (its tracked files, this checkout's .venv) holding the files
`make demo` writes, WHEN every command of the README's shell blocks after the quick start
runs in order, with the port override the README documents appended to each `make`
command, THEN each one exits 0. A command documented as "Ctrl-C stops it" is started in
the background and must come up; the same command later ("terminal 1") is the one already
running. Skipped, each with its reason: `make test` and `make test-fast` (this test is part
of them) and commands that need AWS credentials (no AWS account here).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localruntime.background import clean_environment, free_port
from localruntime.demo import write_samples
from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None
                                 or not (ROOT / ".git").exists(),
                                 reason="needs make and a git checkout")]

README = ROOT / "README.md"
SKIPPED = {
    "make test": "this test is part of `make test`",
    "make test-fast": "part of `make test`, which runs this test",
}
NEEDS_AWS = "needs AWS credentials and an account, which this test does not have"
SERVER_MARK = "Ctrl-C"
READY_SECONDS = 180.0
COMMAND_SECONDS = 600.0
DEFAULT_PORTS = {"4566": "PORT", "8000": "API_PORT"}


@dataclass(frozen=True)
class Command:
    text: str
    comment: str
    section: str

    @property
    def is_make(self) -> bool:
        return self.text.split()[:1] == ["make"]

    @property
    def serves(self) -> bool:
        """Documented as running until Ctrl-C: started in the background."""
        return SERVER_MARK in self.comment

    def skip_reason(self) -> str | None:
        if self.text in SKIPPED:
            return SKIPPED[self.text]
        words = self.text.split()
        needs_aws = ("AWS credentials" in self.comment or "STAGE=aws" in words
                     or (self.is_make and len(words) > 1 and words[1].endswith("-aws")))
        return NEEDS_AWS if needs_aws else None


def after_quick_start(readme: str) -> list[tuple[str, str]]:
    """(section, shell block) for every bash block after the quick start's section."""
    sections = re.split(r"^## ", readme, flags=re.MULTILINE)
    start = next(i for i, s in enumerate(sections) if s.startswith("Quick start")) + 1
    blocks = []
    for section in sections[start:]:
        title = section.splitlines()[0]
        blocks += [(title, block) for block in
                   re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", section,
                              flags=re.MULTILINE | re.DOTALL)]
    return blocks


def commands(readme: str) -> list[Command]:
    found = []
    for section, block in after_quick_start(readme):
        for line in block.replace("\\\n", " ").splitlines():
            match = re.fullmatch(r"(.*?)(?:\s+#\s*(.*))?", line)
            assert match is not None
            text, comment = match.group(1).strip(), match.group(2) or ""
            if text and not text.startswith("#"):
                found.append(Command(text, comment, section))
    return found


def port_override(readme: str) -> str:
    """The README says how to change ports: `PORT=... API_PORT=...` on a make command."""
    match = re.search(r"make \w+ (PORT=\d+ API_PORT=\d+)", readme)
    assert match, "the README does not say how to change ports (make local PORT=N API_PORT=N)"
    return match.group(1)


def copy_project(target: Path) -> Path:
    """The tracked files as they are in this checkout, and its .venv."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


class Server:
    """A command that serves until Ctrl-C, in its own process group."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.command, self.log = command, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while b"ready" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`{self.command}` did not come up:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        """Ctrl-C, as the README says; then the whole group if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    copy = copy_project(tmp_path / "project")
    write_samples(copy / "demo-data")  # what `make demo` leaves behind
    yield copy


def test_the_readme_commands_after_the_quick_start_work_as_written(
        project: Path, tmp_path: Path) -> None:
    readme = README.read_text()
    port, api_port = free_port(), free_port()
    override = {"PORT": str(port), "API_PORT": str(api_port)}
    documented = port_override(readme)
    appended = " ".join(f"{part.split('=')[0]}={override[part.split('=')[0]]}"
                        for part in documented.split())
    env = {**clean_environment(), "PYTHONPATH": str(project), "CI": os.environ.get("CI", "")}
    listed = commands(readme)
    assert any(c.serves for c in listed), "no command starts the local runtime"
    servers: dict[str, Server] = {}
    ran, skipped = [], []
    try:
        for number, command in enumerate(listed):
            if reason := command.skip_reason():
                skipped.append(f"{command.text}: {reason}")
                continue
            line = command.text
            if command.is_make:
                line = f"{line} {appended}"
            else:
                for default, name in DEFAULT_PORTS.items():
                    line = line.replace(f"127.0.0.1:{default}", f"127.0.0.1:{override[name]}")
            if command.serves or line in servers:
                if line not in servers:
                    servers[line] = Server(line, project, env, tmp_path / f"server-{number}.log")
                    servers[line].wait_ready()
                continue
            done = subprocess.run(["bash", "-c", line], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=COMMAND_SECONDS,
                                  stdin=subprocess.DEVNULL)
            assert done.returncode == 0, (
                f"README ({command.section}): `{line}` exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
            ran.append(line)
    finally:
        for server in servers.values():
            server.stop()
    print("ran:", *ran, "skipped:", *skipped, sep="\n  ")
    assert ran, "no README command ran"
    assert all(s.process.returncode is not None for s in servers.values())
