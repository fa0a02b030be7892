"""The sandbox: a confined child process that runs planner programs, and its host-side driver.

``Sandbox`` keeps one child alive across programs (REPL semantics); ``execute`` runs one program
in a fresh sandbox and returns. ``probe`` reports which confinement layers this machine gives
a child (as ``Layers``). See ``docs/security.md`` for what the sandbox guarantees.

Names are loaded on first use: the child process imports modules of this package and must not
pull in trio or the host-side driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ExecResult", "Failure", "Layers", "PmapError", "ProgramError", "Sandbox", "execute", "probe"]

_HOMES = {
    "ExecResult": "._results",
    "Failure": ".child._failure",
    "Layers": ".child._confine",
    "PmapError": ".child._failure",
    "ProgramError": "._results",
    "Sandbox": ".host._driver",
    "execute": ".host._driver",
    "probe": ".child._confine",
}

if TYPE_CHECKING:
    from ._results import ExecResult, ProgramError
    from .child._confine import Layers, probe
    from .child._failure import Failure, PmapError
    from .host._driver import Sandbox, execute


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ptcrun.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
