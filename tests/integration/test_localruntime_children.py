"""Children of the runtime die with it, whichever of its threads asked for them."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest

from localruntime.children import spawn

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parent-death signal is Linux's")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_child_asked_for_by_a_short_lived_thread_outlives_that_thread() -> None:
    # GIVEN a child started on behalf of a thread that then ends (a timer, a retiring pool)
    children: list[subprocess.Popen[bytes]] = []
    asker = threading.Thread(target=lambda: children.append(spawn(SLEEPER)))
    asker.start()
    asker.join()
    child = children[0]
    try:
        # THEN it still runs: the kernel's signal follows the thread that forked it
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(1)
    finally:
        child.kill()
        child.wait()


def test_children_die_when_the_parent_is_killed_with_sigkill() -> None:
    # GIVEN a parent that started children through spawn, from its main thread and another
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import threading, time
        from localruntime.children import spawn
        SLEEPER = {SLEEPER!r}
        pids = [spawn(SLEEPER).pid]
        asker = threading.Thread(target=lambda: pids.append(spawn(SLEEPER).pid))
        asker.start(); asker.join()
        print(*pids, flush=True)
        time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    children = [psutil.Process(pid) for pid in pids]
    assert len(children) == 2 and all(child.is_running() for child in children)
    # WHEN the parent is killed outright
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # THEN its children are gone too
    _, alive = psutil.wait_procs(children, timeout=10)
    for straggler in alive:
        straggler.kill()
    assert alive == []
