"""Exact built-in values from what a program hands the child's own code.

A program's classes may subclass ``int``, ``float`` and ``str`` and define comparisons
(``__lt__``, ``__eq__``...). Runtime code that compares, stores or uses such a value as it came
asks the program what the value is: an ``int`` subclass whose ``<`` lies passes
``concurrency < 1`` and then ``min(concurrency, free)``, and a thread budget built on it hands
out every thread asked for. So each value a program hands to runtime code (a count, a limit, a
timeout, an index, a name, a key) is turned, once and where it enters, into an exact ``int``,
``float``, ``bool`` or ``str``, and only that copy is compared, stored or used.

The conversions go by the value's real type (``type(v)``, which ``__class__`` cannot fake) and
read it through the built-in type's own slot (``int.__index__``, ``float.__float__``,
``str.__str__``), so no method of the program's class runs. Rendering is different: ``str()``
of a program object may run the program's code (the ``utcoffset`` of a ``tzinfo`` subclass,
the ``__lt__`` that a ``Counter``'s repr sorts with), which may raise anything, ``done()``
included. :func:`text` and :func:`error_payload` catch all of it and fall back to a stand-in
that cannot fail.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ... import errors
from . import _withheld

__all__ = ["error_payload", "plain_str", "seconds", "show", "text", "type_name", "whole_number"]

_SHOWN_CHARS = 40


def type_name(value: object) -> str:
    """The name of value's class, as an exact str; never raises and runs no program code."""
    name = type(value).__name__
    return str.__str__(name) if isinstance(name, str) else "object"


def whole_number(value: object, what: str) -> int:
    """Return value as an exact int; raise ValueError if it is not a whole number (or is a bool)."""
    kind = type(value)
    if kind is bool or not issubclass(kind, int):
        raise ValueError(f"{what} must be a whole number; got {show(value)}")
    return int.__index__(value)  # type: ignore[arg-type]


def seconds(value: object, what: str) -> float:
    """Return value (an int or a float, not a bool) as an exact float; else raise ValueError."""
    kind = type(value)
    if issubclass(kind, float):
        return float.__float__(value)  # type: ignore[arg-type]
    if kind is not bool and issubclass(kind, int):
        number = int.__index__(value)  # type: ignore[arg-type]
        try:
            return float(number)
        except OverflowError:  # more seconds than a float holds: no limit at all
            return math.inf
    raise ValueError(f"{what} must be a number of seconds; got {show(value)}")


def plain_str(value: object, what: str) -> str:
    """Return value as an exact str (a copy of a str subclass's text); else raise TypeError."""
    if not issubclass(type(value), str):
        raise TypeError(f"{what} must be a str, not {type_name(value)}")
    return str.__str__(value)


def show(value: object) -> str:
    """A short description of a program value for an error message; runs no program code."""
    kind = type(value)
    exact: object
    if value is None or kind in (bool, int, float, str):
        exact = value
    elif issubclass(kind, str):
        exact = str.__str__(value)
    elif issubclass(kind, int):
        exact = int.__index__(value)  # type: ignore[arg-type]
    elif issubclass(kind, float):
        exact = float.__float__(value)  # type: ignore[arg-type]
    else:
        return f"a {type_name(value)}"
    try:
        shown = repr(exact)
    except ValueError:  # an int too long to write as text
        shown = "a very large number"
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 3] + "..."
    return shown if kind is type(exact) else f"{shown} (a {type_name(value)})"


def text(value: object) -> str:
    """``str(value)`` as an exact str, or a stand-in naming its type if that fails; never raises.

    ``str()`` may run the program's code; whatever it raises (``done()``, a cancellation, a
    limit) is dropped here, because the caller is rendering, not running the program.
    """
    rendered = _render(value)
    return f"<{type_name(value)} object whose text could not be read>" if rendered is None else rendered


def _render(value: object) -> str | None:
    try:
        rendered = str(value)
        if isinstance(rendered, str):
            return str.__str__(rendered)
    except BaseException:  # rendering must not fail, whatever the program raised
        pass
    return None


def error_payload(
    exc: BaseException,
    *,
    line: int | None = None,
    source_line: str | None = None,
    names: Iterable[object] = (),
) -> dict[str, Any]:
    """The error payload (``ptcrun.errors.to_payload``) of an exception a program raised.

    Reading the exception may run the program's code (its message renders program objects,
    its class may name ``payload_fields`` of its own); whatever that raises or returns, the
    payload has an exact-str ``type`` and ``message`` and only JSON scalars in ``fields``.
    A NameError for a withheld or mistyped name is explained first (``_withheld.explain``,
    with ``names`` as the names the program could have meant).
    """
    _withheld.explain(exc, names)
    name = type_name(exc)
    try:
        payload = errors.to_payload(exc, line=line, source_line=source_line)
    except BaseException:  # a program's exception broke the payload: keep what cannot fail
        payload = {"message": _render(exc)}
        if line is not None:
            payload["line"] = line
        if source_line is not None:
            payload["source_line"] = source_line
    payload["type"] = name
    message = payload.get("message")
    if type(message) is not str:
        payload["message"] = (
            str.__str__(message) if isinstance(message, str)
            else f"<{name} whose message could not be read>"
        )
    fields = payload.get("fields")
    if fields is not None:
        if type(fields) is dict:
            payload["fields"] = {
                str.__str__(key): value
                for key, value in dict.items(fields)
                if isinstance(key, str) and (value is None or type(value) in (str, int, float, bool))
            }
        else:
            del payload["fields"]
    return payload
