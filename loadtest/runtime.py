"""Run one measurement command against a local runtime started and stopped here.

    python -m loadtest.runtime --kind load -- locust -f loadtest/upload.py --headless -u 8 -t 60s
    python -m loadtest.runtime --kind protocol -- python -m loadtest.protocol

The runtime (`python -m localruntime`) listens on a free 127.0.0.1 port; the command gets
AWS_ENDPOINT_URL, LOG_STAGE=local, LOADTEST_KIND and LOADTEST_OUTPUT (the raw CSV path,
`results/raw/<kind>-local-<UTC stamp>.csv`) in its environment, and `{output_stem}` in its
arguments is replaced by that path without `.csv`. The pipeline must first complete a
canary file. While the command runs, the CPU used by the runtime's processes and by the
command's processes is sampled; both go into `<output>.host.json` with the machine's
description. The runtime's own output goes to `<output>.runtime.log`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from loadtest.samples import KINDS, RAW_RESULTS_DIR, results_path
from logctl.stage import client, load_stage, session_for
from measure.host import update_host_file
from measure.payloads import build_payload
from measure.probe import PipelineProbe

STOP_GRACE_SECONDS = 15.0


class RuntimeStartError(Exception):
    """The local runtime did not come up, or its pipeline never completed the canary file."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_runtime(port: int, log_path: Path,
                  extra_args: list[str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "localruntime", "--port", str(port), "--no-reload",
             "--no-status", *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def wait_until_ready(endpoint: str, runtime: subprocess.Popen[bytes], log_path: Path,
                     timeout: float) -> float:
    """Poll until a canary file completes end to end; returns the seconds it took."""
    stage = load_stage("local", endpoint_url=endpoint)
    session = session_for(stage)
    probe = PipelineProbe(client(stage, "s3", session), client(stage, "dynamodb", session),
                          bucket=stage.bucket, table=stage.results_table, timeout=5.0)
    canary = build_payload(10)
    started = time.monotonic()
    attempt = 0
    last = "no answer yet"
    while time.monotonic() - started < timeout:
        if runtime.poll() is not None:
            raise RuntimeStartError(f"the local runtime exited with status {runtime.returncode}"
                                    f":\n{_log_tail(log_path)}")
        attempt += 1
        try:
            m = probe.measure(canary, f"logs/canary/{os.getpid()}-{attempt}.ndjson")
        except (BotoCoreError, ClientError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if m.ok:
                return time.monotonic() - started
            last = m.reason
        time.sleep(0.25)
    raise RuntimeStartError(f"the local runtime was not ready after {timeout:g}s ({last}); "
                            f"its log ends with:\n{_log_tail(log_path)}")


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process we started and the children it started, by pid."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_GRACE_SECONDS)
    alive = [c for c in children if c.is_running()]
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, still = psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)
    for child in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def process_role(cmdline: list[str]) -> str:
    """Name a runtime process by what it runs: the endpoint, a function's handler, or the rest."""
    if "localruntime.endpoint.server" in cmdline:
        return "endpoint"
    if "localruntime.functions.worker" in cmdline and "--function" in cmdline:
        index = cmdline.index("--function") + 1
        if index < len(cmdline):
            return f"handler {cmdline[index]}"
    return "runtime"


@dataclass
class _Tree:
    """CPU seconds used by a process and its descendants since the first sample, by role."""

    root: int
    seen: dict[int, float] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    by_role: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    peak_cores: float = 0.0

    def _totals(self) -> dict[int, float]:
        try:
            root = psutil.Process(self.root)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        totals = {}
        for proc in processes:
            try:
                times = proc.cpu_times()
                if proc.pid not in self.roles:
                    self.roles[proc.pid] = process_role(proc.cmdline())
            except psutil.Error:
                continue
            totals[proc.pid] = times.user + times.system
        return totals

    def baseline(self) -> None:
        self.seen = self._totals()

    def sample(self, interval: float) -> None:
        totals = self._totals()
        used = 0.0
        for pid, total in totals.items():
            delta = total - self.seen.get(pid, 0.0)
            role = self.roles.get(pid, "runtime")
            self.by_role[role] = self.by_role.get(role, 0.0) + delta
            used += delta
        self.seen.update(totals)
        self.cpu_seconds += used
        self.peak_cores = max(self.peak_cores, used / interval)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuSampler(threading.Thread):
    """Samples, once a second, the CPU time used by process trees and by the machine."""

    def __init__(self, trees: dict[str, int], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.trees = {name: _Tree(pid) for name, pid in trees.items()}
        self.interval = interval
        self._stop_event = threading.Event()
        self.started_at = time.monotonic()
        self._last_sample = self.started_at
        self.machine_busy_at_start = _busy_seconds()
        for tree in self.trees.values():
            tree.baseline()

    def _sample(self) -> None:
        now = time.monotonic()
        for tree in self.trees.values():
            tree.sample(max(now - self._last_sample, 1e-6))
        self._last_sample = now

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._sample()

    def finish(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join()
        self._sample()
        wall = time.monotonic() - self.started_at
        report: dict[str, Any] = {"cpu_window_seconds": round(wall, 3)}
        for name, tree in self.trees.items():
            report[f"{name}_cpu_seconds"] = round(tree.cpu_seconds, 3)
            report[f"{name}_mean_cores"] = round(tree.cpu_seconds / wall, 3) if wall else 0.0
            report[f"{name}_peak_cores"] = round(tree.peak_cores, 3)
        runtime = self.trees.get("runtime")
        if runtime is not None and wall:
            report["runtime_roles_mean_cores"] = {
                role: round(seconds / wall, 3) for role, seconds in sorted(runtime.by_role.items())}
        busy = _busy_seconds() - self.machine_busy_at_start
        ours = sum(tree.cpu_seconds for tree in self.trees.values())
        report["machine_mean_cores"] = round(busy / wall, 3) if wall else 0.0
        report["other_mean_cores"] = round(max(0.0, busy - ours) / wall, 3) if wall else 0.0
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=KINDS, required=True, help="run kind for the CSV name")
    parser.add_argument("--port", type=int, default=0, help="runtime port (default: a free one)")
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--results-dir", default=str(RAW_RESULTS_DIR),
                        help="where the raw files go (default %(default)s)")
    parser.add_argument("--runtime-args", default="",
                        help="extra arguments for python -m localruntime, e.g. "
                        "'--concurrency worker=4'")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then the command to run against the runtime")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    output = results_path(Path(args.results_dir), args.kind, "local")
    stem = str(output.with_suffix(""))
    command = [part.replace("{output_stem}", stem) for part in command]
    log_path = output.with_suffix(".runtime.log")
    port = args.port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"runtime: starting the local runtime on {endpoint} (log: {log_path})", flush=True)
    runtime = start_runtime(port, log_path, shlex.split(args.runtime_args))
    try:
        ready_after = wait_until_ready(endpoint, runtime, log_path, args.ready_timeout)
        print(f"runtime: pipeline ready after {ready_after:.1f}s; running: {' '.join(command)}",
              flush=True)
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "LOG_STAGE": "local",
               "LOADTEST_KIND": args.kind, "LOADTEST_OUTPUT": str(output)}
        try:
            child = subprocess.Popen(command, env=env)
        except OSError as exc:
            print(f"runtime: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        sampler = CpuSampler({"runtime": runtime.pid, "loadgen": child.pid})
        sampler.start()
        try:
            code = child.wait()
        except KeyboardInterrupt:
            child.terminate()
            code = child.wait()
        usage = sampler.finish()
        if output.exists():
            update_host_file(output, {"stage": "local", "endpoint": endpoint,
                                      "runtime_args": args.runtime_args, **usage})
        print(f"runtime: CPU while measuring: runtime {usage['runtime_mean_cores']:.2f} cores, "
              f"load generator {usage['loadgen_mean_cores']:.2f}, other processes "
              f"{usage['other_mean_cores']:.2f} (of {os.cpu_count()})", flush=True)
        return code
    except RuntimeStartError as exc:
        print(f"runtime: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stop_process_tree(runtime)
        print("runtime: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
