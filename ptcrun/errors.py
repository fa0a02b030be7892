"""The exception tree of ptcrun.

Every error ptcrun raises descends from :class:`PtcrunError`. The tree is split by who can fix
the problem::

    PtcrunError                              exit code 5
    ├── ConfigError(ValueError)              bad argument or Limits, raised before a run; exit 2
    ├── LimitExceeded                        .setting .limit .observed; exit 3
    │   ├── BudgetExceeded                   a reservation failed: the request was never sent
    │   ├── TimeLimitExceeded(TimeoutError)  .clock in {"call", "pmap", "turn", "run"}
    │   └── SandboxLimitExceeded             memory, CPU, output, threads, program size
    ├── SandboxError                         the child crashed, broke the protocol or was killed; exit 4
    ├── ToolError                            a user tool raised (.tool, __cause__)
    │   └── ToolArgumentError                arguments did not match the tool's signature
    ├── ProviderError                        an LLM call failed after retries (.provider .status .request_id)
    └── TranscriptError                      unreadable, or written by a newer schema; exit 2

Messages take one shape: what happened, observed against allowed (the setting), then the fix.
The values are kept in fields as well, so nothing has to parse the text.

An error crosses every boundary (host to sandbox, sandbox to host, into the transcript, out of
the CLI) as one payload, a JSON object with one set of keys::

    {"type": "TimeLimitExceeded",               the class name
     "message": "call clock expired after ...",  str(error)
     "fields": {"clock": "call", ...},           the class's payload_fields, when it has any
     "line": 3, "source_line": "x = f(y)"}       where a program's error happened, when known

:func:`to_payload` writes it and :func:`from_payload` reads it back as the same class with the
same message and fields.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, TypeVar

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
    "from_payload",
    "to_payload",
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
    """Base class of every error ptcrun raises.

    Attributes:
        exit_code: what the ``ptcrun`` command exits with when this error stops it.
        payload_fields: the attributes an error payload carries under ``"fields"``.
    """

    exit_code: ClassVar[int] = 5  # 1 is the ptcrun command's code for a program that called fail()
    payload_fields: ClassVar[tuple[str, ...]] = ()

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields when pickled (trio and pytest copy exceptions)
        return (_rebuild, (type(self), str(self), self.__dict__))


_E = TypeVar("_E", bound=BaseException)


def _rebuild(cls: type[_E], message: str, fields: dict[str, Any]) -> _E:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(fields)
    return exc


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
    payload_fields: ClassVar[tuple[str, ...]] = ("setting", "limit", "observed")

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

    payload_fields: ClassVar[tuple[str, ...]] = (*LimitExceeded.payload_fields, "clock", "seconds")

    def __init__(
        self,
        clock: Clock,
        seconds: float,
        detail: str = "",
        *,
        argument: bool = False,
        source: str | None = None,
        fix: str | None = None,
    ) -> None:
        # ``argument``: the clock was set lower by a program's own ``timeout=`` (pmap), so
        # raising the Limits setting would not help; say which knob it was. ``source`` and
        # ``fix`` say so for a clock set some other way (a sub-run's, from its caller's time).
        setting = f"{clock}(timeout=...)" if argument else f"Limits.{clock}_timeout"
        where = source or (f"the {clock}'s timeout= argument" if argument else setting)
        message = f"{clock} clock expired after {_num(seconds)} s ({where})"
        if detail:
            message += f"; {detail}"
        if fix is not None:
            message += f". {fix}"
        else:
            message += ". Raise that timeout= argument." if argument else f". Raise {clock}_timeout."
        super().__init__(message, setting=setting, limit=seconds)
        self.clock = clock
        self.seconds = seconds


class SandboxLimitExceeded(LimitExceeded):
    """The program hit a sandbox limit (memory, CPU, output, threads, program size).

    When the limit forced the child to be killed, ``restarted`` is true: the next program runs in
    a fresh child and earlier variables are gone.
    """

    payload_fields: ClassVar[tuple[str, ...]] = (*LimitExceeded.payload_fields, "restarted")

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
    """The sandbox child crashed, broke the protocol, or was killed from outside; the message
    says which, and what the host measured (CPU time, peak memory). The child is gone: the next
    program runs in a fresh one."""

    exit_code = 4


class ToolError(PtcrunError):
    """A user tool raised. The original exception is ``__cause__``.

    Attributes:
        tool: the tool's name.
    """

    payload_fields: ClassVar[tuple[str, ...]] = ("tool",)

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class ToolArgumentError(ToolError, TypeError):
    """Arguments given to a tool did not match its signature; the tool did not run."""


class ProviderError(PtcrunError):
    """An LLM request failed after its retries, or the provider broke its contract.

    Whatever went wrong inside a provider (an error status, a body that is not the API's, a
    reply of the wrong type, an exception of its own) reaches the runtime as this class; the
    original exception, when there was one, is ``__cause__``.

    Attributes:
        provider: a short name of the provider (``"anthropic:claude-haiku-4-5"``).
        status: the HTTP status of the last attempt, when there was one.
        request_id: the server's id of the last attempt (its ``request-id`` or
            ``x-request-id`` header), when it sent one: quote it to the provider's support.
    """

    payload_fields: ClassVar[tuple[str, ...]] = ("provider", "status", "request_id")

    def __init__(
        self, message: str, *, provider: str, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.request_id = request_id


class TranscriptError(PtcrunError):
    """A transcript file could not be read, or was written by a newer schema."""

    exit_code = 2  # like a bad argument: the file given is not one the command can read


#: The classes a payload's ``type`` names, rebuilt by :func:`from_payload`.
_CLASSES: dict[str, type[PtcrunError]] = {
    cls.__name__: cls
    for cls in (
        PtcrunError,
        ConfigError,
        LimitExceeded,
        BudgetExceeded,
        TimeLimitExceeded,
        SandboxLimitExceeded,
        SandboxError,
        ToolError,
        ToolArgumentError,
        ProviderError,
        TranscriptError,
    )
}


def to_payload(
    exc: BaseException, *, line: int | None = None, source_line: str | None = None
) -> dict[str, Any]:
    """Return the payload of ``exc``: the one form an error takes wherever it crosses.

    Keys: ``type`` (the class name) and ``message`` (``str(exc)``), always; ``fields`` (the
    values of the class's ``payload_fields``) when the class has any; ``line`` and
    ``source_line`` when given (where in a program the error happened). Every value is JSON
    data: a field that is not (``math.inf``, say, for "no limit") is written as ``None``.
    Works for any exception, so a program's own ``NameError`` crosses in the same form.
    """
    payload: dict[str, Any] = {"type": type(exc).__name__, "message": _message(exc)}
    names = getattr(type(exc), "payload_fields", ())
    if isinstance(exc, PtcrunError) and names:
        payload["fields"] = {name: _field(getattr(exc, name, None)) for name in names}
    if line is not None:
        payload["line"] = line
    if source_line is not None:
        payload["source_line"] = source_line
    return payload


def from_payload(payload: Any) -> PtcrunError:
    """Rebuild the error a payload describes: the same class, message and fields.

    The payload's ``type`` names a class of this module; any other name (a program's
    ``NameError``, an unknown class) gives a :class:`PtcrunError` whose message starts with
    that name. A ``None`` limit reads back as ``math.inf``. The payload may come from an
    untrusted sandbox: only the class's own ``payload_fields`` are set, only with JSON scalars.
    """
    if not isinstance(payload, dict):
        payload = {}
    name = payload.get("type")
    message = payload.get("message")
    message = message if isinstance(message, str) else ""
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        known = isinstance(name, str) and name
        return _rebuild(PtcrunError, f"{name}: {message}" if known else message, {})
    given = payload.get("fields")
    given = given if isinstance(given, dict) else {}
    fields: dict[str, Any] = {}
    for field in cls.payload_fields:
        value = given.get(field)
        if not (value is None or isinstance(value, (str, int, float, bool))):
            value = None
        if field == "limit" and value is None:
            value = math.inf  # written as None: "no limit"
        fields[field] = value
    return _rebuild(cls, message, fields)


def _field(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or type(value) in (str, int, float, bool):
        return value
    return str(value)


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a program's exception may break its own __str__
        return f"<{type(exc).__name__} whose message could not be read>"
