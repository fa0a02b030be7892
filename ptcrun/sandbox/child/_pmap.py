"""``pmap`` and ``pcalls`` inside the child: items on threads, order kept, failures as values.

The program's function runs in the child, so its results stay the Python objects it returned.
Each item runs on a thread so that the tool calls it makes overlap in time; the host bounds how
many calls are in flight with the run's one ``CapacityLimiter``. Threads are the child's, capped
by ``Limits.sandbox_threads``: a pmap takes the threads it can get, and when none are left
(deeply nested pmaps) it runs its items one by one on the calling thread. Only the host limiter
bounds calls, and a thread waiting on a nested pmap holds no call slot, so nesting cannot
deadlock.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import errors
from .. import _protocol
from . import _exact, _scope
from ._data import DataView
from ._host_api import Cancelled, ProgramExit
from ._link import Pending

__all__ = ["Failure", "Fanout", "PmapError"]

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


class _ThreadBudget:
    """How many more threads the child may start: never more than ``limit`` at once.

    It only counts exact ints: ``take`` refuses anything else, so a program's number (whose
    comparisons may lie) can neither take more than is free nor, taken as negative, raise
    the budget; ``give_back`` never brings it above ``limit``.
    """

    def __init__(self, limit: int) -> None:
        if type(limit) is not int or limit < 0:
            raise ValueError(f"thread limit must be a whole number >= 0; got {limit!r}")
        self._free = limit
        self._lock = threading.Lock()
        self.peak = 0
        self._limit = limit

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` threads (an exact int); return how many, from 0 to wanted."""
        if type(wanted) is not int:
            raise TypeError(f"threads are counted in exact ints, not {type(wanted).__name__}")
        with self._lock:
            got = max(0, min(wanted, self._free))
            self._free -= got
            self.peak = max(self.peak, self._limit - self._free)
            return got

    def give_back(self) -> None:
        with self._lock:
            self._free = min(self._free + 1, self._limit)

    @property
    def free(self) -> int:
        return self._free


class _Run:
    """The shared state of one pmap while its items run."""

    def __init__(
        self, fn: Callable[[Any], Any], items: list[Any], scope: _scope.Scope, fail_fast: bool
    ) -> None:
        self.fn = fn
        self.items = items
        self.scope = scope
        self.fail_fast = fail_fast
        self.results: list[Any] = [None] * len(items)
        self.finished = [False] * len(items)
        self.count = 0
        self.first_failure: Failure | None = None
        self.fatal: BaseException | None = None
        self.all_done = threading.Event()
        self._next = 0
        self._lock = threading.Lock()

    def take_index(self) -> int | None:
        with self._lock:
            if self.scope.cancelled or self._next >= len(self.items):
                return None
            index = self._next
            self._next += 1
            return index

    def finish(self, index: int, value: Any) -> None:
        cancel = False
        with self._lock:
            if self.finished[index]:
                return
            self.finished[index] = True
            self.results[index] = value
            self.count += 1
            if isinstance(value, Failure) and self.first_failure is None:
                self.first_failure = value
                cancel = self.fail_fast
            if self.count == len(self.items):
                self.all_done.set()
        if cancel:
            self.abort()

    def abort(self, fatal: BaseException | None = None) -> None:
        with self._lock:
            if fatal is not None and self.fatal is None:
                self.fatal = fatal
        self.scope.cancel()
        self.all_done.set()


