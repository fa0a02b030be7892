"""``pmap(fn, items, batch=True)``: each item's function returns one worker call, sent in a batch.

A provider's batch engine answers every request at once, at the end, so an item's function
cannot wait for its answer and do more with it. The function is run once per item, in the child,
with tool calls recorded instead of sent (``_scope.set_recorder``), and it must return its one
``tool.worker(...)`` call's answer as it is; another tool, a second worker call, using the answer
or a pmap of its own is refused with a ``ValueError`` that says what to do instead. The requests
go to the host in frames of a few MiB through the internal call ``_batch``, which a program
cannot name; the host checks, reserves and submits them, and the results are read back in parts
into the pmap's slots.

It shares with the threaded pmap (``_pmap``) only the pmap's number, its clock and its events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from ... import errors
from .. import _protocol
from . import _scope
from ._failure import Failure, event_error
from ._host_api import Cancelled
from ._link import Pending

__all__ = ["BatchedPmap", "refuse_a_fan_out_inside"]


class BatchedPmap:
    """Runs the program's ``pmap(..., batch=True)`` for one child."""

    def __init__(
        self,
        *,
        send: Callable[[_protocol.Frame], None],
        open_request: Callable[[], Pending] | None,
        ids: Iterator[int],
        default_timeout: float,
    ) -> None:
        self._send = send
        self._open_request = open_request
        self._ids = ids  # the child's pmaps share one count, batched or not
        self._default_timeout = default_timeout

    def _send_cancel(self, ids: list[int]) -> None:
        self._send(_protocol.Cancel(ids))

    def run(self, fn: Callable[[Any], Any], items: list[Any], clock_seconds: float) -> list[Any]:
        """``pmap(fn, items, batch=True)``: collect each item's worker request, submit them to the
        host's batch engine, wait for it within the pmap's clock, and fill the slots."""
        if self._open_request is None:
            raise errors.ToolError("pmap(batch=True) is not available here", tool="worker")
        parent = _scope.current()
        outer = _scope.position()
        scope = _scope.Scope(
            parent, deadline=time.monotonic() + clock_seconds, send_cancel=self._send_cancel
        )
        pmap_id = next(self._ids)
        self._send(
            _protocol.PmapStart(
                pmap=pmap_id, total=len(items), concurrency=1, parent_pmap=outer["pmap"],
                parent_item=outer["item"],
            )
        )
        results: list[Any] = [None] * len(items)
        sent: list[int] = []
        timed_out = False
        try:
            requests = self._collect(fn, items, scope, pmap_id, results)
            sent = [index for index, _, _ in requests]
            if requests:
                timed_out = not self._submit(requests, scope, pmap_id, results)
        except Exception as failed:
            if sent:
                # The batch failed as a whole (the budget refused it, the provider failed):
                # each request without an answer failed with it, and is counted so even if
                # the program catches the error and goes on.
                for index in sent:
                    if results[index] is None:
                        results[index] = Failure.from_exception(index, failed)
                self._end(pmap_id, results, timed_out=False)
            raise
        finally:
            _scope.set_current(parent, outer["pmap"], outer["item"])
        if timed_out:
            scope.cancel()
            exc = errors.TimeLimitExceeded(
                "pmap", clock_seconds, f"the batch of {len(sent):,} worker requests did not end in time",
                argument=clock_seconds < self._default_timeout,
            )
            for index in sent:
                if results[index] is None:
                    results[index] = Failure.from_exception(index, exc)
        self._end(pmap_id, results, timed_out=timed_out)
        return results

    def _end(self, pmap_id: int, results: list[Any], *, timed_out: bool) -> None:
        """Tell the host how each failed item and the pmap ended."""
        failed = 0
        for index, value in enumerate(results):
            if isinstance(value, Failure):
                failed += 1
                self._send(_protocol.ItemEnd(pmap_id, index, 0, False, event_error(value)))
        self._send(_protocol.PmapEnd(pmap_id, done=len(results) - failed, failed=failed, timed_out=timed_out))

    def _collect(
        self,
        fn: Callable[[Any], Any],
        items: list[Any],
        scope: _scope.Scope,
        pmap_id: int,
        results: list[Any],
    ) -> list[tuple[int, list[Any], dict[str, Any]]]:
        """Run ``fn`` on each item with tool calls recorded, not sent; return the requests as
        ``(index, args, kwargs)``. An item that raises gets its Failure; an item that calls
        no worker keeps its value."""
        requests: list[tuple[int, list[Any], dict[str, Any]]] = []
        for index, item in enumerate(items):
            _scope.set_current(scope, pmap_id, index)
            made: list[_Answer] = []

            def record(name: str, args: list[Any], kwargs: dict[str, Any], index: int = index,
                       made: list[_Answer] = made) -> _Answer:
                if name != "worker":
                    raise _BatchShape(
                        f"item {index} called tool.{name}; a pmap(batch=True) function makes one "
                        "tool.worker call and returns its answer. Call other tools in a pmap without batch"
                    )
                if made:
                    raise _BatchShape(
                        f"item {index} called tool.worker twice; a pmap(batch=True) function makes "
                        "one tool.worker call. Batch each step in a pmap of its own"
                    )
                made.append(_Answer(index, args, kwargs))
                return made[0]

            _scope.set_recorder(record)
            try:
                value = fn(item)
            except _BatchShape:
                raise
            except Exception as exc:
                results[index] = Failure.from_exception(index, exc)
                continue
            finally:
                _scope.set_recorder(None)
            if not made:
                results[index] = value
            elif value is not made[0]:
                raise _BatchShape(
                    f"item {index}'s function returned something other than its tool.worker answer; "
                    "in pmap(batch=True) the answer arrives after the pmap, so the function must return "
                    "tool.worker(...) as it is. Work on the answers after the pmap"
                )
            else:
                requests.append((index, made[0].args, made[0].kwargs))
        return requests

    def _submit(
        self,
        requests: list[tuple[int, list[Any], dict[str, Any]]],
        scope: _scope.Scope,
        pmap_id: int,
        results: list[Any],
    ) -> bool:
        """Send the requests to the host in frames, ask it to run the batch, and read the
        results into ``results``; ``False`` when the pmap's clock ran out first."""
        part: list[list[Any]] = []
        size = 0
        first = True  # the host forgets what an earlier child left under the same pmap number
        for index, args, kwargs in requests:
            guess = _size_guess(args) + _size_guess(list(kwargs.values())) + 64
            if part and size + guess > _BATCH_FRAME_BYTES:
                self._batch_call(scope, {"op": "add", "batch": pmap_id, "first": first, "requests": part})
                part, size, first = [], 0, False
            part.append([index, args, kwargs])
            size += guess
        self._batch_call(scope, {"op": "add", "batch": pmap_id, "first": first, "requests": part})
        ran = self._batch_call(scope, {"op": "run", "batch": pmap_id}, clock=True)
        if ran is _TIMED_OUT:
            return False
        taken = 0
        while taken < len(requests):
            entries = self._batch_call(scope, {"op": "take", "batch": pmap_id, "start": taken})
            if not isinstance(entries, list) or not entries:
                raise errors.ToolError("the batch engine sent no results", tool="worker")
            for index, ok, value, error in entries:
                if ok:
                    results[index] = value
                else:
                    failure = Failure(index, str(error.get("type", "Failure")), str(error.get("message", "")))
                    object.__setattr__(failure, "_payload", dict(error))
                    results[index] = failure
            taken += len(entries)
        return True

    def _batch_call(self, scope: _scope.Scope, kwargs: dict[str, Any], *, clock: bool = False) -> Any:
        """One step of the batch, as a call to the host's batch engine; its error is raised.

        With ``clock``, the wait is bounded by the pmap's clock (``_TIMED_OUT`` when it ran out);
        the call is registered with the pmap's scope, so that cancelling the pmap cancels it."""
        assert self._open_request is not None
        if scope.cancelled:
            raise Cancelled("the pmap was cancelled")
        pending = self._open_request()
        scope.register(pending.id)
        try:
            self._send(_protocol.Call(pending.id, "_batch", [], kwargs, **_scope.position()))
            if clock:
                left = scope.seconds_left()
                reply = pending.wait_for(None if math.isinf(left) else max(left, 0.0))
                if reply is None:
                    return _TIMED_OUT
            else:
                reply = pending.wait()
        finally:
            scope.unregister(pending.id)
        if reply.ok:
            return reply.value
        payload = reply.error or {}
        if payload.get("type") == "Cancelled":
            raise Cancelled(str(payload.get("message", "cancelled")))
        raise errors.from_payload(payload)


