"""The CPU sampler behind each run's host sidecar."""

from __future__ import annotations

import os
import time

from loadtest.runtime import CpuSampler


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_peak_is_never_below_the_mean_when_the_work_comes_after_the_last_sample() -> None:
    sampler = CpuSampler({"self": os.getpid()}, interval=0.3)
    sampler.start()
    burn(0.1)
    time.sleep(0.55)  # two samples pass with little work
    burn(0.25)  # most of the work, after the last periodic sample

    report = sampler.finish()

    assert report["self_cpu_seconds"] >= 0.35
    assert report["self_peak_cores"] >= report["self_mean_cores"] > 0
