"""What one program execution gives back to the host.

:class:`ProgramError` lives with the run's results (``Turn.error`` holds one) and is offered
here too, where the sandbox's callers look for it.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from .._result import ProgramError
from ..errors import PtcrunError

__all__ = ["ExecResult", "ProgramError"]


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

