"""The one rule for values that cross a boundary: tool arguments and results, worker results,
``done()`` answers and transcript events.

A value crosses as JSON data: ``str``, ``int``, finite ``float``, ``bool``, ``None``, ``list`` and
``dict`` with ``str`` keys. A few everyday Python values are converted, always the same way, so
the program, the transcript and a replay all see the same thing:

==============================  ==========================================================
what a program or tool gives    what crosses
==============================  ==========================================================
tuple, deque, namedtuple        list
set, frozenset                  sorted list (refused when the items cannot be sorted)
dict subclass (Counter, ...)    dict
``int`` dict key                its decimal text: ``{1: "a"}`` → ``{"1": "a"}``
subclass of str, int, float     the plain str, int or float (an enum member's value text)
attrs or dataclass instance     dict of its fields
==============================  ==========================================================

Everything else is refused with :class:`NotJSON`, which says where in the value the problem is
and how to fix it: NaN and infinities, other dict keys, two keys that become the same text,
bytes and other objects, a value that contains itself, nesting deeper than :data:`MAX_DEPTH`,
and integers too long to write as text.

Conversion never calls a method of the value itself (``dict.items(d)``, not ``d.items()``), so
an object that lies about itself cannot change what crosses. The sandbox child uses this module
too: it imports nothing beyond the standard library at module level.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections import deque
from typing import Any, TypeAlias

__all__ = ["JSON", "MAX_DEPTH", "NotJSON", "dumps", "to_json"]

JSON: TypeAlias = "None | bool | int | float | str | list[JSON] | dict[str, JSON]"

#: How deep lists and dicts may nest; deeper values are refused instead of exhausting the stack.
MAX_DEPTH = 100

_SEQUENCES = (list, tuple, deque)


class NotJSON(ValueError):
    """A value cannot cross a boundary as JSON.

    Attributes:
        what: the value's role, e.g. ``"the answer given to done()"``.
        path: where in the value, e.g. ``"['totals'][3]"`` (empty for the value itself).
        problem: what was found there.
        fix: how to change the value so it crosses.
    """

    def __init__(self, what: str, path: str, problem: str, fix: str) -> None:
        self.what = what
        self.path = path
        self.problem = problem
        self.fix = fix
        where = f"{what} at {path}" if path else what
        super().__init__(f"{where} is {problem}, which JSON cannot carry; {fix}")


def to_json(value: Any, *, what: str) -> JSON:
    """Return ``value`` converted by the module's rule, or raise :class:`NotJSON`.

    Args:
        value: what a program, a tool or a worker produced.
        what: the value's role, in the reader's words; it starts the error message.
    """
    return _Converter(what).convert(value, "", 0)


def dumps(value: JSON) -> str:
    """Compact JSON text of a value that :func:`to_json` returned (UTF-8 kept as is)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class _Converter:
    def __init__(self, what: str) -> None:
        self.what = what
        self.active: set[int] = set()  # containers on the current path: a cycle is refused

    def refuse(self, path: str, problem: str, fix: str) -> NotJSON:
        return NotJSON(self.what, path, problem, fix)

    def convert(self, value: Any, path: str, depth: int) -> JSON:
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value  # type: ignore[no-any-return]
        if kind is int:
            return self.integer(value, path)
        if kind is float:
            return self.real(value, path)
        if isinstance(value, bool):  # bool cannot be subclassed; kept for the checker
            return bool(value)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            return self.integer(int.__index__(value), path)
        if isinstance(value, float):
            return self.real(float.__float__(value), path)
        if depth >= MAX_DEPTH:
            raise self.refuse(path, f"nested deeper than {MAX_DEPTH} levels", "flatten it")
        if id(value) in self.active:
            raise self.refuse(path, "a value that contains itself", "break the cycle")
        self.active.add(id(value))
        try:
            return self.container(value, path, depth + 1)
        finally:
            self.active.discard(id(value))

    def integer(self, value: int, path: str) -> int:
        limit = sys.get_int_max_str_digits()
        if limit and value.bit_length() > limit * 3.32:  # quick bound, exact check below
            try:
                int.__repr__(value)
            except ValueError:
                raise self.refuse(
                    path, f"an integer of more than {limit} digits", "send it as a string in parts"
                ) from None
        return value

    def real(self, value: float, path: str) -> float:
        if not math.isfinite(value):
            raise self.refuse(path, f"the float {value!r}", "use None or a string such as 'inf'")
        return value

    def container(self, value: Any, path: str, depth: int) -> JSON:
        if isinstance(value, _SEQUENCES):
            base: Any = next(b for b in _SEQUENCES if isinstance(value, b))
            items = base.__iter__(value)  # the base's own iterator: a subclass cannot lie
            return [self.convert(v, f"{path}[{i}]", depth) for i, v in enumerate(items)]
        if isinstance(value, (set, frozenset)):
            base_set: Any = set if isinstance(value, set) else frozenset
            converted = [self.convert(v, f"{path}[{i}]", depth) for i, v in enumerate(base_set.__iter__(value))]
            try:
                return sorted(converted)  # type: ignore[type-var]
            except TypeError:
                raise self.refuse(
                    path, "a set whose items cannot be sorted", "turn it into a list in the order you want"
                ) from None
        if isinstance(value, dict):
            return self.mapping(value, path, depth)
        fields = _fields(value)
        if fields is not None:
            return {n: self.convert(getattr(value, n), f"{path}.{n}", depth) for n in fields}
        raise self.refuse(
            path,
            f"a value of type {type(value).__name__}",
            "convert it first, e.g. with str(), list() or dict()",
        )

    def mapping(self, value: dict[Any, Any], path: str, depth: int) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        for key, item in dict.items(value):
            if type(key) is str:
                text = key
            elif isinstance(key, int) and not isinstance(key, bool):
                text = int.__repr__(self.integer(int.__index__(key), path))
            elif isinstance(key, str):
                text = str.__str__(key)
            else:
                raise self.refuse(
                    path,
                    f"a dict with a key of type {type(key).__name__} ({_show(key)})",
                    "use str keys, e.g. {str(k): v for k, v in d.items()}",
                )
            if text in out:
                raise self.refuse(path, f"a dict with two keys that both become {text!r}", "rename one")
            out[text] = self.convert(item, f"{path}[{text!r}]", depth)
        return out


def _fields(value: Any) -> list[str] | None:
    """Field names of an attrs or dataclass instance (not of the class itself), else None."""
    if isinstance(value, type):
        return None
    cls = type(value)
    found = getattr(cls, "__attrs_attrs__", None)
    if found is not None:
        return [a.name for a in found]
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return None


def _show(value: Any) -> str:
    # Only built-in values are shown: a program's own __repr__ must not run here.
    if type(value) not in (float, bytes, tuple, type(None), complex, frozenset):
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
