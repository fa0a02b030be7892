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
dict or list subclass           dict or list (Counter, OrderedDict, defaultdict...)
``int`` dict key                its decimal text: ``{1: "a"}`` → ``{"1": "a"}``
subclass of str, int, float     the plain str, int or float (an enum member's value text)
attrs or dataclass instance     dict of its fields
==============================  ==========================================================

Everything else is refused with :class:`NotJSON`, which says where in the value the problem is
and how to fix it: NaN and infinities, other dict keys (``None``, ``float``, ``bool``,
``tuple``...), two keys that become the same text, bytes and other objects, a value that
contains itself, nesting deeper than :data:`MAX_DEPTH`, integers too long to write as text, and
strings holding a lone surrogate (``"\\ud800"``: no UTF-8 byte sequence can carry it).

Conversion never calls a method of the value itself (``dict.items(d)``, not ``d.items()``) and
goes by its real type (``type(v)``, which ``__class__`` cannot fake), so an object that lies
about itself cannot change what crosses. The sandbox child uses this module too: it imports
nothing beyond the standard library at module level.

Transcript events use :func:`for_event`: the same rule, except that a refused part of a value
is replaced by a stand-in instead of failing the whole event (values were converted by
:func:`to_json` where they crossed, so this only catches fields the runtime itself builds).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections import deque
from typing import Any, TypeAlias

__all__ = ["JSON", "MAX_DEPTH", "NotJSON", "dumps", "for_event", "to_json"]

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"

#: How deep lists and dicts may nest; deeper values are refused instead of exhausting the stack.
MAX_DEPTH = 100
#: Events hold values one level down (a call's ``args`` list), so they allow a little more.
_EVENT_DEPTH = MAX_DEPTH + 2

_SEQUENCES = (list, tuple, deque)
_SURROGATE = re.compile("[\ud800-\udfff]")
_PATH_CHARS = 80  # a path longer than this is shown by its end: the deep part is what matters


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
        where = f"{what} at {_shorten(path)}" if path else what
        super().__init__(f"{where} is {problem}, which JSON cannot carry; {fix}")


def _shorten(path: str) -> str:
    """A long path by its end, from a whole step on: ``...[0][0]['key']``."""
    if len(path) <= _PATH_CHARS:
        return path
    tail = path[-(_PATH_CHARS - 3) :]
    steps = [i for i in (tail.find("["), tail.find(".")) if i >= 0]
    return "..." + tail[min(steps, default=0) :]


def to_json(value: Any, *, what: str) -> JSON:
    """Return ``value`` converted by the module's rule, or raise :class:`NotJSON`.

    Args:
        value: what a program, a tool or a worker produced.
        what: the value's role, in the reader's words; it starts the error message.
    """
    return _Converter(what).convert(value, "", 0)


def for_event(value: Any) -> JSON:
    """Return ``value`` converted by the module's rule for a transcript event; never raise.

    Where :func:`to_json` would refuse a part of the value, that part is replaced: NaN and
    infinities by ``None`` (a limit of ``math.inf`` means no limit), a string's lone surrogates
    by U+FFFD, and anything else by the text ``"<not JSON: ...>"`` naming the problem. Nesting
    may go two levels deeper than :data:`MAX_DEPTH`, so that a value the rule let cross is
    written whole inside the list or dict of an event's field.
    """
    return _Converter("an event field", stand_ins=True, max_depth=_EVENT_DEPTH).convert(value, "", 0)


def dumps(value: JSON) -> str:
    """Compact JSON text of a value that :func:`to_json` returned (UTF-8 kept as is)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class _Refused(Exception):
    """A container was refused as a whole (a key, a set's order); its stand-in replaces it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _Converter:
    def __init__(self, what: str, *, stand_ins: bool = False, max_depth: int = MAX_DEPTH) -> None:
        self.what = what
        self.stand_ins = stand_ins
        self.max_depth = max_depth
        self.active: set[int] = set()  # containers on the current path: a cycle is refused

    def refuse(self, path: str, problem: str, fix: str) -> JSON:
        """Raise NotJSON; or, for events, return the stand-in of the refused part."""
        if self.stand_ins:
            return f"<not JSON: {problem}>"
        raise NotJSON(self.what, path, problem, fix)

    def convert(self, value: Any, path: str, depth: int) -> JSON:
        kind = type(value)
        if value is None or kind is bool:
            return value  # type: ignore[no-any-return]
        if kind is str:
            return self.text(value, path)
        if kind is int:
            return self.integer(value, path)
        if kind is float:
            return self.real(value, path)
        if issubclass(kind, str):
            return self.text(str.__str__(value), path)
        if issubclass(kind, int):  # bool cannot be subclassed, so this is an int subclass
            return self.integer(int.__index__(value), path)
        if issubclass(kind, float):
            return self.real(float.__float__(value), path)
        if depth >= self.max_depth:
            return self.refuse(path, f"nested deeper than {self.max_depth} levels", "flatten it")
        if id(value) in self.active:
            return self.refuse(path, "a value that contains itself", "break the cycle")
        self.active.add(id(value))
        try:
            return self.container(value, path, depth + 1)
        except _Refused as refused:  # only raised with stand_ins
            return f"<not JSON: {refused.problem}>"
        finally:
            self.active.discard(id(value))

    def text(self, value: str, path: str) -> JSON:
        if value.isascii():
            return value
        bad = _SURROGATE.search(value)
        if bad is None:
            return value
        if self.stand_ins:
            return _SURROGATE.sub("\ufffd", value)
        return self.refuse(
            path,
            f"a string with a lone surrogate ({bad.group()!a} at index {bad.start()})",
            "drop it, or replace it: text.encode('utf-8', 'replace').decode('utf-8')",
        )

    def integer(self, value: int, path: str) -> JSON:
        limit = sys.get_int_max_str_digits()
        if limit and value.bit_length() > limit * 3.32:  # quick bound, exact check below
            try:
                int.__repr__(value)
            except ValueError:
                return self.refuse(
                    path, f"an integer of more than {limit} digits", "send it as a string in parts"
                )
        return value

    def real(self, value: float, path: str) -> JSON:
        if not math.isfinite(value):
            if self.stand_ins:
                return None
            return self.refuse(path, f"the float {value!r}", "use None or a string such as 'inf'")
        return value

    def container(self, value: Any, path: str, depth: int) -> JSON:
        kind = type(value)
        if issubclass(kind, _SEQUENCES):
            base: Any = next(b for b in _SEQUENCES if issubclass(kind, b))
            items = base.__iter__(value)  # the base's own iterator: a subclass cannot lie
            return [self.convert(v, f"{path}[{i}]", depth) for i, v in enumerate(items)]
        if issubclass(kind, (set, frozenset)):
            base_set: Any = set if issubclass(kind, set) else frozenset
            items = base_set.__iter__(value)
            converted = [self.convert(v, f"{path}[{i}]", depth) for i, v in enumerate(items)]
            try:
                return sorted(converted)  # type: ignore[type-var]
            except TypeError:
                return self.refuse_whole(
                    path, "a set whose items cannot be sorted", "turn it into a list in the order you want"
                )
        if issubclass(kind, dict):
            return self.mapping(value, path, depth)
        fields = _fields(value)
        if fields is not None:
            return {n: self.convert(getattr(value, n), f"{path}.{n}", depth) for n in fields}
        return self.refuse(
            path,
            f"a value of type {type(value).__name__}",
            "convert it first, e.g. with str(), list() or dict()",
        )

    def refuse_whole(self, path: str, problem: str, fix: str) -> JSON:
        if self.stand_ins:
            raise _Refused(problem)
        return self.refuse(path, problem, fix)

    def mapping(self, value: dict[Any, Any], path: str, depth: int) -> JSON:
        out: dict[str, JSON] = {}
        for key, item in dict.items(value):
            if issubclass(type(key), str):
                text = self.text(str.__str__(key), path)
            elif issubclass(type(key), int) and type(key) is not bool:
                number = self.integer(int.__index__(key), path)
                text = int.__repr__(number) if type(number) is int else number
            else:
                return self.refuse_whole(
                    path,
                    f"a dict with a key of type {type(key).__name__} ({_show(key)})",
                    "use str keys, e.g. {str(k): v for k, v in d.items()}",
                )
            assert isinstance(text, str)
            if text in out:
                problem = f"a dict with two keys that both become {text!r}"
                return self.refuse_whole(path, problem, "rename one")
            out[text] = self.convert(item, f"{path}[{text!r}]", depth)
        return out


def _fields(value: Any) -> list[str] | None:
    """Field names of an attrs or dataclass instance (not of the class itself), else None."""
    cls = type(value)
    if issubclass(cls, type):
        return None
    found = getattr(cls, "__attrs_attrs__", None)
    if found is not None:
        return [a.name for a in found]
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return None


_SHOWN = (float, bytes, type(None), complex, bool, int, str)


def _show(value: Any) -> str:
    # Only built-in values are shown: a program's own __repr__ must not run here.
    shown = type(value) in _SHOWN or (
        type(value) in (tuple, frozenset) and all(type(v) in _SHOWN for v in value)
    )
    if not shown:
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
