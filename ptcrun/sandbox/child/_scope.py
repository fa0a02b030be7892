"""Cancel scopes for pmap inside the child.

Each ``pmap`` opens a :class:`Scope` nested in the scope of the code that called it. Tool calls
register their request ids with the scope of the thread that makes them. Cancelling a scope
(timeout, ``fail_fast``, ``done()`` inside an item) marks it and every scope inside it cancelled,
and asks the host to cancel the calls still in flight, so they stop running and stop costing.
Code running in a cancelled scope gets ``Cancelled`` at its next tool call.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Scope", "current", "position", "recorder", "set_current", "set_recorder"]

_local = threading.local()


class Scope:
    """One pmap's cancel scope; ``deadline`` is on the ``time.monotonic`` clock."""

    def __init__(
        self,
        parent: Scope | None,
        *,
        deadline: float = math.inf,
        send_cancel: Callable[[list[int]], None],
    ) -> None:
        self.parent = parent
        if type(deadline) is not float:  # a clock takes only exact floats, never a program's number
            raise TypeError(f"a deadline is an exact float, not {type(deadline).__name__}")
        self.deadline: float = min(deadline, parent.deadline if parent else math.inf)
        self.cancelled = False
        self._children: list[Scope] = []
        self._calls: set[int] = set()
        self._lock = threading.Lock()
        self._send_cancel = send_cancel
        if parent is not None:
            parent._adopt(self)

    def _adopt(self, child: Scope) -> None:
        with self._lock:
            if self.cancelled:
                child.cancelled = True
            self._children.append(child)

    def register(self, call_id: int) -> None:
        with self._lock:
            self._calls.add(call_id)

    def unregister(self, call_id: int) -> None:
        with self._lock:
            self._calls.discard(call_id)

    def cancel(self) -> None:
        """Cancel this scope and every scope inside it; the host cancels their calls."""
        ids: list[int] = []
        stack = [self]
        while stack:
            scope = stack.pop()
            with scope._lock:
                scope.cancelled = True
                ids.extend(scope._calls)
                stack.extend(scope._children)
        if ids:
            self._send_cancel(sorted(ids))

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


def current() -> Scope | None:
    return getattr(_local, "scope", None)


def position() -> dict[str, Any]:
    """Where the calling thread is: the pmap id and item index, for the transcript."""
    return {"pmap": getattr(_local, "pmap", None), "item": getattr(_local, "item", None)}


def set_current(scope: Scope | None, pmap: int | None = None, item: int | None = None) -> None:
    _local.scope = scope
    _local.pmap = pmap
    _local.item = item


def recorder() -> Callable[[str, list[Any], dict[str, Any]], Any] | None:
    """What records the calling thread's tool calls instead of sending them (a batched pmap's
    function being run for its requests), or ``None``."""
    return getattr(_local, "recorder", None)


def set_recorder(record: Callable[[str, list[Any], dict[str, Any]], Any] | None) -> None:
    _local.recorder = record
