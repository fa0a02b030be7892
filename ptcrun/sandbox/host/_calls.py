"""Serve what a program asks of the host: tool calls, ``budget.remaining`` and ``budget.estimate``.

A :class:`CallServer` holds the user's tools and the limiters that bound them, for the life of a
:class:`~ptcrun.sandbox.Sandbox` (across child restarts). Each tool call waits for a token of
the run's ``CapacityLimiter``; only once it holds one does it start, for its clock
(``Limits.call_timeout``) and for its events (``call.start``, then ``call.end``). A call the
child cancels (its pmap timed out or failed fast) is cancelled at its next checkpoint and its
reply says so. Every call gets exactly one reply, unless the program itself has ended.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import trio

from ... import _json, errors
from ..._json import JSON
from ..._limits import Limits
from ..._tools import Tool
from .. import _protocol

__all__ = ["BATCH_TOOL", "BatchHandler", "CallServer", "Estimator", "Event", "current_call"]

#: What ``on_event`` receives: a dict with a ``type`` key (``call.start``, ``output``, ...).
Event = dict[str, Any]

#: Answers ``budget.estimate``: (texts, instruction, schema, max_tokens) -> tokens reserved.
Estimator = Callable[[list[str], str, Any, int | None], int]
#: Serves ``pmap(..., batch=True)``: (the call's keyword arguments, its pmap) -> the reply's value
#: (JSON data).
BatchHandler = Callable[[Mapping[str, Any], int | None], Awaitable[Any]]
#: The name the child's ``pmap(..., batch=True)`` sends its requests to. A program cannot
#: name it: ``tool`` has no attribute of that name, and names starting with ``_`` are refused.
BATCH_TOOL = "_batch"
#: The tool call being served, as ``{"call": id, "pmap": id | None, "item": index | None}``:
#: set around each tool so that a tool (the worker LLM) can place its own events under it.
current_call: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ptcrun_current_call", default=None
)


class CallServer:
    """Run the tools a program calls, under the run's limiter and the call clock.

    Args:
        tools: the tools programs may call, by name.
        limits: ``call_timeout`` bounds each call (from the moment it holds a limiter token);
            ``max_concurrency`` sizes the pool of threads that run sync tools.
        limiter: bounds the tool calls in flight; shared with the rest of the run.
        budget: returns what ``budget.remaining`` shows, asked at each query.
        on_event: receives ``call.start`` and ``call.end``.
        estimate: answers ``budget.estimate(texts, instruction, schema, max_tokens)``: the
            tokens those worker calls would reserve. It runs in a worker thread (counting
            tokens takes time) and may raise a ``PtcrunError`` for the program to catch.
        batches: serves the calls a ``pmap(..., batch=True)`` makes to ``BATCH_TOOL``: they take
            no slot of ``limiter`` and no call clock (the pmap's clock bounds them, and a
            cancel from the child cancels them), and write no ``call.start``/``call.end``:
            the handler writes the batch's own events.
    """

    def __init__(
        self,
        *,
        tools: Mapping[str, Tool],
        limits: Limits,
        limiter: trio.CapacityLimiter,
        budget: Callable[[], Mapping[str, Any]],
        on_event: Callable[[Event], None],
        estimate: Estimator | None = None,
        batches: BatchHandler | None = None,
    ) -> None:
        self._tools = dict(tools)
        self._batches = batches
        self._call_timeout = limits.call_timeout
        self._limiter = limiter
        self._thread_limiter = trio.CapacityLimiter(limits.max_concurrency)
        self._budget = budget
        self._on_event = on_event
        self._estimate = estimate
        self._in_flight: dict[int, trio.CancelScope] = {}
        self._cancelled: set[int] = set()

    @property
    def tool_names(self) -> list[str]:
        """The names programs may call, sorted."""
        return sorted(self._tools)

    def answer_budget(self, query: _protocol.BudgetQuery) -> _protocol.Reply:
        """Return the reply to ``budget.remaining``: the budget as it is now."""
        return _protocol.Reply(query.id, True, dict(self._budget()))

    async def answer_estimate(
        self, query: _protocol.EstimateQuery, send: Callable[[_protocol.Frame], Awaitable[None]]
    ) -> None:
        """Answer ``budget.estimate`` with the tokens the worker calls would reserve, or an error.

        The frame's fields were type-checked when it was decoded; the count is bounded here,
        before any text is counted.
        """
        reply: _protocol.Reply
        try:
            if self._estimate is None:
                raise errors.ToolError("budget.estimate is not available here", tool="worker")
            if len(query.texts) > _protocol.MAX_ESTIMATE_TEXTS:
                raise errors.ToolArgumentError(
                    f"budget.estimate got {len(query.texts):,} texts; it takes at most "
                    f"{_protocol.MAX_ESTIMATE_TEXTS:,}. Estimate a sample and scale it.",
                    tool="worker",
                )
            estimate = self._estimate
            tokens = await trio.to_thread.run_sync(
                lambda: estimate(query.texts, query.instruction, query.schema, query.max_tokens),
                limiter=self._thread_limiter,
            )
            reply = _protocol.Reply(query.id, True, tokens)
        except errors.PtcrunError as exc:
            reply = _protocol.Reply(query.id, False, None, errors.to_payload(exc))
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send(reply)

    def cancel(self, ids: Iterable[int]) -> None:
        """Cancel the calls in flight among ``ids``; ids of calls already answered are ignored."""
        for call_id in ids:
            scope = self._in_flight.get(call_id)
            if scope is not None:
                self._cancelled.add(call_id)
                scope.cancel()

    async def serve(self, call: _protocol.Call, send: Callable[[_protocol.Frame], Awaitable[None]]) -> None:
        """Run one call and ``send`` its reply; its events go to ``on_event``.

        A refused call (unknown tool, arguments that do not fit the signature) and a tool's own
        failure become an error in the reply, as does the call clock or a cancel request.
        Cancelling the calling task (the program ended) cancels the call with no reply.
        """
        if call.tool == BATCH_TOOL:
            await self._serve_batch(call, send)
            return
        where = {"pmap": call.pmap, "item": call.item}
        started = time.monotonic()
        announced = False

        def announce() -> None:
            nonlocal announced, started
            announced, started = True, time.monotonic()
            self._on_event(
                {
                    "type": "call.start",
                    "call": call.id,
                    "tool": call.tool,
                    "args": call.args,
                    "kwargs": call.kwargs,
                    **where,
                }
            )

        current_call.set({"call": call.id, **where})
        value: JSON = None
        error: dict[str, Any] | None = None
        with trio.CancelScope() as scope:
            self._in_flight[call.id] = scope
            try:
                tool = self._tools.get(call.tool)
                if tool is None:
                    listed = ", ".join(self.tool_names) or "none"
                    message = f"there is no tool named {call.tool!r}; tools: {listed}"
                    raise errors.ToolError(message, tool=call.tool)
                if tool.holds_slot:
                    async with self._limiter:
                        # The call starts, for its clock and its events, once it holds a slot;
                        # one scope serves both the clock and the child's cancel requests.
                        announce()
                        scope.deadline = trio.current_time() + self._call_timeout
                        value = await tool.call(call.args, call.kwargs, limiter=self._thread_limiter)
                else:
                    # A sub-run (tool.agent) holds no slot while it waits on calls of its own,
                    # which take theirs: holding one could starve them (a deadlock).
                    announce()
                    value = await tool.call(call.args, call.kwargs, limiter=self._thread_limiter)
                _check_fits(call.tool, value)
            except errors.PtcrunError as exc:
                error = errors.to_payload(exc)
            finally:
                self._in_flight.pop(call.id, None)
        if scope.cancelled_caught:
            if call.id in self._cancelled:
                error = {"type": "Cancelled", "message": "cancelled"}
            else:
                timeout = errors.TimeLimitExceeded(
                    "call", self._call_timeout, f"tool {call.tool!r} did not answer in time"
                )
                error = errors.to_payload(timeout)
        self._cancelled.discard(call.id)
        ok = error is None
        if not announced:  # refused or cancelled before it ran: a zero-length call
            announce()
        self._on_event(
            {
                "type": "call.end",
                "call": call.id,
                "tool": call.tool,
                "ok": ok,
                "value": value if ok else None,
                "error": error,
                "seconds": time.monotonic() - started,
                **where,
            }
        )
        reply = _protocol.Reply(call.id, ok, value if ok else None, error)
        try:
            try:
                await send(reply)
            except (ValueError, TypeError):
                # A tool result that is not JSON after all: tell the program instead.
                message = f"tool {call.tool!r} returned a value that is not JSON data"
                bad = errors.to_payload(errors.ToolError(message, tool=call.tool))
                await send(_protocol.Reply(call.id, False, None, bad))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


    async def _serve_batch(
        self, call: _protocol.Call, send: Callable[[_protocol.Frame], Awaitable[None]]
    ) -> None:
        """Run one step of a batched pmap (``BATCH_TOOL``) and reply, with no slot and no clock."""
        value: JSON = None
        error: dict[str, Any] | None = None
        with trio.CancelScope() as scope:
            self._in_flight[call.id] = scope
            try:
                if self._batches is None:
                    raise errors.ToolError("pmap(batch=True) is not available here", tool="worker")
                value = await self._batches(call.kwargs, call.pmap)
            except errors.PtcrunError as exc:
                error = errors.to_payload(exc)
            finally:
                self._in_flight.pop(call.id, None)
        if scope.cancelled_caught:
            error = {"type": "Cancelled", "message": "cancelled"}
        self._cancelled.discard(call.id)
        reply = _protocol.Reply(call.id, error is None, value if error is None else None, error)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send(reply)


def _check_fits(tool: str, value: JSON) -> None:
    """Refuse a result too big to reach the child in one frame, before the call is recorded.

    Raises:
        ToolError: the reply would exceed ``MAX_HOST_FRAME_BYTES``; the child would have had
            to drop it and stop.
    """
    cap = _protocol.MAX_HOST_FRAME_BYTES - 1024  # the reply's other fields
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str) and 4 * len(value) < cap:  # UTF-8 takes at most 4 bytes a char
        return
    size = len(_json.dumps(value).encode("utf-8"))
    if size > cap:
        raise errors.ToolError(
            f"the result of tool {tool!r} is too big: {size:,} bytes of JSON cannot reach the sandbox "
            f"in one message (at most {cap:,}); return less: a summary, or the data in parts.",
            tool=tool,
        )
