"""The requests of a ``pmap(..., batch=True)``, checked on the host as ``tool.worker`` checks its
arguments, and what the batch engine keeps of each until its slot is filled.

The child sends each item's ``tool.worker`` call as ``[index, args, kwargs]``; it is not trusted,
so every part is checked here. A request whose arguments are wrong gets its slot's error at once
and is never sent.
"""

from __future__ import annotations

from typing import Any

import attrs

from .. import errors
from .._limits import Limits
from ._worker import check_worker_arguments, worker_prompt, worker_request
from .providers._base import Message, Request
from .providers._batches import Entry

__all__ = ["BatchRequest", "build_request"]

_PARAMS = ("text", "instruction", "schema", "max_tokens")


@attrs.define
class BatchRequest:
    """One item's worker request while its batch runs: its batch entry, encoded once, and what
    maps its result back to its slot.

    A fan-out of 100,000 requests holds 100,000 of these until its results are read, so each
    keeps only the bytes its batch's request body is made of (``body``), let go once the
    batch is submitted; the request is read back from them when the cache answers it instead.
    """

    index: int
    #: Its entry in a batch's request body (``custom_id`` ``i<index>``), while not yet submitted.
    body: Entry | None = None
    max_tokens: int = 0
    validator: Any = None
    #: Its input tokens, counted from its parts.
    tokens: int = 0
    #: The result cache's key (``request_key``).
    key: str = ""
    #: The slot's result, ``[index, ok, value, error]``, once known.
    entry: list[Any] | None = None
    #: Bytes its result takes on the way back to the child, about.
    size: int = 64


def build_request(
    entry: Any, limits: Limits
) -> tuple[BatchRequest, tuple[Request, tuple[str, str, Any]] | None]:
    """The checked request of ``[index, args, kwargs]``: its slot's record, and the request
    with its parts ``(text, instruction, schema)`` to count it from; ``None`` when its
    arguments are wrong (the slot holds the error).

    Raises:
        ToolError: the entry is not ``[index, args, kwargs]`` or names an item out of range:
            the child broke the protocol, and the whole batch is refused.
    """
    if (
        not isinstance(entry, list) or len(entry) != 3 or type(entry[0]) is not int
        or not isinstance(entry[1], list) or not isinstance(entry[2], dict)
    ):
        raise errors.ToolError("a batch request is not [index, args, kwargs]", tool="worker")
    index, args, kwargs = entry
    if not 0 <= index < limits.max_pmap_items:
        raise errors.ToolError(f"a batch request names item {index}, out of range", tool="worker")
    item = BatchRequest(index)
    try:
        bound = _bind(args, kwargs)
        text, instruction = bound["text"], bound["instruction"]
        schema, max_tokens = bound.get("schema"), bound.get("max_tokens")
        if not isinstance(text, str) or not isinstance(instruction, str):
            raise errors.ToolArgumentError("tool 'worker' takes text and instruction as str", tool="worker")
        if schema is not None and not isinstance(schema, dict):
            raise errors.ToolArgumentError("tool 'worker' takes schema as a dict", tool="worker")
        if max_tokens is not None and type(max_tokens) is not int:
            raise errors.ToolArgumentError("tool 'worker' takes max_tokens as an int", tool="worker")
        max_tokens, item.validator = check_worker_arguments(schema, max_tokens, limits)
    except errors.ToolArgumentError as exc:
        item.entry = [index, False, None, errors.to_payload(exc)]
        return item, None
    messages = (Message("user", worker_prompt(text, instruction, schema)),)
    item.max_tokens = max_tokens
    return item, (worker_request(messages, max_tokens), (text, instruction, schema))


def _bind(args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``tool.worker``'s arguments by name, as its signature binds them."""
    if len(args) > len(_PARAMS):
        raise errors.ToolArgumentError(
            f"tool 'worker' takes at most {len(_PARAMS)} positional arguments; got {len(args)}", tool="worker"
        )
    bound = dict(zip(_PARAMS, args, strict=False))
    for name, value in kwargs.items():
        if name not in _PARAMS:
            raise errors.ToolArgumentError(
                f"tool 'worker' got an unexpected argument {name!r}", tool="worker"
            )
        if name in bound:
            raise errors.ToolArgumentError(f"tool 'worker' got {name!r} twice", tool="worker")
        bound[name] = value
    for name in ("text", "instruction"):
        if name not in bound:
            raise errors.ToolArgumentError(f"tool 'worker' is missing the argument {name!r}", tool="worker")
    return bound
