"""``tool.agent``: a sub-run over a slice of the corpus, on a slice of the budget.

A program calls ``tool.agent(goal, data=[3, 4, 5], max_tokens=20_000)``; the runtime starts a
sub-run: the (sub-)planner writes programs for ``goal`` in a sandbox child of its own, over the
chunks chosen, and the call returns the sub-run's ``done`` answer. A sub-run that does not end
``done`` (it failed, ran out of turns, tokens or time, was cancelled) is the call's failure: the
program gets the error, and inside ``pmap`` the ``Failure`` in the item's slot, as for any tool.

What the tree of runs shares, and how it stays bounded (``docs/design.md`` has the reasons):

- tokens: the sub-run's ``max_tokens`` is reserved from its caller's ledger as a *slice*
  (:meth:`~._budget.Ledger.open_slice`) and is all the sub-run may spend;
- calls in flight: every leaf call (tool, worker, a sub-run's planner reply) takes a slot of the
  run's one limiter; a sub-run itself holds none while it waits on its own calls;
- processes: each depth has its own limiter of ``max_concurrency`` sub-runs alive at once, so
  waiting for a sub-run of depth d+1 can never wait on a slot that a depth-d sub-run holds;
- clocks: a sub-run's run clock is ``timeout=``, or most of its caller's time left (at most
  ``Limits.run_timeout``), and its inner clocks fit in it; it holds no call clock, as it holds
  no slot: its own calls have theirs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import errors
from .._json import dumps
from .._limits import Limits
from .._result import Result
from .._tools import Tool
from ..sandbox.host._calls import current_call
from ..transcript._schema import Event
from ._answers import AnswerCheck
from ._budget import Ledger
from ._worker import regex_keyword

__all__ = [
    "NestedEvents",
    "Nesting",
    "SubRun",
    "clock_expired",
    "make_agent_tool",
    "select_data",
    "sub_clock",
    "sub_limits",
]

Data = Sequence[str] | Mapping[str, Sequence[str]]

#: Characters of a failed sub-run's fallback answer quoted in the caller's error.
_QUOTE_CHARS = 500


@attrs.frozen
class Nesting:
    """Where a run sits in its tree of sub-runs, and the limiters the whole tree shares.

    Attributes:
        depth: 0 for the run, 1 for a sub-run its programs start, and so on.
        limiter: the run's one limiter of calls in flight, shared by every depth.
        alive: per depth (index 0 is depth 1), the sub-runs alive at once.
    """

    depth: int
    limiter: trio.CapacityLimiter
    alive: tuple[trio.CapacityLimiter, ...]

    @classmethod
    def top(cls, limits: Limits) -> Nesting:
        return cls(
            depth=0,
            limiter=trio.CapacityLimiter(limits.max_concurrency),
            alive=tuple(trio.CapacityLimiter(limits.max_concurrency) for _ in range(limits.max_depth)),
        )

    def below(self) -> Nesting:
        """The nesting of a sub-run this run starts."""
        return attrs.evolve(self, depth=self.depth + 1)


class NestedEvents:
    """A sub-run's event stream: its events go through its caller's emit, their spans prefixed.

    The sub-run names its spans as any run does (``run``, ``t1``, ``t1.c2``); here they become
    ``t1.c3/run``, ``t1.c3/t1``, ... and its ``run.start`` gets the calling span as parent. The
    caller's own emit prefixes them again if the caller is a sub-run itself, so one file holds
    the whole tree and a reader can split it at each ``/``. Going through the caller's emit
    (not its stream), they also reach the caller's tracing, which nests the sub-run's spans
    under the agent call's; and not its failure tally: a sub-run's failed calls are its own.
    """

    def __init__(
        self, emit: Callable[[Event], object], path: Path | None, call_span: str, warnings: list[str]
    ) -> None:
        self._emit = emit
        # A sub-run's warnings (a cache file that failed, ...) are the run's: one list for all.
        self.warnings = warnings
        self._prefix = f"{call_span}/"
        self._call_span = call_span
        self.path = path

    def emit(self, event: Event) -> object:
        parent = self._call_span if event.parent is None else self._prefix + event.parent
        return self._emit(attrs.evolve(event, span=self._prefix + event.span, parent=parent))


@attrs.frozen
class SubRun:
    """What one ``tool.agent`` call asks for, checked."""

    goal: str
    data: Data
    check: AnswerCheck
    max_turns: int
    call_span: str
    #: What set its run clock (:func:`sub_clock`).
    clock_source: str = "limit"


#: Without ``timeout=``, a sub-run may take this share of its caller's time left: the rest is
#: for the caller to read its answer, or its timeout, before the caller's own clock fires.
_SHARE_OF_TIME_LEFT = 0.9


#: Where a sub-run's run clock came from, as its timeout's message says it, and the fix.
_CLOCK_SOURCES = {
    "limit": (None, None),
    "argument": ("tool.agent's timeout= argument", "Raise that timeout= argument."),
    "caller": (
        "90% of the time its caller had left",
        "Give the caller's turn, pmap or run clock more time, or the sub-run less to do.",
    ),
}


def sub_clock(limits: Limits, timeout: float | None) -> tuple[float, str]:
    """A sub-run's run clock, started now, and what set it: ``"argument"`` (``timeout``),
    ``"caller"`` (90% of the caller's time left, ``trio.current_effective_deadline``) or
    ``"limit"`` (``limits.run_timeout``), whichever is least. Above a second, it is cut to a
    tenth of a second, so messages read as written."""
    left = (trio.current_effective_deadline() - trio.current_time()) * _SHARE_OF_TIME_LEFT
    bounds = [(limits.run_timeout, "limit"), (left, "caller")]
    if timeout is not None:
        bounds.append((timeout, "argument"))
    seconds, source = min(bounds, key=lambda bound: bound[0])
    if 1 <= seconds < math.inf:
        seconds = math.floor(seconds * 10) / 10
    return max(seconds, 0.001), source


def clock_expired(seconds: float, source: str) -> errors.TimeLimitExceeded:
    """The error of a sub-run whose run clock (set by ``source``, see :func:`sub_clock`) fired."""
    where, fix = _CLOCK_SOURCES[source]
    return errors.TimeLimitExceeded("run", seconds, source=where, fix=fix)


def sub_limits(limits: Limits, *, max_tokens: int, max_turns: int, run: float) -> Limits:
    """The limits of a sub-run: its slice, its turns, and its run clock ``run`` (from
    :func:`sub_clock`), with its inner clocks cut to fit in it. A sub-run's clock can then
    fire first and come back as its status, not as the caller's own timeout."""
    return attrs.evolve(
        limits,
        max_tokens=max_tokens,
        max_turns=max_turns,
        run_timeout=run,
        turn_timeout=min(limits.turn_timeout, run),
        pmap_timeout=min(limits.pmap_timeout, run),
        call_timeout=min(limits.call_timeout, run),
    )


def _argument(message: str) -> errors.ToolArgumentError:
    return errors.ToolArgumentError(f"tool 'agent' {message}", tool="agent")


def _indices(chosen: Sequence[Any], size: int, where: str) -> list[int]:
    if not chosen:
        raise _argument(f"got an empty list for {where}; give at least one chunk index.")
    for i in chosen:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size:
            raise _argument(
                f"got {i!r} in {where}; chunk indices run from 0 to {size - 1} (len={size})."
            )
    return list(chosen)


def select_data(data: Data, chosen: Any) -> Data:
    """The sub-run's corpus: the caller's chunks ``chosen`` names, without copying their text.

    ``chosen`` is None (the caller's whole corpus), a list of chunk indices, a list of texts
    (given literally), or for a corpus of several datasets a dataset's name or a dict of
    names to index lists.

    Raises:
        ToolArgumentError: an index out of range, an unknown name, an empty selection, or a
            shape this corpus does not take.
    """
    if chosen is None:
        return data
    if isinstance(data, Mapping):
        if isinstance(chosen, str):
            if chosen not in data:
                raise _argument(f"got data={chosen!r}; the datasets are {sorted(data)}.")
            return {chosen: data[chosen]}
        if isinstance(chosen, Mapping):
            if not chosen:
                raise _argument("got an empty dict for data; name at least one dataset.")
            out: dict[str, Sequence[str]] = {}
            for name, idx in chosen.items():
                if name not in data:
                    raise _argument(f"got dataset {name!r} in data; the datasets are {sorted(data)}.")
                chunks = data[name]
                picked = None if idx is None else _indices(idx, len(chunks), f"data[{name!r}]")
                out[name] = chunks if picked is None else [chunks[i] for i in picked]
            return out
    elif isinstance(chosen, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in chosen):
        return [data[i] for i in _indices(chosen, len(data), "data")]
    if isinstance(chosen, list) and chosen and all(isinstance(t, str) for t in chosen):
        if not any(t.strip() for t in chosen):
            raise _argument("got data texts that are all empty; give text to work on.")
        return list(chosen)
    shape = "a list of chunk indices"
    if isinstance(data, Mapping):
        shape = "a dataset name, a dict of names to index lists"
    raise _argument(f"takes data= as {shape}, or a list of texts; got {dumps(chosen)[:80]}.")


def outcome(result: Result) -> Any:
    """The call's value: the sub-run's answer when it ended ``done``.

    Raises:
        ToolError: the sub-run ended any other way; the message says how, and quotes its
            fallback answer when it had one.
    """
    if result.status == "done":
        return result.answer
    if result.status == "failed":
        message = f"the sub-run called fail(): {result.answer}"
    else:
        why = f": {result.error}" if result.error is not None else ""
        message = f"the sub-run ended with status {result.status!r}{why}"
    if result.fallback_used:
        message += f" (its fallback answer: {dumps(result.answer)[:_QUOTE_CHARS]})"
    raise errors.ToolError(f"tool 'agent' failed: {message}", tool="agent")


Start = Callable[[SubRun, Ledger, Limits], Awaitable[Result]]


def make_agent_tool(
    *,
    data: Data,
    limits: Limits,
    ledger: Ledger,
    nesting: Nesting,
    span_of_call: Callable[[dict[str, Any] | None], str],
    start: Start,
) -> Tool:
    """Build ``tool.agent`` for one run (or sub-run): ``start`` runs the sub-run it asks for."""
    caller_data = data  # the tool's own ``data`` parameter names a part of it

    async def agent(
        goal: str,
        data: list[int] | list[str] | dict[str, list[int]] | str | None = None,
        schema: dict | None = None,  # type: ignore[type-arg]  # the planner reads `dict`
        *,
        max_tokens: int,
        max_turns: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the program's clock for the sub-run
    ) -> Any:
        """Start a sub-run: a planner of its own writes programs for `goal` over the chunks
        `data` names (a list of chunk indices, a dataset's name, or texts) and returns its
        done() answer, or fails as a tool call does. `max_tokens` of the budget are set aside
        for it; what it does not spend comes back. `max_turns` is at most your own; `timeout`
        (seconds) defaults to most of the time you have left. Use it for a part too large or
        too open for one worker call.
        """
        depth = nesting.depth + 1
        if depth > limits.max_depth:
            raise errors.LimitExceeded(
                f"tool.agent would start a sub-run at depth {depth}; Limits.max_depth="
                f"{limits.max_depth} allows {limits.max_depth}. Do this part with tool.worker "
                f"and pmap, or raise max_depth.",
                setting="Limits.max_depth",
                limit=limits.max_depth,
                observed=depth,
            )
        if not goal.strip():
            raise _argument("got an empty goal; say what the sub-run must find out.")
        chosen = select_data(caller_data, data)
        if max_tokens < 1:
            raise _argument(f"got max_tokens={max_tokens}; give the sub-run a positive number of tokens.")
        turns = limits.max_turns if max_turns is None else max_turns
        if not 1 <= turns <= limits.max_turns:
            raise _argument(f"got max_turns={turns}; it must be between 1 and {limits.max_turns}.")
        if timeout is not None and not timeout > 0:
            raise _argument(f"got timeout={timeout}; give the sub-run a positive number of seconds.")
        keyword = None if schema is None else regex_keyword(schema)
        if keyword is not None:
            # The sub-run's answer is checked on the host, as a worker's is: no regex there.
            raise _argument(
                f"does not take schemas with {keyword!r}: a regular expression would run on the "
                "host. Drop it, and check the text in the sub-run's program with re."
            )
        try:
            check = AnswerCheck.build(schema)
        except errors.ConfigError as exc:
            raise _argument(f"got a schema it cannot use: {exc}") from None
        request = SubRun(goal=goal, data=chosen, check=check, max_turns=turns,
                         call_span=span_of_call(current_call.get()))
        # A sub-run takes its place among those alive before it takes its slice: a sub-run
        # waiting for its turn holds no tokens its running siblings could spend.
        async with nesting.alive[depth - 1]:
            with ledger.open_slice(max_tokens, what="tool.agent's sub-run") as sliced:
                run, source = sub_clock(limits, timeout)
                within = sub_limits(limits, max_tokens=max_tokens, max_turns=turns, run=run)
                result = await start(attrs.evolve(request, clock_source=source), sliced, within)
        return outcome(result)

    made = Tool.from_function(agent, name="agent")
    return attrs.evolve(made, holds_slot=False)
