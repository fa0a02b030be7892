"""The exception tree of ptcrun.

Every error ptcrun raises descends from :class:`PtcrunError`. The tree is split by who can fix
the problem::

    PtcrunError                              exit code 1
    ├── ConfigError(ValueError)              bad argument or Limits, raised before a run; exit 2
    ├── LimitExceeded                        .setting .limit .observed; exit 3
    │   ├── BudgetExceeded                   a reservation failed: the request was never sent
    │   ├── TimeLimitExceeded(TimeoutError)  .clock in {"call", "pmap", "turn", "run"}
    │   └── SandboxLimitExceeded             memory, CPU, output, threads, program size
    ├── SandboxError                         the child crashed or broke the protocol; exit 4
    ├── ToolError                            a user tool raised (.tool, __cause__)
    │   └── ToolArgumentError                arguments did not match the tool's signature
    ├── ProviderError                        an LLM call failed after retries (.provider .status)
    └── TranscriptError                      unreadable, or written by a newer schema; exit 2

Messages take one shape: what happened, observed against allowed (the setting), then the fix.
The values are kept in fields as well, so nothing has to parse the text.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "LimitExceeded",
    "ProviderError",
    "PtcrunError",
    "SandboxError",
    "SandboxLimitExceeded",
    "TimeLimitExceeded",
    "ToolArgumentError",
    "ToolError",
    "TranscriptError",
]

Clock = Literal["call", "pmap", "turn", "run"]


def _num(value: float) -> str:
    """Render a limit for a message: thousands separators, no trailing .0."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}"


class PtcrunError(Exception):
    """Base class of every error ptcrun raises."""

    exit_code: int = 1


class ConfigError(PtcrunError, ValueError):
    """A bad argument or setting, found before anything ran. Fix the call and retry."""

    exit_code = 2


class LimitExceeded(PtcrunError):
    """A limit stopped the work.

    Attributes:
        setting: the name of the setting that raises the limit, as the user spells it
            (``"Limits.max_tokens"``).
        limit: the value of that setting.
        observed: what was needed or seen when the limit was hit, when known.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        setting: str,
        limit: float,
        observed: float | None = None,
    ) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit
        self.observed = observed

    def __reduce__(self):  # keep the fields when pickled (trio and pytest copy exceptions)
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls, message, fields):
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(fields)
    return exc


class BudgetExceeded(LimitExceeded):
    """An LLM request could not reserve its worst case from the token budget; it was never sent."""

    @classmethod
    def for_request(cls, *, what: str, needed: int, remaining: int, limit: int) -> BudgetExceeded:
        return cls(
            f"{what} needs {_num(needed)} tokens; {_num(remaining)} of "
            f"Limits.max_tokens={_num(limit)} remain. Raise max_tokens, or send less text.",
            setting="Limits.max_tokens",
            limit=limit,
            observed=needed,
        )


class TimeLimitExceeded(LimitExceeded, TimeoutError):
    """One of the four clocks expired: ``call`` ≤ ``pmap`` ≤ ``turn`` ≤ ``run``.

    Attributes:
        clock: which clock fired.
        seconds: its value, in seconds.
    """

    def __init__(self, clock: Clock, seconds: float, detail: str = "", *, argument: bool = False) -> None:
        # ``argument``: the clock was set lower by a program's own ``timeout=`` (pmap), so
        # raising the Limits setting would not help; say which knob it was.
        setting = f"{clock}(timeout=...)" if argument else f"Limits.{clock}_timeout"
        where = f"the {clock}'s timeout= argument" if argument else setting
        message = f"{clock} clock expired after {_num(seconds)} s ({where})"
        if detail:
            message += f"; {detail}"
        message += ". Raise that timeout= argument." if argument else f". Raise {clock}_timeout."
        super().__init__(message, setting=setting, limit=seconds)
        self.clock = clock
        self.seconds = seconds


class SandboxLimitExceeded(LimitExceeded):
    """The program hit a sandbox limit (memory, CPU, output, threads, program size).

    When the limit forced the child to be killed, ``restarted`` is true: the next program runs in
    a fresh child and earlier variables are gone.
    """

    def __init__(
        self,
        message: str,
        *,
        setting: str,
        limit: float,
        observed: float | None = None,
        restarted: bool = False,
    ) -> None:
        super().__init__(message, setting=setting, limit=limit, observed=observed)
        self.restarted = restarted


class SandboxError(PtcrunError):
    """The sandbox child crashed or broke the protocol. It has been killed."""

    exit_code = 4


class ToolError(PtcrunError):
    """A user tool raised. The original exception is ``__cause__``.

    Attributes:
        tool: the tool's name.
    """

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool

    def __reduce__(self):
        return (_rebuild, (type(self), str(self), self.__dict__))


class ToolArgumentError(ToolError, TypeError):
    """Arguments given to a tool did not match its signature; the tool did not run."""


class ProviderError(PtcrunError):
    """An LLM request failed after its retries.

    Attributes:
        provider: a short name of the provider (``"anthropic:claude-haiku-4-5"``).
        status: the HTTP status of the last attempt, when there was one.
    """

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status

    def __reduce__(self):
        return (_rebuild, (type(self), str(self), self.__dict__))


class TranscriptError(PtcrunError):
    """A transcript file could not be read, or was written by a newer schema."""

    exit_code = 2  # like a bad argument: the file given is not one the command can read
