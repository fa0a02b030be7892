"""One run while it goes: the turn loop from the first planner request to the run's end.

Each turn sends the conversation to the planner under the run's budget, runs the program in the
reply in the sandbox, checks a ``done`` answer against the schema and feeds back what the
program printed, its error and its failed calls. Every way out (an answer, a limit, a clock, a
signal, a provider failure, an unforeseen error) goes through ``Run._end``, which closes the
open spans and writes ``run.end``, so every ending is one :class:`~ptcrun.Result`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .. import errors
from .._limits import Limits
from .._result import Result, Turn
from .._tools import Tool
from ..corpus._chunking import corpus_digest
from ..corpus._store import StoredChunks
from ..prompts._render import render
from ..sandbox.host._driver import Sandbox
from ..telemetry._live import open_tracing
from ..transcript._events import EventStream
from ..transcript._schema import (
    ConcurrencyChange,
    Event,
    LLMEnd,
    ProgramEnd,
    ProgramStart,
    RunEnd,
    RunStart,
    TurnEnd,
    TurnStart,
)
from ._agent import NestedEvents, Nesting, SubRun, clock_expired, make_agent_tool
from ._answers import AnswerCheck
from ._batches import BatchEngine
from ._budget import Ledger, input_room, worst_case_tokens
from ._cache import DiskCache, ReplyCache
from ._counts import WorkerCounts
from ._estimate import make_estimator, pass_tokens_about
from ._failures import FailureTally
from ._llm import budgeted_complete, request_tokens
from ._resume import Recorded, planner_key
from ._spans import SandboxSpans
from ._stops import holds, stop_error, unexpected_error
from ._turns import budget_line, calls_report, extract_code, feedback, first_message, system_prompt
from ._worker import make_worker_tool
from .providers._base import Message, Reply, Request
from .providers._ratelimit import Change, Throttles

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["Data", "Run", "data_summary"]

Data = Sequence[str] | Mapping[str, Sequence[str]]


@attrs.frozen
class _TurnBase:
    """What every Turn of one planner reply shares, whatever its program did."""

    number: int
    reply: str
    planner_input_tokens: int
    planner_output_tokens: int

    def turn(self, **fields: Any) -> Turn:
        return Turn(
            number=self.number,
            reply=self.reply,
            planner_input_tokens=self.planner_input_tokens,
            planner_output_tokens=self.planner_output_tokens,
            **fields,
        )


class Run:
    """The state of one run while it goes: the run itself, or a sub-run of ``tool.agent``.

    A sub-run is given its slice of the budget (``ledger``), its limits (its turns, its clocks
    inside its caller's) and its place in the tree (``nesting``); it writes its events, spans
    prefixed, into the run's one stream.
    """

    def __init__(
        self,
        runtime: Runtime,
        goal: str,
        data: Data,
        checker: AnswerCheck,
        events: EventStream | NestedEvents,
        *,
        limits: Limits | None = None,
        ledger: Ledger | None = None,
        nesting: Nesting | None = None,
        clock_source: str = "limit",
        disk: DiskCache | None = None,
        recorded: Recorded | None = None,
        throttles: Throttles | None = None,
        worker_cache: ReplyCache | None = None,
    ) -> None:
        self.rt = runtime
        # What set the run clock: Limits.run_timeout, or for a sub-run what sub_clock chose.
        self.clock_source = clock_source
        self.limits = limits if limits is not None else runtime.limits
        self.goal = goal
        self.data = data
        self.checker = checker
        self.events = events
        self.ledger = ledger if ledger is not None else Ledger(self.limits.max_tokens)
        self.nesting = nesting if nesting is not None else Nesting.top(self.limits)
        self.limiter = self.nesting.limiter
        self.planner = runtime.planner if self.nesting.depth == 0 else runtime.sub_planner
        # Every event goes through self.emit: with a tracer provider configured, it also makes
        # the run's OpenTelemetry spans (ptcrun/telemetry); without one, it is events.emit.
        # A sub-run's events go through its caller's emit (NestedEvents), so the top run's
        # tracing makes the whole tree's spans, the sub-run's under the agent call's.
        tracing = open_tracing(events.path, events.warnings) if isinstance(events, EventStream) else None
        emit = events.emit if tracing is None else tracing.watch(events.emit)
        # Worker requests answered at no cost, by source, in this run and the sub-runs below it
        # (whose events come through here): the cache is the whole tree's, so its own counts
        # would give a sub-run its caller's answers too.
        self.answered_free: dict[str, int] = {"run": 0, "disk": 0, "resume": 0}

        def counted(event: Event) -> object:
            if isinstance(event, LLMEnd) and event.role == "worker" and event.cached in self.answered_free:
                self.answered_free[event.cached] += 1
            return emit(event)

        self.emit = counted
        self.turn = 0
        self.turns: list[Turn] = []
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.run_timeout
        self.open_turn: str | None = None
        self.open_program: str | None = None
        self.candidate: Any = None
        self.has_candidate = False
        # The Result written when a KeyboardInterrupt ended the run; the interrupt propagates.
        self.interrupted: Result | None = None
        # The Result of however the run ended, set by _end (also when a cancellation then
        # propagates): the caller of a sub-run counts it from here.
        self.result: Result | None = None
        # Cancelled by stop(): a signal ends the run like a clock, with a Result.
        self.stop_scope = trio.CancelScope()
        self.stopped_by: signal.Signals | None = None
        # Counts the calls that fail, for the planner's feedback and the Result.
        self.failures = FailureTally()
        self.spans = SandboxSpans(self.failures.watch(self.emit))
        # Identical worker requests are answered once, in the whole tree of sub-runs (which get
        # their caller's cache, and so the cache file); a resume replays what was recorded.
        self.recorded = recorded
        self.worker_cache = worker_cache if worker_cache is not None else ReplyCache(
            replayed=None if recorded is None else recorded.worker, disk=disk, warn=events.warnings.append
        )
        self.planner_cache = None if recorded is None else ReplyCache(
            key=planner_key, replayed=recorded.planner, share=False
        )
        # Rate limits steer how many requests are in flight to each account, within
        # max_concurrency: the planner's, the workers' and the sub-runs' share one per account.
        self.throttles = throttles if throttles is not None else Throttles(
            self.limits.max_concurrency, on_change=self._concurrency_changed
        )
        self.throttle = self.throttles.of(runtime.worker)
        # Worker requests are counted from their parts, with the chunker's counts reused.
        self.counts = WorkerCounts.of_data(data)
        self.batches = BatchEngine(
            provider=runtime.worker, ledger=self.ledger, limits=self.limits, emit=self.emit,
            pmap_span=lambda pmap: f"t{self.spans.turn}.m{pmap}", counts=self.counts,
            cache=self.worker_cache, unread=None if recorded is None else recorded.batches,
        )
        worker = make_worker_tool(
            provider=runtime.worker,
            ledger=self.ledger,
            limits=self.limits,
            emit=self._worker_event,
            span_of_call=self.spans.call_span,
            cache=self.worker_cache,
            throttle=self.throttle,
            counts=self.counts,
        )
        self.tools: dict[str, Tool] = {"worker": worker}
        if self.limits.max_depth:
            self.tools["agent"] = make_agent_tool(
                data=data,
                limits=self.limits,
                ledger=self.ledger,
                nesting=self.nesting,
                span_of_call=self.spans.call_span,
                start=self._sub_run,
            )
        self.tools.update(runtime.tools)

    async def _sub_run(self, request: SubRun, ledger: Ledger, limits: Limits) -> Result:
        """Run the sub-run a program's ``tool.agent`` call asks for, to its Result."""
        sub = Run(
            self.rt,
            request.goal,
            request.data,
            request.check,
            NestedEvents(self.emit, self.events.path, request.call_span, self.events.warnings),
            limits=limits,
            ledger=ledger,
            nesting=self.nesting.below(),
            clock_source=request.clock_source,
            throttles=self.throttles,
            worker_cache=self.worker_cache,
        )
        try:
            return await sub.go()
        finally:
            # A cancelled sub-run still wrote its run.end; it counts among the run's sub-runs.
            if sub.result is not None:
                self.failures.sub_run_ended(sub.result)

    def _concurrency_changed(self, provider: str, change: Change) -> None:
        self.emit(ConcurrencyChange(
            span="run", parent=None, provider=provider, allowed=change.allowed,
            previous=change.previous, ceiling=change.ceiling, reason=change.reason,
        ))

    def _worker_event(self, event: Event) -> object:
        self.spans.note(event)  # so the call's call.end says when none of its requests was sent
        return self.emit(event)

    def snapshot(self) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        return {
            "tokens": self.ledger.remaining,
            "turns": self.limits.max_turns - self.turn,
            "seconds": None if math.isinf(left) else round(max(left, 0.0), 1),
            "cost": self.ledger.usage.cost,
        }

    def stop(self, signum: signal.Signals) -> None:
        """End the run with status ``cancelled``, naming the signal; later calls do nothing."""
        if self.stopped_by is None:
            self.stopped_by = signum
            self.stop_scope.cancel()

    async def go(self) -> Result:
        emit = self.emit
        emit(RunStart(
            span="run",
            parent=None,
            goal=self.goal,
            planner=self.planner.name,
            worker=self.rt.worker.name,
            tools=sorted(self.tools),
            limits=attrs.asdict(self.limits),
            data=data_summary(self.data),
            depth=self.nesting.depth,
            resumed_from=None if self.recorded is None else str(self.recorded.transcript),
        ))
        result: Result | None = None
        try:
            with self.stop_scope:
                with trio.move_on_after(self.limits.run_timeout) as run_scope:
                    # Started while the planner writes its first reply (see _first_reply),
                    # closed however the run ends.
                    sandbox = Sandbox(
                        data=self.data,
                        tools=self.tools,
                        limits=self.limits,
                        budget=self.snapshot,
                        estimate=make_estimator(self.limits),
                        limiter=self.limiter,
                        on_event=self.spans.on_sandbox_event,
                        batches=self.batches,
                    )
                    try:
                        result = await self._loop(sandbox)
                    finally:
                        await sandbox.aclose()
                if run_scope.cancelled_caught:
                    expired = clock_expired(self.limits.run_timeout, self.clock_source)
                    result = self._end("timeout", error=expired)
            if result is None and self.stopped_by is not None:
                result = self._stopped(self.stopped_by)
        except errors.SandboxError as exc:
            result = self._end("error", error=exc)
        except KeyboardInterrupt:
            self.interrupted = self._stopped(signal.SIGINT)
            raise
        except trio.Cancelled:
            self._end("cancelled", error=None)
            raise
        except BaseExceptionGroup as group:
            # A cancellation or a Ctrl-C that went through a nursery (a pmap's calls) arrives
            # wrapped in a group; the run must still end its transcript with run.end.
            if not holds(group, (trio.Cancelled, KeyboardInterrupt)):
                result = self._end("error", error=unexpected_error(group))
            elif holds(group, KeyboardInterrupt):
                self.interrupted = self._stopped(signal.SIGINT)
                raise
            else:
                self._end("cancelled", error=None)
                raise
        except Exception as exc:
            # Every way ptcrun knows a run can fail has its own status and message; this is
            # the one it did not foresee. The run still ends with a Result and run.end.
            result = self._end("error", error=unexpected_error(exc))
        assert result is not None
        return result

    def _stopped(self, signum: signal.Signals) -> Result:
        return self._end("cancelled", error=stop_error(signum), signal=signum)

    async def _first_reply(
        self, ask: Callable[[], Awaitable[Reply]], sandbox: Sandbox
    ) -> tuple[Reply, float]:
        """The planner's first reply, while the sandbox child starts: a child takes a quarter of
        a second to start, and a model seconds to reply, so neither waits for the other.

        The errors of either are raised here as they would be alone (not in a group): the
        sandbox's first, since without it no program can run. The turn's clock times the reply
        only; the child's start has its own clock, within the run's. Returns the reply and the
        seconds then spent waiting for the child, which the program's turn clock leaves out.
        """
        outcome: dict[str, Any] = {}
        asking = trio.CancelScope()

        async def start() -> None:
            try:
                await sandbox.__aenter__()
            except Exception as exc:  # a SandboxError; raised below
                outcome["start"] = exc
                # No program can run: the reply is not waited for (before, no request was sent).
                asking.cancel()

        async def reply() -> None:
            try:
                with trio.fail_after(self.limits.turn_timeout):
                    outcome["reply"] = await ask()
                outcome["replied"] = time.monotonic()
            except Exception as exc:  # trio.TooSlowError too: the caller words it
                outcome["error"] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start)
            with asking:
                await reply()
        for failed in ("start", "error"):
            if failed in outcome:
                raise outcome[failed]
        result: Reply = outcome["reply"]
        return result, time.monotonic() - outcome["replied"]

    async def _loop(self, sandbox: Sandbox) -> Result:
        corpus_tokens, pass_tokens = pass_tokens_about(self.data, self.goal, self.limits.worker_max_tokens)
        # At the deepest level tool.agent only refuses (with a message that says why): it is
        # not offered to a planner that could not use it.
        nests = self.nesting.depth < self.limits.max_depth
        offered = {name: t for name, t in self.tools.items() if name != "agent" or nests}
        first = first_message(
            self.goal, self.data, offered, self.limits, self.snapshot(), self.checker.schema,
            corpus_tokens=corpus_tokens, pass_tokens=pass_tokens,
        )
        messages = [Message("user", first)]
        system = system_prompt(agent=nests)
        while self.turn < self.limits.max_turns:
            self.turn += 1
            turn_span = f"t{self.turn}"
            self.spans.turn = self.turn
            self.emit(TurnStart(span=turn_span, parent="run", turn=self.turn))
            self.open_turn = turn_span
            turn_started = clock_from = time.monotonic()
            request = Request(
                messages=tuple(messages),
                system=system,
                max_tokens=self.limits.planner_max_tokens,
                purpose="planner",
                cache_system=True,
            )
            async def ask(request: Request = request, turn_span: str = turn_span) -> Reply:
                # A sub-run's planner reply is a leaf call like a worker's: it takes a slot.
                async with self._planner_slot():
                    return await budgeted_complete(
                        self.planner,
                        request,
                        ledger=self.ledger,
                        role="planner",
                        what=f"planner turn {self.turn}",
                        emit=self.emit,
                        span=f"{turn_span}.planner",
                        parent=turn_span,
                        cache=self.planner_cache,
                        throttle=self.throttles.of(self.planner),
                    )

            try:
                if self.turn > 1:
                    with trio.fail_after(self.limits.turn_timeout):
                        reply = await ask()
                else:
                    reply, waited = await self._first_reply(ask, sandbox)
                    clock_from += waited  # the child's start is not on the turn clock
            except errors.BudgetExceeded as exc:
                self._turn_end(turn_span, "budget_exceeded")
                if self.limits.on_budget_exceeded == "return_partial" and self.has_candidate:
                    return self._end("budget_exceeded", error=exc, answer=self.candidate, fallback=True)
                return self._end("budget_exceeded", error=exc)
            except trio.TooSlowError:
                self._turn_end(turn_span, "timeout")
                expired = errors.TimeLimitExceeded(
                    "turn", self.limits.turn_timeout, "the planner did not reply in time"
                )
                return self._end("timeout", error=expired)
            except (errors.ProviderError, errors.ConfigError) as exc:
                self._turn_end(turn_span, "error")
                return self._end("error", error=exc)
            messages.append(Message("assistant", reply.text))
            code, blocks = extract_code(reply.text)
            base = _TurnBase(self.turn, reply.text, reply.input_tokens, reply.output_tokens)
            if code is None:
                seconds = time.monotonic() - turn_started
                self._record(base.turn(program=None, status="no_code", seconds=seconds), turn_span)
                no_code = render("no_code", count=blocks, next_turn=self.turn + 1,
                                 max_turns=self.limits.max_turns, budget=budget_line(self.snapshot()))
                messages.append(Message("user", no_code))
                continue
            self.emit(ProgramStart(span=f"{turn_span}.program", parent=turn_span, source=code))
            self.open_program = f"{turn_span}.program"
            left = max(self.limits.turn_timeout - (time.monotonic() - clock_from), 0.001)
            # Nothing else of the run is going on between the reply and its program: counting
            # here holds up no call.
            conversation = _conversation_tokens(messages, system)
            self.failures.start_program()
            # Workers may not spend what the planner needs to read how the program went.
            held = self._next_turn_tokens(conversation)
            with self.ledger.holding_back(held, for_what="the planner's next turn"):
                executed = await sandbox.execute(code, timeout=left)
            failures = self.failures.end_program(None if executed.error is None else executed.error.kind)
            self.open_program = None
            self.emit(ProgramEnd(
                span=f"{turn_span}.program",
                parent=turn_span,
                status=executed.status,
                answer=executed.answer,
                error=None if executed.error is None else executed.error.to_payload(),
                note=executed.note,
                restarted=executed.restarted,
                seconds=executed.seconds,
                cpu_seconds=executed.cpu_seconds,
                calls=executed.calls,
            ))
            turn = base.turn(
                program=code,
                output=executed.output,
                error=executed.error,
                status=executed.status,
                answer=executed.answer,
                seconds=time.monotonic() - turn_started,
                program_seconds=executed.seconds,
            )
            if executed.candidate_set:
                problem = self.checker.problem(executed.candidate)
                if problem is None:
                    self.candidate, self.has_candidate = executed.candidate, True
            if executed.status == "done":
                problem = self.checker.problem(executed.answer)
                if problem is None:
                    self._record(turn, turn_span)
                    return self._end("done", answer=executed.answer)
                self._record(attrs.evolve(turn, status="invalid_answer"), turn_span)
                refused = render("schema_failed", problem=problem, next_turn=self.turn + 1,
                                 max_turns=self.limits.max_turns, budget=budget_line(self.snapshot()))
                report = calls_report(failures).strip("\n")
                messages.append(Message("user", f"{report}\n\n{refused}" if report else refused))
                continue
            self._record(turn, turn_span)
            if executed.status == "failed":
                return self._end("failed", answer=executed.answer)
            room = input_room(self.ledger.remaining, self.limits.planner_max_tokens) - conversation
            told = feedback(executed, turn=self.turn, limits=self.limits, snapshot=self.snapshot(),
                            failures=failures, fit_tokens=room)
            messages.append(Message("user", told))
        if self.has_candidate:
            return self._end("max_turns", answer=self.candidate, fallback=True)
        return self._end("max_turns")

    def _planner_slot(self) -> contextlib.AbstractAsyncContextManager[object]:
        """A slot of the run's limiter for a sub-run's planner request; none for the run's own,
        which never overlaps its program's calls."""
        if self.nesting.depth:
            return self.limiter
        return contextlib.nullcontext()

    def _next_turn_tokens(self, conversation: int) -> int:
        """The worst case of the planner's next request: the conversation so far, the feedback
        on the program (``Limits.feedback_reserve_tokens``) and a whole reply; 0 on the last turn."""
        if self.turn >= self.limits.max_turns:
            return 0
        limits = self.limits
        return worst_case_tokens(conversation + limits.feedback_reserve_tokens, limits.planner_max_tokens)

    def _record(self, turn: Turn, span: str) -> None:
        self.turns.append(turn)
        self._turn_end(span, turn.status, program=turn.program is not None)

    def _turn_end(self, span: str, status: str, **fields: Any) -> None:
        self.open_turn = None
        usage = self.ledger.usage
        self.emit(TurnEnd(
            span=span, parent="run", turn=self.turn, status=status, tokens_used=usage.total_tokens, **fields
        ))

    def _end(
        self,
        status: str,
        *,
        error: errors.PtcrunError | None = None,
        answer: Any = None,
        fallback: bool = False,
        signal: signal.Signals | None = None,
    ) -> Result:
        # A clock or a cancel can end the run mid-turn: close what is open, so every span ends.
        if self.open_program is not None:
            payload = None if error is None else errors.to_payload(error)
            self.emit(
                ProgramEnd(span=self.open_program, parent=self.open_turn, status=status, error=payload)
            )
            self.open_program = None
        if self.open_turn is not None:
            self._turn_end(self.open_turn, status)
        usage = self.ledger.usage
        result = Result(
            status=status,  # type: ignore[arg-type]
            answer=answer,
            error=error,
            turns=tuple(self.turns),
            usage=usage,
            transcript=self.events.path,
            fallback_used=fallback,
            seconds=time.monotonic() - self.started,
            signal=signal,
            failed_calls=self.failures.run_failures,
            calls_made=self.failures.calls,
            sub_runs=self.failures.run_sub_runs,
            cached_calls=self.answered_free["run"] + self.answered_free["disk"],
            resumed_from=None if self.recorded is None else self.recorded.transcript,
            replayed=self._replayed(),
        )
        self.result = result
        self.emit(RunEnd(
            span="run",
            parent=None,
            status=status,
            answer=answer,
            fallback_used=fallback,
            error=None if error is None else errors.to_payload(error),
            usage=_usage_dict(usage),
            turns=len(self.turns),
            seconds=result.seconds,
            failed_calls=result.failed_calls,
            calls_made=result.calls_made,
            partial=result.partial,
            sub_runs=result.sub_runs,
            cached_calls=result.cached_calls,
            replayed=result.replayed,
        ))
        return result

    def _replayed(self) -> dict[str, int]:
        if self.planner_cache is None:
            return {}
        return {"planner": self.planner_cache.hits["resume"], "worker": self.answered_free["resume"]}


def _conversation_tokens(messages: Sequence[Message], system: str) -> int:
    """The planner's conversation so far as its next request counts it, before the feedback."""
    return request_tokens(Request(messages=tuple(messages), system=system, purpose="planner"))


def _usage_dict(usage: Any) -> dict[str, Any]:
    out = attrs.asdict(usage)
    out["total_tokens"] = usage.total_tokens
    return out


def data_summary(data: Data) -> dict[str, Any]:
    """The corpus as ``run.start`` records it: chunks, characters and SHA-256, per name."""

    def one(chunks: Sequence[str]) -> dict[str, Any]:
        if isinstance(chunks, StoredChunks):  # measured when written: no pass over the corpus
            return {"chunks": len(chunks), "chars": chunks.chars, "sha256": chunks.sha256}
        return {"chunks": len(chunks), "chars": sum(len(c) for c in chunks), "sha256": corpus_digest(chunks)}

    if isinstance(data, Mapping):
        return {name: one(chunks) for name, chunks in data.items()}
    return one(data)
