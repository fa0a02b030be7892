"""What a failed pmap item leaves: a :class:`Failure` in its slot, or a :class:`PmapError`.

Both kinds of pmap fill their slots with these, the threaded one (``_pmap``) and the batched one
(``_batch``), and both send each failure's error payload in its item's ``item.end`` event
(:func:`event_error`). Programs name both classes (they are host names, and ``ptcrun.sandbox``
exports them for users), and ``copy`` hands a ``Failure`` back as it is.
"""

from __future__ import annotations

from typing import Any

from ... import errors
from . import _exact
from ._host_api import Cancelled

__all__ = ["Failure", "PmapError", "event_error"]

#: An item's error message is cut to this many characters in its ``item.end`` event.
_EVENT_MESSAGE_CHARS = 2_000


class Failure:
    """The value in a pmap slot whose item failed or timed out. It is falsy.

    Its ``kind`` and ``message`` are the ``type`` and ``message`` of the exception's error
    payload (``ptcrun.errors.to_payload``), and the whole payload goes to the host in the item's
    ``item.end`` event. A program may build one too; its fields are then exact copies of
    what it passed (a whole number and two strings).

    Attributes:
        index: the item's position in the input.
        kind: the exception's class name (``"ToolError"``, ``"TimeLimitExceeded"``, ...).
        message: what went wrong.
    """

    __slots__ = ("_payload", "index", "kind", "message")
    index: int
    kind: str
    message: str
    _payload: dict[str, Any]

    def __init__(self, index: int, kind: str, message: str) -> None:
        index = _exact.whole_number(index, "Failure index")
        kind = _exact.plain_str(kind, "Failure kind")
        message = _exact.plain_str(message, "Failure message")
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "_payload", {"type": kind, "message": message})

    @classmethod
    def from_exception(cls, index: int, exc: BaseException) -> Failure:
        payload = _exact.error_payload(exc)
        failure = cls(index, payload["type"], payload["message"])
        object.__setattr__(failure, "_payload", payload)
        return failure

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Failure is read-only")

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Failure(item {self.index}: {self.kind}: {self.message})"

    __str__ = __repr__


class PmapError(Exception):
    """Raised by ``pmap(..., fail_fast=True)`` at the first failure.

    Attributes:
        failure: the :class:`Failure` that stopped the fan-out.
        results: one slot per item: the value of items that finished, ``None`` for the rest.
    """

    def __init__(self, failure: Failure, results: list[Any], done: int) -> None:
        super().__init__(
            f"item {failure.index} failed: {failure.kind}: {failure.message} "
            f"({done} of {len(results)} items done; the rest were cancelled)"
        )
        self.failure = failure
        self.results = results

def event_error(failed: Failure | Cancelled) -> dict[str, Any]:
    """The error payload of an item's ``item.end`` event, its message cut to fit a frame."""
    payload = dict(failed._payload) if isinstance(failed, Failure) else errors.to_payload(failed)
    message = payload["message"]
    if len(message) > _EVENT_MESSAGE_CHARS:
        payload["message"] = message[: _EVENT_MESSAGE_CHARS - 20] + " … (cut)"
    return payload
