"""Type hints as checks on JSON values: the shared core of tool arguments and answer schemas.

A tool's parameters and a run's answer schema may be given as Python type hints. Values that
cross the sandbox boundary are JSON, so only hints a JSON value can match are supported:
``str``, ``int`` (``bool`` is not an int here), ``float`` (an int is accepted), ``bool``,
``None``, ``list``/``list[X]``/``Sequence[X]``, ``dict``/``dict[str, X]``/``Mapping[str, X]``,
``tuple[...]`` (a list is accepted and becomes a tuple), unions, ``Literal[...]`` of scalars, and
``Any``/``object``.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["Mismatch", "coerce", "type_name", "unsupported"]

_NoneType = type(None)
# get_args() of both is (), as of tuple[()] (the empty tuple): keep them apart.
_BARE_TUPLES = (tuple, typing.Tuple)  # noqa: UP006 - the value, not an annotation


def _is_union(origin: object) -> bool:
    return origin is Union or origin is types.UnionType


def unsupported(hint: Any) -> Any | None:
    """Return the part of ``hint`` no JSON value can match, or None when all of it is supported."""
    if hint in (Any, object, None, _NoneType, str, int, float, bool, list, dict, tuple):
        return None
    origin, args = get_origin(hint), get_args(hint)
    if _is_union(origin) or origin in (list, tuple, cabc.Sequence):
        return next((bad for a in args if a is not Ellipsis and (bad := unsupported(a))), None)
    if origin in (dict, cabc.Mapping):
        if args and args[0] is not str:
            return hint
        return unsupported(args[1]) if args else None
    if origin is Literal:
        scalar = (str, int, float, bool, _NoneType)
        return None if all(type(a) in scalar for a in args) else hint
    if hint in (cabc.Sequence, cabc.Mapping):
        return None
    return hint


def type_name(hint: Any) -> str:
    """Render a hint the way a person writes it: ``list[str]``, ``str | None``, ``Any``."""
    if hint is Any:
        return "Any"
    if hint is None or hint is _NoneType:
        return "None"
    origin, args = get_origin(hint), get_args(hint)
    if _is_union(origin):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        if not args:
            return f"{base}[()]" if origin is tuple and hint not in _BARE_TUPLES else base
        return f"{base}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


class Mismatch(Exception):
    """A value does not match its hint at ``path`` (``ids[1]``, ``filters['status']``)."""

    def __init__(self, path: str, value: object) -> None:
        super().__init__(path)
        self.path = path
        self.value = value


def _same_scalar(value: object, literal: object) -> bool:
    # Literal[1] must accept neither True nor 1.0: compare the type as well as the value.
    return type(value) is type(literal) and value == literal


def coerce(value: Any, hint: Any, path: str) -> Any:
    """Check ``value`` against ``hint``; return it, with lists made tuples where a tuple is hinted.

    Raises:
        Mismatch: at the deepest place where the value does not match.
    """
    if hint is Any or hint is object:
        if value is None or isinstance(value, (str, int, float)):  # bool is an int
            return value
        if isinstance(value, list):
            return [coerce(v, Any, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {_key(k, path, value): coerce(v, Any, f"{path}[{k!r}]") for k, v in value.items()}
        raise Mismatch(path, value)
    if hint is None or hint is _NoneType:
        ok = value is None
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    else:
        return _coerce_generic(value, hint, path)
    if not ok:
        raise Mismatch(path, value)
    return value


def _key(key: object, path: str, value: object) -> str:
    if not isinstance(key, str):
        raise Mismatch(path, value)
    return key


def _coerce_generic(value: Any, hint: Any, path: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if _is_union(origin):
        misses = []
        for member in args:
            try:
                return coerce(value, member, path)
            except Mismatch as miss:
                misses.append(miss)
        # The deepest miss names the item that is wrong, e.g. ids[1] under list[str] | None.
        raise max(misses, key=lambda m: len(m.path))
    if origin is Literal:
        if any(_same_scalar(value, lit) for lit in args):
            return value
        raise Mismatch(path, value)
    if hint in (list, cabc.Sequence) or origin in (list, cabc.Sequence):
        if not isinstance(value, list):
            raise Mismatch(path, value)
        item = args[0] if args else Any
        return [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint in _BARE_TUPLES or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise Mismatch(path, value)
        if hint in _BARE_TUPLES or (len(args) == 2 and args[1] is Ellipsis):
            item = Any if hint in _BARE_TUPLES else args[0]
            return tuple(coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise Mismatch(path, value)
        return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if hint in (dict, cabc.Mapping) or origin in (dict, cabc.Mapping):
        if not isinstance(value, dict):
            raise Mismatch(path, value)
        item = args[1] if args else Any
        return {_key(k, path, value): coerce(v, item, f"{path}[{k!r}]") for k, v in value.items()}
    raise Mismatch(path, value)  # unreachable for hints that passed unsupported
