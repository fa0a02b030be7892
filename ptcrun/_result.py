"""Result, Turn, Usage and ProgramError: what every run gives back, however it ended.

The runtime, the sandbox and the transcript reader build these; this module imports none of
them, so imports run one way (those packages depend on the root, never the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from signal import Signals
from typing import Any, Literal

import attrs

from .errors import PtcrunError, to_payload

__all__ = ["ProgramError", "Result", "Status", "Turn", "Usage"]

Status = Literal["done", "failed", "budget_exceeded", "max_turns", "timeout", "cancelled", "error"]


@attrs.frozen
class Usage:
    """Tokens and cost a run spent, split by role.

    ``unsettled_tokens`` are reservations charged in full because their request was sent but
    never settled (it was cancelled or failed mid-flight, and the provider may bill it anyway);
    their split between input and output, and their cost, are unknown.
    """

    planner_input_tokens: int = 0
    planner_output_tokens: int = 0
    worker_input_tokens: int = 0
    worker_output_tokens: int = 0
    unsettled_tokens: int = 0
    #: USD of the settled requests; None when some request had no known price.
    cost: float | None = None
    #: LLM requests settled, all roles.
    calls: int = 0
    planner_calls: int = 0
    worker_calls: int = 0

    @property
    def planner_tokens(self) -> int:
        """Input plus output tokens of the planner's settled requests."""
        return self.planner_input_tokens + self.planner_output_tokens

    @property
    def worker_tokens(self) -> int:
        """Input plus output tokens of the workers' settled requests."""
        return self.worker_input_tokens + self.worker_output_tokens

    @property
    def total_tokens(self) -> int:
        """Every token charged to the budget: planner, workers and unsettled requests."""
        return self.planner_tokens + self.worker_tokens + self.unsettled_tokens


@attrs.frozen
class ProgramError:
    """An error in the program, reported as data and written so an LLM can fix its program.

    It crosses from the sandbox to the host, and into the transcript, as an error payload
    (see :func:`ptcrun.errors.to_payload`): ``kind`` is the payload's ``type``.

    Attributes:
        kind: the exception's class name (``"SyntaxError"``, ``"NameError"``, ``"ToolError"``,
            ``"SandboxLimitExceeded"``, ``"TimeLimitExceeded"``, ...).
        message: what went wrong.
        line: 1-based line in the program, when known.
        source_line: the text of that line, when known.
        fields: the error's fields, for ptcrun's own errors (``setting``, ``limit``, ``clock``...).
    """

    kind: str
    message: str
    line: int | None = None
    source_line: str | None = None
    fields: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        text = f"{where}{self.kind}: {self.message}"
        if self.source_line:
            text += f"\n    {self.source_line}"
        return text

    @classmethod
    def from_exception(cls, exc: BaseException) -> ProgramError:
        """The program error an exception raised on the host stands for (a clock, a crash)."""
        return cls.from_payload(to_payload(exc))

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ProgramError:
        """Read an error payload; values of the wrong type (from an untrusted child) are dropped."""
        kind, message = payload.get("type"), payload.get("message")
        line, source_line = payload.get("line"), payload.get("source_line")
        fields = payload.get("fields")
        return cls(
            kind=kind if isinstance(kind, str) else "Error",
            message=message if isinstance(message, str) else "",
            line=line if isinstance(line, int) and not isinstance(line, bool) else None,
            source_line=source_line if isinstance(source_line, str) else None,
            fields=dict(fields) if isinstance(fields, Mapping) else {},
        )

    def to_payload(self) -> dict[str, Any]:
        """The error payload: ``type``, ``message``, and ``fields``, ``line``, ``source_line`` when set."""
        payload: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.fields:
            payload["fields"] = dict(self.fields)
        if self.line is not None:
            payload["line"] = self.line
        if self.source_line is not None:
            payload["source_line"] = self.source_line
        return payload


@attrs.frozen
class Turn:
    """One planner turn: its reply, the program in it, and what running the program gave.

    Attributes:
        number: 1-based.
        reply: the planner's whole reply text.
        program: the code block that was run, or ``None`` when the reply had none (or several).
        output: everything the program printed, uncut.
        error: the program's error, if any.
        status: ``"ok"``, ``"done"``, ``"failed"``, ``"error"`` (the program's), or
            ``"no_code"``, ``"invalid_answer"`` (the turn was fed back without an answer).
        answer: the value given to ``done``/``fail`` in this turn, if any.
        planner_input_tokens, planner_output_tokens: the planner call's usage.
        seconds: wall time of the turn (planner call plus program).
        program_seconds: wall time of the program alone.
    """

    number: int
    reply: str
    program: str | None
    output: str = ""
    error: ProgramError | None = None
    status: str = "ok"
    answer: Any = None
    planner_input_tokens: int = 0
    planner_output_tokens: int = 0
    seconds: float = 0.0
    program_seconds: float = 0.0