def refuse_a_fan_out_inside() -> None:
    """Refuse a pmap or pcalls while a ``pmap(batch=True)`` function's request is recorded."""
    if _scope.recorder() is not None:
        raise _BatchShape(
            "a pmap(batch=True) function cannot run a pmap or pcalls of its own: it is run once "
            "per item only to collect its tool.worker request. Fan out after the batched pmap"
        )


#: Bytes of requests a batched pmap sends to the host in one frame, at most.
_BATCH_FRAME_BYTES = _protocol.MAX_CHILD_FRAME_BYTES // 2
_TIMED_OUT = object()


class _BatchShape(ValueError):
    """A ``pmap(batch=True)`` function that does not have the one shape a batch can take."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class _Answer:
    """What ``tool.worker(...)`` returns inside a ``pmap(batch=True)`` function: a stand-in for
    an answer that arrives only when the batch ends. Using it in any way is an error that
    says so; returning it is what the function must do."""

    __slots__ = ("args", "index", "kwargs")

    def __init__(self, index: int, args: list[Any], kwargs: dict[str, Any]) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise _BatchShape(
            f"item {self.index} used its tool.worker answer inside a pmap(batch=True) function; the "
            "answer arrives after the pmap, so return tool.worker(...) as it is and work on the "
            "results after the pmap"
        )

    def __getattr__(self, name: str) -> Any:
        return self._refuse()

    def __setattr__(self, name: str, value: Any) -> None:
        self._refuse()

    __bool__ = __len__ = __iter__ = __getitem__ = __contains__ = __str__ = __int__ = __float__ = _refuse
    __add__ = __radd__ = __mul__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __format__ = _refuse

    def __repr__(self) -> str:
        return f"<item {self.index}'s tool.worker answer, sent in a batch>"


def _size_guess(values: list[Any]) -> int:
    """An upper bound on the UTF-8 bytes of ``values`` as JSON, cheap to take: strings at 6
    bytes a character (a JSON escape), anything else at its repr's length times 6."""
    total = 0
    for value in values:
        total += 6 * len(value) if type(value) is str else 6 * len(repr(value))
    return total
