"""Run a bench module's `measure(sizes)` in a fresh interpreter with some of
`localruntime.endpoint.motospeed`'s speed-ups switched off, so each variant patches moto
once and alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_variant(module: str, off: str, sizes: list[int]) -> dict[str, Any]:
    """`module.measure(sizes)` with the speed-ups named in `off` (comma-separated; "" for
    none) switched off."""
    code = ("import json, sys; from localruntime.endpoint import motospeed; "
            "motospeed.apply(motospeed.switched_off(sys.argv[1])); "
            f"from {module} import measure; "
            "print(json.dumps(measure([int(n) for n in sys.argv[2].split(',')])))")
    done = subprocess.run([sys.executable, "-c", code, off, ",".join(map(str, sizes))],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))
