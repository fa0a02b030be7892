"""Runtime: give a planner a goal and a corpus; run its programs turn by turn until done.

One run owns one token ledger (planner and workers), one ``CapacityLimiter`` (every tool and
worker call, however nested), one sandbox child (restarted if a limit kills it) and one event
stream (the transcript and the observers). Every ending after the start is a :class:`Result`;
only a bad argument raises, and only before anything runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import errors
from .._limits import Limits
from .._result import Result, Turn
from .._tools import Tool, collect_tools
from ..corpus._chunking import corpus_digest
from ..prompts._render import render
from ..sandbox.host._driver import Sandbox
from ..transcript._events import EventStream, Observer, new_run_dir
from ..transcript._schema import ProgramEnd, ProgramStart, RunEnd, RunStart, TurnEnd, TurnStart
from ._answers import AnswerCheck
from ._budget import Ledger
from ._llm import budgeted_complete
from ._spans import SandboxSpans
from ._turns import budget_line, extract_code, feedback, first_message, system_prompt
from ._worker import make_worker_tool
from .providers._base import Message, Provider, Request

__all__ = ["Runtime"]

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


class Runtime:
    """Runs a planner LLM over a corpus through sandboxed programs.

    Example::

        rt = Runtime(planner=AnthropicProvider("claude-sonnet-4-6"),
                     worker=AnthropicProvider("claude-haiku-4-5"),
                     tools=[lookup_customer], limits=Limits(max_tokens=100_000))
        result = rt.run("Which customers reported outages?", chunk_by_tokens(text, 4000))

    Args:
        planner: the provider that writes the programs.
        worker: the provider behind ``tool.worker``; defaults to the planner.
        tools: the user's tools: plain functions (sync or async) or ``@ptcrun.tool`` ones.
        limits: every ceiling of a run.
        transcript_dir: where each run writes ``<timestamp>-<id>/transcript.jsonl``;
            ``None`` writes no file.
        observers: functions called with every event as it happens (the same events the
            transcript holds).
    """

    def __init__(
        self,
        *,
        planner: Provider,
        worker: Provider | None = None,
        tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool] | None = None,
        limits: Limits | None = None,
        transcript_dir: str | os.PathLike[str] | None = "runs",
        observers: Sequence[Observer] = (),
    ) -> None:
        for role, provider in (("planner", planner), ("worker", worker)):
            if provider is not None and not callable(getattr(provider, "complete", None)):
                raise errors.ConfigError(
                    f"{role} must be a provider (an object with an async complete(request) method); "
                    f"got {type(provider).__name__}. Use e.g. ptcrun.AnthropicProvider('claude-sonnet-4-6')."
                )
        if limits is not None and not isinstance(limits, Limits):
            raise errors.ConfigError(f"limits must be a ptcrun.Limits; got {type(limits).__name__}.")
        self.planner = planner
        self.worker = worker if worker is not None else planner
        self.tools = collect_tools(tools)
        self.limits = limits if limits is not None else Limits()
        self.transcript_dir = None if transcript_dir is None else Path(transcript_dir)
        self.observers = tuple(observers)

    def run(self, goal: str, data: Data, *, schema: Any = None) -> Result:
        """Run to the end and return the :class:`Result` (synchronous; starts its own trio loop).

        Args:
            goal: what the planner must find out or produce.
            data: the corpus as chunk strings (see ``chunk_by_tokens``), or a mapping of
                names to such lists.
            schema: the answer's shape: a JSON Schema dict, or a Python type such as
                ``list[str]`` or ``dict[str, int]``. A ``done()`` answer that does not match is
                fed back to the planner and costs a turn.

        A Ctrl-C (``KeyboardInterrupt``) ends the run with status ``cancelled``: this method
        owns its event loop, so it may turn the interrupt into a :class:`Result`.

        Raises:
            ConfigError: a bad argument, before anything runs.
        """
        interrupted: list[Result] = []
        try:
            return trio.run(self._arun, goal, data, schema, interrupted)
        except (KeyboardInterrupt, BaseExceptionGroup) as exc:
            if interrupted and _only_stops(exc):
                return interrupted[0]
            raise

    async def arun(self, goal: str, data: Data, schema: Any = None) -> Result:
        """The async form of :meth:`run`, for use under trio.

        A ``KeyboardInterrupt`` (or a cancellation from outside) is not turned into a
        :class:`Result`: it propagates, as trio expects, after the transcript has recorded
        ``run.end`` with status ``cancelled``.
        """
        return await self._arun(goal, data, schema, [])

    async def _arun(
        self, goal: str, data: Data, schema: Any, interrupted: list[Result]
    ) -> Result:
        if not isinstance(goal, str) or not goal.strip():
            raise errors.ConfigError("goal must be a non-empty string saying what the planner should find out.")
        checker = AnswerCheck.build(schema)
        # Validate the data now, so a bad corpus is a ConfigError before the run starts.
        Sandbox(data=data, limits=self.limits)
        run_dir = new_run_dir(self.transcript_dir) if self.transcript_dir is not None else None
        events = EventStream(run_dir / "transcript.jsonl" if run_dir else None, self.observers)
        run = _Run(self, goal, data, checker, events)
        try:
            return await run.go()
        finally:
            if run.interrupted is not None:
                interrupted.append(run.interrupted)
            events.close()


class _Run:
    """The state of one run while it goes."""

    def __init__(self, runtime: Runtime, goal: str, data: Data, checker: AnswerCheck, events: EventStream) -> None:
        self.rt = runtime
        self.limits = runtime.limits
        self.goal = goal
        self.data = data
        self.checker = checker
        self.events = events
        self.ledger = Ledger(self.limits.max_tokens)
        self.limiter = trio.CapacityLimiter(self.limits.max_concurrency)
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
        self.spans = SandboxSpans(events.emit)
        worker = make_worker_tool(
            provider=runtime.worker,
            ledger=self.ledger,
            limits=self.limits,
            emit=events.emit,
            span_of_call=self.spans.call_span,
        )
        self.tools: dict[str, Tool] = {"worker": worker, **runtime.tools}

    def snapshot(self) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        return {
            "tokens": self.ledger.remaining,
            "turns": self.limits.max_turns - self.turn,
            "seconds": None if math.isinf(left) else round(max(left, 0.0), 1),
            "cost": self.ledger.usage.cost,
        }

    async def go(self) -> Result:
        emit = self.events.emit
        emit(RunStart(
            span="run",
            parent=None,
            goal=self.goal,
            planner=self.rt.planner.name,
            worker=self.rt.worker.name,
            tools=sorted(self.tools),
            limits=attrs.asdict(self.limits),
            data=_data_summary(self.data),
        ))
        result: Result | None = None
        try:
            with trio.move_on_after(self.limits.run_timeout) as run_scope:
                async with Sandbox(
                    data=self.data,
                    tools=self.tools,
                    limits=self.limits,
                    budget=self.snapshot,
                    limiter=self.limiter,
                    on_event=self.spans.on_sandbox_event,
                ) as sandbox:
                    result = await self._loop(sandbox)
            if run_scope.cancelled_caught:
                result = self._end("timeout", error=errors.TimeLimitExceeded("run", self.limits.run_timeout))
        except errors.SandboxError as exc:
            result = self._end("error", error=exc)
        except KeyboardInterrupt:
            self.interrupted = self._end("cancelled", error=None)
            raise
        except trio.Cancelled:
            self._end("cancelled", error=None)
            raise
        except BaseExceptionGroup as group:
            # A cancellation or a Ctrl-C that went through a nursery (a pmap's calls) arrives
            # wrapped in a group; the run must still end its transcript with run.end.
            stops, rest = group.split((trio.Cancelled, KeyboardInterrupt))
            if stops is None or rest is not None:
                raise
            ended = self._end("cancelled", error=None)
            if stops.subgroup(KeyboardInterrupt) is not None:
                self.interrupted = ended
            raise
        assert result is not None
        return result

    async def _loop(self, sandbox: Sandbox) -> Result:
        messages = [Message("user", first_message(self.goal, self.data, self.tools, self.limits, self.snapshot(), self.checker.schema))]
        system = system_prompt()
        while self.turn < self.limits.max_turns:
            self.turn += 1
            turn_span = f"t{self.turn}"
            self.spans.turn = self.turn
            self.events.emit(TurnStart(span=turn_span, parent="run", turn=self.turn))
            self.open_turn = turn_span
            turn_started = time.monotonic()
            request = Request(
                messages=tuple(messages),
                system=system,
                max_tokens=self.limits.planner_max_tokens,
                purpose="planner",
                cache_system=True,
            )
            try:
                with trio.fail_after(self.limits.turn_timeout):
                    reply = await budgeted_complete(
                        self.rt.planner,
                        request,
                        ledger=self.ledger,
                        role="planner",
                        what=f"planner turn {self.turn}",
                        emit=self.events.emit,
                        span=f"{turn_span}.planner",
                        parent=turn_span,
                    )
            except errors.BudgetExceeded as exc:
                self._turn_end(turn_span, "budget_exceeded")
                if self.limits.on_budget_exceeded == "return_partial" and self.has_candidate:
                    return self._end("budget_exceeded", error=exc, answer=self.candidate, fallback=True)
                return self._end("budget_exceeded", error=exc)
            except trio.TooSlowError:
                self._turn_end(turn_span, "timeout")
                return self._end("timeout", error=errors.TimeLimitExceeded("turn", self.limits.turn_timeout, "the planner did not reply in time"))
            except (errors.ProviderError, errors.ConfigError) as exc:
                self._turn_end(turn_span, "error")
                return self._end("error", error=exc)
            messages.append(Message("assistant", reply.text))
            code, blocks = extract_code(reply.text)
            base = _TurnBase(self.turn, reply.text, reply.input_tokens, reply.output_tokens)
            if code is None:
                self._record(base.turn(program=None, status="no_code", seconds=time.monotonic() - turn_started), turn_span)
                messages.append(Message("user", render("no_code", count=blocks, next_turn=self.turn + 1, max_turns=self.limits.max_turns, budget=budget_line(self.snapshot()))))
                continue
            self.events.emit(ProgramStart(span=f"{turn_span}.program", parent=turn_span, source=code))
            self.open_program = f"{turn_span}.program"
            left = max(self.limits.turn_timeout - (time.monotonic() - turn_started), 0.001)
            executed = await sandbox.execute(code, timeout=left)
            self.open_program = None
            self.events.emit(ProgramEnd(
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
                messages.append(Message("user", render("schema_failed", problem=problem, next_turn=self.turn + 1, max_turns=self.limits.max_turns, budget=budget_line(self.snapshot()))))
                continue
            self._record(turn, turn_span)
            if executed.status == "failed":
                return self._end("failed", answer=executed.answer)
            messages.append(Message("user", feedback(executed, turn=self.turn, limits=self.limits, snapshot=self.snapshot())))
        if self.has_candidate:
            return self._end("max_turns", answer=self.candidate, fallback=True)
        return self._end("max_turns")

    def _record(self, turn: Turn, span: str) -> None:
        self.turns.append(turn)
        self._turn_end(span, turn.status, program=turn.program is not None)

    def _turn_end(self, span: str, status: str, **fields: Any) -> None:
        self.open_turn = None
        usage = self.ledger.usage
        self.events.emit(TurnEnd(span=span, parent="run", turn=self.turn, status=status, tokens_used=usage.total_tokens, **fields))

    def _end(self, status: str, *, error: errors.PtcrunError | None = None, answer: Any = None, fallback: bool = False) -> Result:
        # A clock or a cancel can end the run mid-turn: close what is open, so every span ends.
        if self.open_program is not None:
            self.events.emit(ProgramEnd(span=self.open_program, parent=self.open_turn, status=status, error=None if error is None else errors.to_payload(error)))
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
        )
        self.events.emit(RunEnd(
            span="run",
            parent=None,
            status=status,
            answer=answer,
            fallback_used=fallback,
            error=None if error is None else errors.to_payload(error),
            usage=_usage_dict(usage),
            turns=len(self.turns),
            seconds=result.seconds,
        ))
        return result


def _only_stops(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, alone or grouped with cancellations only."""
    if isinstance(exc, BaseExceptionGroup):
        stops, rest = exc.split((trio.Cancelled, KeyboardInterrupt))
        return rest is None and stops is not None and stops.subgroup(KeyboardInterrupt) is not None
    return isinstance(exc, KeyboardInterrupt)


def _usage_dict(usage: Any) -> dict[str, Any]:
    out = attrs.asdict(usage)
    out["total_tokens"] = usage.total_tokens
    return out


def _data_summary(data: Data) -> dict[str, Any]:
    def one(chunks: Sequence[str]) -> dict[str, Any]:
        return {"chunks": len(chunks), "chars": sum(len(c) for c in chunks), "sha256": corpus_digest(chunks)}

    if isinstance(data, Mapping):
        return {name: one(chunks) for name, chunks in data.items()}
    return one(data)
