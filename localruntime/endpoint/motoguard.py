"""What the moto patches expect of moto, checked before any of them is applied.

Each patch names the function it replaces and the parameters it expects that function to
have; `replaced` checks both, and the endpoint refuses to start with a clear message when
moto is not the version the patches were written for, or has changed shape.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

MOTO_VERSION = "5.2.5"  # the version in the lock file; the patches are written against it


class MotoMismatch(RuntimeError):
    """The installed moto is not what the local runtime's patches were written for."""


def check_version(installed: str | None = None) -> None:
    found = installed or importlib.metadata.version("moto")
    if found != MOTO_VERSION:
        raise MotoMismatch(
            f"the local runtime patches moto {MOTO_VERSION}, but moto {found} is installed: "
            "run `make install` to install the locked versions")


def replaced(owner: Any, name: str, parameters: tuple[str, ...]) -> Any:
    """`owner.name`, after checking that it exists and takes exactly `parameters`."""
    where = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', owner)}"
    original = inspect.getattr_static(owner, name, None)
    if original is None:
        raise MotoMismatch(f"{where}.{name} is gone: the local runtime's patch for it no "
                           f"longer fits moto {importlib.metadata.version('moto')}")
    function = getattr(owner, name)
    found = tuple(inspect.signature(function).parameters)
    if found != parameters:
        raise MotoMismatch(f"{where}.{name} takes {found}, but the local runtime's patch "
                           f"expects {parameters}")
    return function
