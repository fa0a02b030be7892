"""``pmap`` and ``pcalls`` inside the child: items on threads, order kept, failures as values.

The program's function runs in the child, so its results stay the Python objects it returned.
Each item runs on a thread so that the tool calls it makes overlap in time; the host bounds how
many calls are in flight with the run's one ``CapacityLimiter``. Threads are the child's, capped
by ``Limits.sandbox_threads``: a pmap takes the threads it can get, and when none are left
(deeply nested pmaps) it runs its items one by one on the calling thread. Only the host limiter
bounds calls, and a thread waiting on a nested pmap holds no call slot, so nesting cannot
deadlock.

``pmap(..., batch=True)`` runs no threads and is ``_batch``'s; the ``Failure`` a failed item
leaves in its slot, and ``PmapError``, are ``_failure``'s.
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
from ._batch import BatchedPmap, refuse_a_fan_out_inside
from ._data import DataView
from ._failure import Failure, PmapError, event_error
from ._host_api import Cancelled, ProgramExit
from ._link import Pending

__all__ = ["Fanout"]


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
        self._default_concurrency = int(default_concurrency)
        self._default_timeout = float(default_timeout)
        self._max_items = max_items
        self._threads = _ThreadBudget(max_threads)
        self._ids = itertools.count(1)
        self._live: set[threading.Thread] = set()
        self._live_lock = threading.Lock()
        self._batched = BatchedPmap(
            send=send, open_request=open_request, ids=self._ids, default_timeout=self._default_timeout
        )

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
        refuse_a_fan_out_inside()
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
            return self._batched.run(fn, items, clock_seconds)

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
                self._send(_protocol.ItemEnd(pmap_id, index, slot, False, event_error(exc)))
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
            error = event_error(value) if isinstance(value, Failure) else None
            self._send(_protocol.ItemEnd(pmap_id, index, slot, not failed, error))
            run.finish(index, value)
            if run.scope.seconds_left() <= 0:
                break
