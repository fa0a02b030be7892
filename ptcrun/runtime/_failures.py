"""Count the calls that failed while programs ran, so no answer is built on them in silence.

A pmap keeps going when an item fails: the item's slot holds a falsy ``Failure`` and the program
carries on. That is what makes fan-outs useful, and also how a program can sum 49 results out of
92 and call it the answer. So the runtime counts, from the sandbox's events and whatever the
program printed or not, every call whose result the program got back as a failure:

- each pmap item whose slot holds a ``Failure`` (it raised, its call was refused, a clock
  expired before it ran);
- each tool call outside any pmap that failed, unless its error is the one that ended the
  program (that one is already reported as the program's error);
- each tool call that failed inside a pmap item that still succeeded (the item's function
  caught the error and returned something else).

Cancellations are not failures of their own: a cancelled call belongs to an item or a program
that reports why it was cancelled. The counts are kept per program (for the planner's
feedback, :class:`ProgramFailures`) and for the whole run (for the ``Result`` and ``run.end``).

A ``tool.agent`` call is a call like any other: a sub-run that did not end ``done`` is a failed
call of its caller. One that ended ``done`` gave an answer built on its own calls, so the same
rule goes down the tree (:meth:`FailureTally.sub_run_ended`): its calls count among its caller's,
and its failed calls among the caller's failures. A sub-run's ``partial`` answer makes its
caller's answer ``partial`` too, as a failed worker call would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._result import Result
from ..transcript._schema import CallEnd, Event, ItemEnd, PmapEnd, PmapStart

__all__ = ["FailureTally", "PmapOutcome", "ProgramFailures"]

#: The error type of a call or item stopped because something around it was cancelled.
_CANCELLED = "Cancelled"
#: The kind given to failed items whose error the sandbox did not report.
_UNREPORTED = "Failure"


@attrs.frozen
class PmapOutcome:
    """How one ``pmap`` (or ``pcalls``) of a program went.

    Attributes:
        pmap: its number within the program (``tN.m<pmap>``).
        total: how many items it got.
        ok, failed: items that ended well or left a ``Failure`` in their slot; an unfinished
            pmap (the program was stopped) counts what had ended.
        kinds: the failed items by error kind, in the order first seen.
        nested: it ran inside an item of another pmap.
        timed_out: its clock expired.
        finished: its ``pmap.end`` came.
    """

    pmap: int
    total: int
    ok: int
    failed: int
    kinds: Mapping[str, int]
    nested: bool
    timed_out: bool
    finished: bool


@attrs.frozen
class ProgramFailures:
    """The calls of one program that failed, for the feedback the planner gets after it.

    Attributes:
        pmaps: every pmap of the program, in the order they started.
        loose_failed: tool calls outside any pmap that failed and that the program went on
            after, by kind.
        caught_failed: tool calls that failed inside pmap items that still succeeded, by kind.
        sub_run_failed: calls that failed inside ``tool.agent`` sub-runs that still answered
            (``done``, ``partial``), by kind: their answers were built while those failed.
        partial_sub_runs: how many of the program's sub-runs answered while calls failed.
        examples: one error message per kind, the first seen.
    """

    pmaps: tuple[PmapOutcome, ...] = ()
    loose_failed: Mapping[str, int] = attrs.field(factory=dict)
    caught_failed: Mapping[str, int] = attrs.field(factory=dict)
    sub_run_failed: Mapping[str, int] = attrs.field(factory=dict)
    partial_sub_runs: int = 0
    examples: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def by_kind(self) -> dict[str, int]:
        """Every failure the program got back by kind: pmap items, loose and caught calls (not
        ``sub_run_failed``: the program got those sub-runs' answers)."""
        total: Counter[str] = Counter()
        for p in self.pmaps:
            total.update(p.kinds)
        total.update(self.loose_failed)
        total.update(self.caught_failed)
        return dict(total)

    @property
    def failed(self) -> int:
        """How many failures in all."""
        return sum(self.by_kind.values())


class _Pmap:
    __slots__ = ("failed", "finished", "kinds", "nested", "ok", "timed_out", "total")

    def __init__(self, total: int, nested: bool) -> None:
        self.total = total
        self.nested = nested
        self.ok = 0
        self.failed = 0
        self.kinds: Counter[str] = Counter()
        self.timed_out = False
        self.finished = False


class FailureTally:
    """Counts failed calls from the transcript events of the sandbox, program by program.

    Feed it every event (:meth:`watch` wraps the function that emits them); call
    :meth:`start_program` before each program and :meth:`end_program` after it. The run-wide
    counts (:attr:`failed_calls`, :attr:`calls`) are kept up to date as events arrive, so a run
    that ends mid-program still counts what failed before it ended.
    """

    def __init__(self) -> None:
        #: Failures of the whole run, by kind.
        self.failed_calls: Counter[str] = Counter()
        #: What ``failed_calls`` is out of: pmap items, tool calls outside pmap, and failed
        #: calls caught inside items; and the calls of the sub-runs that answered.
        self.calls = 0
        #: The sub-runs started below the run, at every depth, by how they ended.
        self.sub_runs: Counter[str] = Counter()
        self._reset()

    def _reset(self) -> None:
        self._pmaps: dict[int, _Pmap] = {}
        # Failed calls inside an item, until the item ends: caught if it then succeeds.
        self._pending: dict[tuple[int, int], list[tuple[str, Mapping[str, Any] | None]]] = {}
        self._loose: Counter[str] = Counter()
        self._caught: Counter[str] = Counter()
        self._sub_failed: Counter[str] = Counter()
        self._partial_subs = 0
        self._examples: dict[str, str] = {}
        self._last_loose: str | None = None  # the error kind of the last call outside pmap

    def watch(self, emit: Callable[[Event], object]) -> Callable[[Event], None]:
        """``emit``, counting each event on its way."""

        def counted(event: Event) -> None:
            self.see(event)
            emit(event)

        return counted

    def start_program(self) -> None:
        """Begin counting a new program's calls."""
        self._reset()

    def end_program(self, error_kind: str | None) -> ProgramFailures:
        """The program's failures; ``error_kind`` is its error's kind, if it ended in one.

        A tool call outside pmap whose error ended the program was not caught: it is the
        program's error, reported as such, and is not counted as a failure the program went
        on after.
        """
        if error_kind is not None and self._last_loose == error_kind and self._loose[error_kind]:
            self._loose[error_kind] -= 1
            self.failed_calls[error_kind] -= 1
            for counter in (self._loose, self.failed_calls):
                if counter[error_kind] <= 0:
                    del counter[error_kind]
        pmaps = tuple(
            PmapOutcome(
                pmap=number,
                total=p.total,
                ok=p.ok,
                failed=p.failed,
                kinds=dict(p.kinds),
                nested=p.nested,
                timed_out=p.timed_out,
                finished=p.finished,
            )
            for number, p in self._pmaps.items()
        )
        failures = ProgramFailures(
            pmaps=pmaps,
            loose_failed=dict(self._loose),
            caught_failed=dict(self._caught),
            sub_run_failed=dict(self._sub_failed),
            partial_sub_runs=self._partial_subs,
        )
        kinds = failures.by_kind
        examples = {kind: message for kind, message in self._examples.items() if kind in kinds}
        return attrs.evolve(failures, examples=examples)

    def sub_run_ended(self, result: Result) -> None:
        """Count a sub-run a ``tool.agent`` call of this run started, once it ended.

        Its own ``tool.agent`` call is counted from its ``call.end`` as any call is (a failure
        unless the sub-run ended ``done``); this adds the tree below it: the sub-run and its own
        sub-runs by status and, when it answered, its calls and its failed calls.
        """
        self.sub_runs[result.status] += 1
        self.sub_runs.update(result.sub_runs)
        if result.status != "done":
            return  # its answer was not used: the caller got the failure instead
        self.calls += result.calls_made
        if result.failed_calls:
            self._partial_subs += 1
            for kind, count in result.failed_calls.items():
                self.failed_calls[kind] += count
                self._sub_failed[kind] += count

    def see(self, event: Event) -> None:
        """Count one event; events other than pmaps, items and calls are ignored."""
        if isinstance(event, PmapStart):
            self._pmaps[event.pmap] = _Pmap(event.total, nested=".m" in (event.parent or ""))
            self.calls += event.total
        elif isinstance(event, ItemEnd):
            self._item_end(event)
        elif isinstance(event, PmapEnd):
            self._pmap_end(event)
        elif isinstance(event, CallEnd):
            self._call_end(event)

    def _fail(self, kind: str, error: Mapping[str, Any] | None) -> None:
        self.failed_calls[kind] += 1
        message = error.get("message") if error else None
        if kind not in self._examples and isinstance(message, str) and message:
            self._examples[kind] = message

    def _item_end(self, event: ItemEnd) -> None:
        p = self._pmaps.get(event.pmap)
        pending = self._pending.pop((event.pmap, event.item), [])
        if event.ok:
            if p is not None:
                p.ok += 1
            for kind, error in pending:  # the item's function caught these and went on
                self._caught[kind] += 1
                self.calls += 1
                self._fail(kind, error)
            return
        kind = _kind(event.error)
        if kind == _CANCELLED or p is None:
            return  # a cancelled item gets its Failure when its pmap ends
        p.failed += 1
        p.kinds[kind] += 1
        self._fail(kind, event.error)

    def _pmap_end(self, event: PmapEnd) -> None:
        p = self._pmaps.get(event.pmap)
        if p is None:
            return
        p.finished, p.timed_out = True, event.timed_out
        p.ok = event.done
        # Items that never ran, or were cancelled, when the clock expired: their slots hold
        # Failures the items themselves never reported.
        unreported = event.failed - p.failed
        if unreported > 0:
            kind = "TimeLimitExceeded" if event.timed_out else _UNREPORTED
            p.kinds[kind] += unreported
            self.failed_calls[kind] += unreported
        p.failed = max(p.failed, event.failed)
        for key in [key for key in self._pending if key[0] == event.pmap]:
            del self._pending[key]

    def _call_end(self, event: CallEnd) -> None:
        if event.pmap is None:
            self.calls += 1
            self._last_loose = None if event.ok else _kind(event.error)
        if event.ok:
            return
        kind = _kind(event.error)
        if kind == _CANCELLED:
            return
        if event.pmap is None:
            self._loose[kind] += 1
            self._fail(kind, event.error)
        else:
            key = (event.pmap, event.item if event.item is not None else -1)
            self._pending.setdefault(key, []).append((kind, event.error))

    @property
    def run_failures(self) -> dict[str, int]:
        """The run's failures by kind, most frequent first."""
        return dict(self.failed_calls.most_common())

    @property
    def run_sub_runs(self) -> dict[str, int]:
        """The sub-runs below the run by status, most frequent first (ties by name)."""
        return dict(sorted(self.sub_runs.items(), key=lambda kv: (-kv[1], kv[0])))


def _kind(error: Mapping[str, Any] | None) -> str:
    kind = error.get("type") if error else None
    return kind if isinstance(kind, str) and kind else "Error"
