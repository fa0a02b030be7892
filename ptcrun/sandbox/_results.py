"""What one program execution gives back to the host."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..errors import PtcrunError

__all__ = ["ExecResult", "ProgramError"]


@attrs.frozen
class ProgramError:
    """An error in the program, reported as data and written so an LLM can fix its program.

    Attributes:
        kind: the exception's class name (``"SyntaxError"``, ``"NameError"``, ``"ToolError"``,
            ``"SandboxLimitExceeded"``, ``"TimeLimitExceeded"``, ...).
        message: what went wrong.
        line: 1-based line in the program, when known.
        source_line: the text of that line, when known.
    """

    kind: str
    message: str
    line: int | None = None
    source_line: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        text = f"{where}{self.kind}: {self.message}"
        if self.source_line:
            text += f"\n    {self.source_line}"
        return text


@attrs.frozen
class ExecResult:
    """The outcome of running one program in the sandbox.

    Attributes:
        status: ``"ok"`` (the program ended without calling ``done``/``fail``), ``"done"``,
            ``"failed"`` (it called ``fail``) or ``"error"`` (see ``error``).
        output: everything the program printed, in order, uncut.
        answer: the value given to ``done`` (JSON data), or the reason given to ``fail``.
        error: the program's error, when ``status == "error"``.
        limit: the host-side exception when a limit stopped the program (a ``LimitExceeded``
            whose ``setting`` and ``limit`` name what to raise) or the child crashed (a
            ``SandboxError``), else ``None``.
        restarted: the child was stopped because of this program; the next program runs in a
            fresh child and earlier variables are gone.
        note: a message for whoever reads the output, e.g. that this program ran in a fresh
            child after the previous one was stopped.
        seconds: wall-clock time of the execution.
        cpu_seconds: CPU time the child spent on it, when the child reported it.
        calls: how many tool calls the program made.
        threads_peak: the most threads the child ran at once.
        candidate: the value of the program's top-level ``answer`` variable after it ran, as
            JSON data (the run's fallback answer), when ``candidate_set``.
        candidate_set: the program's namespace holds an ``answer`` that is JSON data.
    """

    status: Literal["ok", "done", "failed", "error"]
    output: str = ""
    answer: Any = None
    error: ProgramError | None = None
    limit: PtcrunError | None = None
    restarted: bool = False
    note: str | None = None
    seconds: float = 0.0
    cpu_seconds: float | None = None
    calls: int = 0
    threads_peak: int = 0
    candidate: Any = None
    candidate_set: bool = False

    @property
    def ok(self) -> bool:
        """True unless the program ended in an error."""
        return self.status != "error"

