"""Every command's usage line names the command a user types, never a file like provision.py."""

from __future__ import annotations

import importlib

import pytest

MODULES = ("logctl.provision", "logctl.generate", "logctl.upload", "logctl.results",
           "logctl.dlq", "logctl.faults", "chalicelib.summarize", "analysis", "analysis.compact",
           "loadtest.protocol", "loadtest.runtime", "localruntime")


@pytest.mark.parametrize("module", MODULES)
def test_help_names_the_module_to_run(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    entry = importlib.import_module(module if "." in module else f"{module}.__main__")

    with pytest.raises(SystemExit) as exit_:
        entry.main(["--help"])

    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {module} ")