class Fanout:
    """Builds the program's ``pmap`` and ``pcalls`` for one child."""

    def __init__(
        self,
        *,
        send: Callable[[_protocol.Frame], None],
        default_concurrency: int,
        default_timeout: float,
        max_items: int,
        max_threads: int,
        open_request: Callable[[], Pending] | None = None,
    ) -> None:
        self._send = send
        self._open_request = open_request
        self._default_concurrency = int(default_concurrency)
        self._default_timeout = float(default_timeout)
        self._max_items = max_items
        self._threads = _ThreadBudget(max_threads)
        self._ids = itertools.count(1)
        self._live: set[threading.Thread] = set()
        self._live_lock = threading.Lock()

    @property
    def threads_peak(self) -> int:
        return self._threads.peak

    def _send_cancel(self, ids: list[int]) -> None:
        self._send(_protocol.Cancel(ids))

    def pmap(
        self,
        fn: Callable[[Any], Any],
        items: Any,
        *,
        concurrency: int | None = None,
        timeout: float | None = None,
        fail_fast: bool = False,
        batch: bool = False,
    ) -> list[Any]:
        """Apply ``fn`` to every item concurrently; return the results in input order.

        A failed item's slot holds a falsy ``Failure``; with ``fail_fast=True`` the first
        failure cancels the items still running and raises ``PmapError`` (with ``.results``).
        ``timeout`` (seconds, at most Limits.pmap_timeout) bounds the whole fan-out: items not
        done by then are cancelled and their slots hold a ``Failure`` of kind
        ``TimeLimitExceeded``.

        ``batch=True`` sends the items' worker requests through the provider's batch engine
        (Anthropic's Message Batches, at half price, answered within minutes to hours): ``fn``
        must return one ``tool.worker(...)`` call's answer as it is, e.g.
        ``lambda c: tool.worker(c, "Summarize.", schema=S)``; do other work on the answers
        after the pmap.
        """
        if not callable(fn):
            raise TypeError(f"pmap needs a function as its first argument; got {type(fn).__name__}")
        if _scope.recorder() is not None:
            raise _BatchShape(
                "a pmap(batch=True) function cannot run a pmap or pcalls of its own: it is run once "
                "per item only to collect its tool.worker request. Fan out after the batched pmap"
            )
        if not isinstance(items, DataView):
            items = list(itertools.islice(iter(items), self._max_items + 1))
        # else: data is read item by item as the items start, never copied
        if len(items) > self._max_items:
            raise errors.SandboxLimitExceeded(
                f"pmap got more than {self._max_items:,} items (Limits.max_pmap_items). "
                "Batch the items, or raise max_pmap_items.",
                setting="Limits.max_pmap_items",
                limit=self._max_items,
            )
        # The program's values become exact ints, floats and bools before anything compares or
        # stores them: a subclass of int or float may lie in its comparisons.
        threads_wanted = self._default_concurrency
        if concurrency is not None:
            threads_wanted = _exact.whole_number(concurrency, "pmap concurrency")
        if threads_wanted < 1:
            raise ValueError(
                f"pmap concurrency must be a positive whole number; got {_exact.show(concurrency)}"
            )
        seconds = self._default_timeout
        if timeout is not None:
            seconds = _exact.seconds(timeout, "pmap timeout")
        if not seconds > 0:
            raise ValueError(
                f"pmap timeout must be a positive number of seconds; got {_exact.show(timeout)}"
            )
        clock_seconds = min(seconds, self._default_timeout)
        fail_fast = bool(fail_fast)
        if batch is not False and batch is not True:
            raise TypeError(f"pmap batch= takes True or False; got {type(batch).__name__}")
        if batch and fail_fast:
            raise ValueError(
                "pmap(batch=True) takes no fail_fast=True: a batch is submitted whole and answered "
                "whole. Check the Failures in its results instead"
            )
        if not items:
            return []
        if batch:
            return self._batch(fn, items, clock_seconds)

        parent = _scope.current()
        outer = _scope.position()
        scope = _scope.Scope(
            parent, deadline=time.monotonic() + clock_seconds, send_cancel=self._send_cancel
        )
        pmap_id = next(self._ids)
        run = _Run(fn, items, scope, fail_fast)
        threads = self._threads.take(min(threads_wanted, len(items)))
        self._send(
            _protocol.PmapStart(
                pmap=pmap_id,
                total=len(items),
                concurrency=max(threads, 1),
                parent_pmap=outer["pmap"],
                parent_item=outer["item"],
            )
        )
        try:
            if threads == 0:
                self._work(run, pmap_id, 0)
            else:
                for slot in range(threads):
                    threading.Thread(
                        target=self._thread_main,
                        args=(run, pmap_id, slot),
                        name=f"pmap-{pmap_id}-{slot}",
                        daemon=True,
                    ).start()
                wait = scope.seconds_left()
                run.all_done.wait(None if math.isinf(wait) else max(wait, 0.0))
        finally:
            _scope.set_current(parent, outer["pmap"], outer["item"])
        # all_done is set when every item finished or when the run was aborted (fail_fast, done(),
        # a sandbox limit); anything else means the clock ran out first.
        timed_out = not run.all_done.is_set()
        if timed_out:
            scope.cancel()
            detail = f"{run.count} of {len(items)} items done"
            exc = errors.TimeLimitExceeded(
                "pmap", clock_seconds, detail, argument=clock_seconds < self._default_timeout
            )
            for index in range(len(items)):
                run.finish(index, Failure.from_exception(index, exc))
        failed = sum(1 for r in run.results if isinstance(r, Failure))
        self._send(_protocol.PmapEnd(pmap_id, done=len(items) - failed, failed=failed, timed_out=timed_out))
        if run.fatal is not None:
            raise run.fatal
        if fail_fast and run.first_failure is not None:
            partial = [None if isinstance(r, Failure) else r for r in run.results]
            raise PmapError(run.first_failure, partial, sum(r is not None for r in partial))
        return run.results

    def _batch(self, fn: Callable[[Any], Any], items: list[Any], clock_seconds: float) -> list[Any]:
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
        failed = 0
        for index, value in enumerate(results):
            if isinstance(value, Failure):
                failed += 1
                self._send(_protocol.ItemEnd(pmap_id, index, 0, False, _event_error(value)))
        self._send(_protocol.PmapEnd(pmap_id, done=len(items) - failed, failed=failed, timed_out=timed_out))
        return results

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

    def pcalls(
        self, *fns: Callable[[], Any], timeout: float | None = None, fail_fast: bool = False
    ) -> list[Any]:
        """Call each zero-argument function concurrently; results in argument order."""
        for position, fn in enumerate(fns):
            if not callable(fn):
                raise TypeError(
                    f"pcalls takes functions; argument {position} is {type(fn).__name__}. "
                    "Wrap calls in lambdas: pcalls(lambda: tool.a(x), lambda: tool.b(x))"
                )
        concurrency = max(len(fns), 1)
        return self.pmap(lambda f: f(), fns, concurrency=concurrency, timeout=timeout, fail_fast=fail_fast)

    def _thread_main(self, run: _Run, pmap_id: int, slot: int) -> None:
        me = threading.current_thread()
        with self._live_lock:
            self._live.add(me)
        try:
            self._work(run, pmap_id, slot)
        except BaseException as exc:  # a thread must not die printing a traceback
            run.abort(exc)  # nor leave its item unfinished: the pmap would wait for its clock
        finally:
            self._threads.give_back()  # first: once no thread is live, every thread is back
            with self._live_lock:
                self._live.discard(me)

    def stragglers(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for item threads still running; return how many remain.

        Items of a pmap that timed out or failed fast are cancelled at their next tool call or
        print, but an item busy in pure computation runs on. Left alone, it would keep running
        into the next program, so the caller replaces the child when this is not zero.
        """
        deadline = time.monotonic() + grace
        with self._live_lock:
            threads = list(self._live)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._live_lock:
            return sum(1 for t in self._live if t.is_alive())

    def _work(self, run: _Run, pmap_id: int, slot: int) -> None:
        while (index := run.take_index()) is not None:
            _scope.set_current(run.scope, pmap_id, index)
            self._send(_protocol.ItemStart(pmap_id, index, slot))
            try:
                value = run.fn(run.items[index])
            except Cancelled as exc:
                value = None
                self._send(_protocol.ItemEnd(pmap_id, index, slot, False, _event_error(exc)))
                continue
            except ProgramExit as exc:
                run.abort(exc)
                return
            except Exception as exc:
                value = Failure.from_exception(index, exc)
            except BaseException as exc:  # output or memory limits: end the program
                run.abort(exc)
                return
            failed = isinstance(value, Failure)
            error = _event_error(value) if isinstance(value, Failure) else None
            self._send(_protocol.ItemEnd(pmap_id, index, slot, not failed, error))
            run.finish(index, value)
            if run.scope.seconds_left() <= 0:
                break


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


def _event_error(failed: Failure | Cancelled) -> dict[str, Any]:
    """The error payload of an item's ``item.end`` event, its message cut to fit a frame."""
    payload = dict(failed._payload) if isinstance(failed, Failure) else errors.to_payload(failed)
    message = payload["message"]
    if len(message) > _EVENT_MESSAGE_CHARS:
        payload["message"] = message[: _EVENT_MESSAGE_CHARS - 20] + " … (cut)"
    return payload
