"""Read one JSON event back into its schema class: upgrade an older version, check every field.

The reader of a transcript trusts nothing it reads: a file may have been edited, cut or written
by another program. Each event is checked against its class's annotations (``bool`` is not an
``int``, numbers are finite, ``JSON`` fields hold JSON data) before the class is built, so the
records built from the objects can rely on their types. An event of an older schema version is
first brought to the current one by the upgrades at the end of this module.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._json import MAX_DEPTH
from ._schema import EVENT_TYPES, SCHEMA_VERSION, AnyJSON, Event, describe_type, event_fields

__all__ = ["parse_event"]


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON fits a field's hint (``bool`` is not an ``int`` here)."""
    if hint is AnyJSON:
        return _is_json(value, 0)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Sequence:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is Mapping:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    raise TypeError(f"no rule to check the type {hint!r}")


def _is_json(value: Any, depth: int) -> bool:
    """Whether ``value`` is JSON data as ptcrun writes it (finite numbers, str keys)."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, list):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


_Check = tuple[str, Any, bool]  # field name, its hint, whether an event must carry it
_CHECKS: dict[type[Event], tuple[_Check, ...]] = {
    cls: tuple(
        (name, hint, attrs.fields_dict(cls)[name].default is attrs.NOTHING)
        for name, hint in event_fields(cls).items()
    )
    for cls in EVENT_TYPES.values()
}


def parse_event(data: Mapping[str, Any]) -> Event | None:
    """Build the event object for one JSON event; ``None`` for a type this ptcrun does not know.

    The caller checks that ``v`` is a version this ptcrun reads and that ``type`` is a string.
    An event of an older version is upgraded first. A type added later within the same schema
    version is skipped rather than misread, and so are fields this ptcrun does not know.

    Raises:
        ValueError: the event lacks a field its type needs, or a field has the wrong type; the
            message names the field, the value and the type it should have.
    """
    for version in range(data["v"], SCHEMA_VERSION):
        upgrade = _UPGRADES.get(version)
        if upgrade is None:
            raise ValueError(f"has v={data['v']}, a schema version ptcrun never wrote")
        data = upgrade(data)
    cls = EVENT_TYPES.get(data["type"])
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for name, hint in (("span", str), ("parent", str | None), ("ts", float)):
        values[name] = _checked(data, name, hint)
    for name, hint, required in _CHECKS[cls]:
        if name in data:
            values[name] = _checked(data, name, hint)
        elif required:
            raise ValueError(f"has no {name!r} field, which every {cls.type} event has")
    return cls(**values)


def _checked(data: Mapping[str, Any], name: str, hint: Any) -> Any:
    value = data.get(name)
    if not _fits(value, hint):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(f"has {name}={shown}, which is not {describe_type(hint)}")
    return value


# -- older versions --------------------------------------------------------------------------


def _error_text_as_payload(text: Any) -> Any:
    # Version 1 wrote an LLM request's error as "ProviderError: overloaded".
    if not isinstance(text, str):
        return text
    kind, sep, message = text.partition(": ")
    return {"type": kind, "message": message} if sep else {"type": "Error", "message": text}


def _item_error_as_payload(text: Any) -> Any:
    # Version 1 wrote a pmap item's error as "Failure(item 2: ToolError: ...)" or "cancelled".
    if not isinstance(text, str):
        return text
    if text == "cancelled":
        return {"type": "Cancelled", "message": "cancelled"}
    if text.startswith("Failure(item ") and text.endswith(")"):
        text = text[len("Failure(item ") : -1].partition(": ")[2]
    return _error_text_as_payload(text)


def _program_error_as_payload(error: Any) -> Any:
    # Version 1 wrote a program's error as {"kind", "message", "line", "source_line"}.
    if not isinstance(error, dict) or "kind" not in error:
        return error
    payload = {"type": error["kind"], "message": error.get("message")}
    payload.update({k: error[k] for k in ("line", "source_line") if error.get(k) is not None})
    return payload


def _from_v1(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if data["type"] == "llm.end" and "error" in data:
        return {**data, "v": 2, "error": _error_text_as_payload(data["error"])}
    if data["type"] == "program.end" and "error" in data:
        return {**data, "v": 2, "error": _program_error_as_payload(data["error"])}
    if data["type"] == "item.end" and "error" in data:
        return {**data, "v": 2, "error": _item_error_as_payload(data["error"])}
    return {**data, "v": 2}


#: The upgrade of an event from each older version to the next; append one per new version.
_UPGRADES: dict[int, Callable[[Mapping[str, Any]], Mapping[str, Any]]] = {1: _from_v1}
