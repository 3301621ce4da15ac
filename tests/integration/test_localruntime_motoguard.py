"""The moto patches refuse to start on a moto they were not written for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from localruntime.endpoint import motofixes, motoguard, motospeed
from localruntime.endpoint.motoguard import MotoMismatch, check_version, replaced

ROOT = Path(__file__).resolve().parents[2]


def fake_moto_distribution(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment in which moto's installed metadata says `version` (the code is unchanged)."""
    info = tmp_path / f"moto-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: moto\nVersion: {version}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def test_the_locked_version_passes_and_any_other_is_refused_with_what_to_do() -> None:
    check_version()
    with pytest.raises(MotoMismatch, match=r"moto 5\.2\.5, but moto 5\.3\.0 .*make install"):
        check_version("5.3.0")


def test_a_replaced_function_with_another_shape_is_refused() -> None:
    class Backend:
        def put_item(self, table_name: str, item: dict) -> None: ...

    assert replaced(Backend, "put_item", ("self", "table_name", "item")) is Backend.put_item
    with pytest.raises(MotoMismatch, match=r"put_item takes \('self', 'table_name', 'item'\)"):
        replaced(Backend, "put_item", ("self", "table_name", "item_attrs"))
    with pytest.raises(MotoMismatch, match="delete_item is gone"):
        replaced(Backend, "delete_item", ("self",))


def test_every_patch_fits_the_installed_moto() -> None:
    code = ("from localruntime.endpoint import motofixes, motospeed; "
            "motospeed.apply(); motofixes.apply()")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert motofixes.apply and motospeed.apply and motoguard.MOTO_VERSION


def test_the_endpoint_started_with_another_moto_exits_with_a_clear_message(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "localruntime.endpoint.server", "--port", "1"],
                          cwd=ROOT, env=fake_moto_distribution(tmp_path, "5.1.0"),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "endpoint: the local runtime patches moto 5.2.5, but moto 5.1.0 is installed" in (
        done.stderr)


def test_the_runtime_started_with_another_moto_refuses_before_starting_anything(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "localruntime", "--port", "1"],
                          cwd=ROOT, env=fake_moto_distribution(tmp_path, "5.1.0"),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert "moto 5.1.0 is installed: run `make install`" in done.stdout + done.stderr


def test_the_patches_expect_the_moto_the_lock_file_pins() -> None:
    pins = re.findall(r"^moto==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert pins == [motoguard.MOTO_VERSION]
