"""Result and Turn: what every run gives back, however it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from .errors import PtcrunError
from .runtime._budget import Usage
from .sandbox._results import ProgramError

__all__ = ["Result", "Status", "Turn", "Usage"]

Status = Literal["done", "failed", "budget_exceeded", "max_turns", "timeout", "cancelled", "error"]


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
            ``cancelled`` (interrupted) or ``error`` (the planner's provider failed, or the
            sandbox could not run).
        answer: the answer; with ``fallback_used``, the last valid value of the program's
            ``answer`` variable (``max_turns``, or ``budget_exceeded`` with
            ``on_budget_exceeded="return_partial"``).
        error: the error that ended the run, if any.
        turns: every turn, in order.
        usage: tokens by role, and cost when prices are known.
        transcript: the path of the run's transcript file, when one was written.
        fallback_used: ``answer`` is a fallback, not a value given to ``done``.
        seconds: wall time of the run.
    """

    status: Status
    answer: Any = None
    error: PtcrunError | None = None
    turns: tuple[Turn, ...] = ()
    usage: Usage = attrs.Factory(Usage)
    transcript: Path | None = None
    fallback_used: bool = False
    seconds: float = 0.0

    def raise_for_status(self) -> Result:
        """Return self when the run is ``done``; otherwise raise the error that ended it."""
        if self.status == "done":
            return self
        if self.error is not None:
            raise self.error
        raise PtcrunError(f"the run ended with status {self.status!r}" + (f": {self.answer}" if self.answer else ""))
