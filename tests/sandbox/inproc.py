"""Run planner programs through the language layer alone, in this process.

``compile_program`` plus ``exec`` in ``build_globals``, with a small fake host: no child
process, no rlimits, no kernel lockdown. What these tests show holds even if every OS layer
were missing.
"""

from __future__ import annotations

import textwrap
from typing import Any

from ptcrun.sandbox.child._compile import ProgramRejected, compile_program
from ptcrun.sandbox.child._namespace import build_globals, warm_up

warm_up()

DATA = ("alpha beta", "gamma", "beta beta delta")


class Done(BaseException):
    """What the fake ``done``/``fail`` raise, like the real ones: not an Exception."""

    def __init__(self, status: str, value: Any) -> None:
        super().__init__(status, value)
        self.status = status
        self.value = value


def done(answer: Any = None) -> None:
    raise Done("done", answer)


def fail(reason: Any = "") -> None:
    raise Done("failed", reason)


class FakeBudget:
    """A read-only host object, like the real budget stub."""

    __slots__ = ()

    @property
    def remaining(self) -> int:
        return 1000

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("budget is read-only")


class Session:
    """One namespace, reused for every program run in it, as the sandbox child does."""

    def __init__(self, **host: Any) -> None:
        self.writes: list[str] = []
        self.host: dict[str, Any] = {
            "data": DATA, "budget": FakeBudget(), "done": done, "fail": fail, **host,
        }
        self.globals = build_globals(host=self.host, write_output=self.writes.append)

    def run(self, source: str) -> str:
        """Compile and run source; return what it printed."""
        start = len(self.writes)
        exec(compile_program(textwrap.dedent(source)), self.globals)
        return "".join(self.writes[start:])

    def __getitem__(self, name: str) -> Any:
        return self.globals[name]


def run(source: str, **host: Any) -> str:
    """Run source in a fresh session; return what it printed."""
    return Session(**host).run(source)


def refusal(session: Session, source: str, error: type[BaseException]) -> str:
    """Run ``source``, which must raise ``error``; the message a program would read."""
    import pytest

    with pytest.raises(error) as info:
        session.run(source)
    return info.value.message if isinstance(info.value, ProgramRejected) else str(info.value)


def in_scope(context: str, source: str) -> str:
    """``source`` placed where ``context`` says: ``{body}`` one level deep, ``{body2}`` two."""
    return context.format(body=textwrap.indent(source, " " * 4), body2=textwrap.indent(source, " " * 8))