@attrs.frozen
class Result:
    """The outcome of a run. ``Runtime.run`` returns one for every ending after the start.

    Attributes:
        status: ``done`` (the program called ``done`` with a valid answer), ``failed`` (it called
            ``fail``), ``budget_exceeded`` (the planner's next request did not fit the token
            budget), ``max_turns``, ``timeout`` (the run or a planner call ran out of time),
            ``cancelled`` (interrupted: Ctrl-C, SIGTERM or SIGHUP, named by ``signal``) or
            ``error`` (the planner's provider failed, the sandbox could not run, or an
            exception ptcrun did not foresee, which is then the error's ``__cause__``).
        answer: the answer; with ``fallback_used``, the last valid value of the program's
            ``answer`` variable (``max_turns``, or ``budget_exceeded`` with
            ``on_budget_exceeded="return_partial"``).
        error: the error that ended the run, if any.
        turns: every turn, in order.
        usage: tokens by role, and cost when prices are known.
        transcript: the path of the run's transcript file, when one was written.
        fallback_used: ``answer`` is a fallback, not a value given to ``done``.
        seconds: wall time of the run.
        signal: the signal that stopped the run (``signal.SIGINT`` for Ctrl-C, ``SIGTERM``,
            ``SIGHUP``), when one did; its status is then ``cancelled``.
        warnings: what went wrong beside the run without changing its outcome, one sentence
            each: the transcript file stopped short (a full or failing disk), an observer raised
            and was dropped.
        failed_calls: the calls whose results came back to the programs as failures, by error
            kind (``{"BudgetExceeded": 43}``): pmap items whose slot holds a ``Failure``, and
            tool calls that failed where the program went on (outside pmap, or caught inside
            an item). Empty when none failed.
        calls_made: what ``failed_calls`` is out of: every pmap item, every tool call outside
            pmap, and the failed calls caught inside items.
        sub_runs: the sub-runs that ``tool.agent`` calls started below this run, at every
            depth, by how each ended (``{"done": 4, "timeout": 1}``); empty when none ran. A
            sub-run that did not end ``done`` is a failed ``tool.agent`` call of its caller, in
            ``failed_calls``; one that answered counts its calls in ``calls_made`` and its failed
            calls in ``failed_calls``, so an answer built on a ``partial`` sub-run is ``partial``.
            Each sub-run's own record (turns, answer, error, usage) is in the transcript:
            ``Transcript.load(result.transcript).sub_runs``.
        cached_calls: worker requests answered by the result cache at no cost: an identical
            request earlier in the run, or the cache file (``Runtime(cache=...)``); those of the
            sub-runs below the run too, which share its cache.
        resumed_from: the transcript of the run this one resumed (``resume=``), or ``None``.
        replayed: replies replayed from that run at no cost, by role
            (``{"planner": 2, "worker": 40}``); empty when the run resumed none.
    """

    status: Status
    answer: Any = None
    error: PtcrunError | None = None
    turns: tuple[Turn, ...] = ()
    usage: Usage = attrs.Factory(Usage)
    transcript: Path | None = None
    fallback_used: bool = False
    seconds: float = 0.0
    signal: Signals | None = None  # not signal.Signals: the field's own name would shadow the module
    warnings: tuple[str, ...] = ()
    failed_calls: Mapping[str, int] = attrs.field(factory=dict)
    calls_made: int = 0
    sub_runs: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def sub_run_count(self) -> int:
        """How many sub-runs ran below this run, at every depth: the sum of ``sub_runs``."""
        return sum(self.sub_runs.values())

    @property
    def failed_sub_runs(self) -> int:
        """How many sub-runs did not end ``done``: they failed, ran out of turns, tokens or
        time, or were cancelled."""
        return sum(count for status, count in self.sub_runs.items() if status != "done")
    cached_calls: int = 0
    resumed_from: Path | None = None
    replayed: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def partial(self) -> bool:
        """Whether the answer was built while calls were failing: the run has an answer
        (``done``, or a fallback) and ``failed_calls`` is not empty.

        The programs were told of every failure after they ran, and the answer may have made
        up for them (by running the failed calls again); the transcript shows whether it did.
        A ``partial`` run is still ``done``: ``raise_for_status`` does not raise for it.
        """
        return bool(self.failed_calls) and (self.status == "done" or self.fallback_used)

    @property
    def failed_call_count(self) -> int:
        """How many calls failed in all: the sum of ``failed_calls``."""
        return sum(self.failed_calls.values())

    def raise_for_status(self) -> Result:
        """Return self when the run is ``done``; otherwise raise the error that ended it."""
        if self.status == "done":
            return self
        if self.error is not None:
            raise self.error
        detail = f": {self.answer}" if self.answer else ""
        raise PtcrunError(f"the run ended with status {self.status!r}{detail}")
