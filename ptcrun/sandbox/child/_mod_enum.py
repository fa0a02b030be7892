"""``enum`` for programs: the classes and helpers, never the metaclass.

A program's ``class Color(Enum)`` is built by the sandbox's class hook with enum's own
metaclass and namespace (see ``_mod_classes.build_class``); the metaclass itself (``EnumType``,
``EnumMeta``) is not served, and ``type(Color)`` refuses to name it.

The call form ``Enum("Color", "RED GREEN")`` asks ``sys._getframe`` for the caller's module name,
which the tripwire refuses to program code. enum already does without it where frames are
missing (the class is then marked as not picklable, which nothing in the sandbox needs), so its
frame lookup is adapted once, here, to answer as on such a Python: ``ValueError`` instead of
``PermissionError``. Elsewhere (the host's tests, the child's own code) frames work as before.
"""

from __future__ import annotations

import enum
import sys
import types
from typing import Any

__all__ = ["MEMBERS"]


def _getframe(depth: int = 0) -> types.FrameType:
    try:
        return sys._getframe(depth + 1)
    except PermissionError:
        raise ValueError("call stack is not available in the sandbox") from None


class _Sys:
    """What ``enum`` sees as ``sys``: the real module, with a frame lookup that may say no."""

    __slots__ = ()
    _getframe = staticmethod(_getframe)

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


if getattr(enum, "sys", None) is sys:
    enum.sys = _Sys()  # type: ignore[attr-defined, assignment]

#: What ``import enum`` serves.
MEMBERS: dict[str, object] = {
    name: getattr(enum, name)
    for name in ("Enum", "Flag", "IntEnum", "IntFlag", "StrEnum", "auto", "unique")
}
