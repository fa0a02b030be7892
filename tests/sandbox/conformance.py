"""Run one program twice, in the sandbox and in plain CPython, and compare what each did.

A conformance case is a program in the style models write, plus the tools and ``data`` it is
given. :func:`run_cpython` runs the source with ``exec`` and the real builtins; :func:`run_sandbox`
compiles it with the sandbox's policy and runs it in the sandbox's namespace (the language
layer, in this process); :func:`run_child` runs it in a real sandbox child, through the
protocol. Each gives an :class:`Outcome`: what was printed, how the program ended, the answer
(after the one JSON rule, as it crosses the boundary) and the tool calls in order.
:func:`check` asserts that CPython and the sandbox agree on all of it.

Both sides get the same host names: ``data``, ``tool.<name>`` for each tool, ``done``, ``fail``
and a sequential ``pmap`` (the real child brings its own pmap). A tool is a plain function;
every call is recorded with its arguments, so a right side evaluated twice shows up as a
second call.
"""

from __future__ import annotations

import builtins
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from ptcrun import _json
from ptcrun.sandbox.child._compile import compile_program
from ptcrun.sandbox.child._namespace import build_globals, warm_up

__all__ = ["Case", "Outcome", "check", "check_in_child", "run_child", "run_cpython", "run_sandbox"]

warm_up()

DATA = ("alpha beta", "gamma", "beta beta delta", "epsilon,3\nzeta,4")


@attrs.frozen
class Case:
    """A program and what it is given: ``tools`` maps a tool name to a plain function."""

    source: str
    tools: Mapping[str, Callable[..., Any]] = attrs.field(factory=dict)
    data: Any = DATA

    @property
    def program(self) -> str:
        return textwrap.dedent(self.source).strip("\n") + "\n"


@attrs.frozen
class Outcome:
    """What one run did. ``error`` is the exception's class name, ``None`` when there was none."""

    output: str
    status: str  # "ok", "done", "failed" or "error"
    answer: Any = None
    error: str | None = None
    calls: tuple[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], ...] = ()


class _Exit(BaseException):
    """What ``done``/``fail`` raise on both in-process sides: not an Exception, like the real one."""

    def __init__(self, status: str, value: Any) -> None:
        super().__init__(status)
        self.status = status
        self.value = value


def _done(answer: Any = None) -> None:
    raise _Exit("done", _json.to_json(answer, what="the answer given to done()"))


def _fail(reason: Any = "") -> None:
    raise _Exit("failed", str(reason))


def _pmap(fn: Callable[[Any], Any], items: Any, **_options: Any) -> list[Any]:
    return [fn(item) for item in items]


class _Recorder:
    """Wraps the case's tools; every call is recorded, then answered by the plain function."""

    def __init__(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]] = []
        self.tool = types.SimpleNamespace(
            **{name: self._recorded(name, fn) for name, fn in tools.items()}
        )

    def _recorded(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(
                (name, tuple(_json.to_json(list(args), what="arguments")),
                 tuple(sorted(_json.to_json(kwargs, what="arguments").items())))  # type: ignore[union-attr]
            )
            # What a real tool call gives back: the result after the one JSON rule.
            return _json.to_json(fn(*args, **kwargs), what=f"the result of tool.{name}")

        call.__name__ = call.__qualname__ = name
        return call


def _host(case: Case, recorder: _Recorder) -> dict[str, Any]:
    return {"data": case.data, "tool": recorder.tool, "done": _done, "fail": _fail, "pmap": _pmap}


def _run(case: Case, execute: Callable[[_Recorder, list[str]], None]) -> Outcome:
    recorder = _Recorder(case.tools)
    printed: list[str] = []
    status, answer, error = "ok", None, None
    try:
        execute(recorder, printed)
    except _Exit as exit:
        status, answer = exit.status, exit.value
    except Exception as exc:  # the program's own error, compared by class
        status, error = "error", type(exc).__name__
    return Outcome("".join(printed), status, answer, error, tuple(recorder.calls))


def run_cpython(case: Case) -> Outcome:
    """Run the case in plain CPython: real builtins, ``print`` captured."""

    def execute(recorder: _Recorder, printed: list[str]) -> None:
        def capture(*objects: Any, sep: str | None = " ", end: str | None = "\n") -> None:
            sep = " " if sep is None else sep
            end = "\n" if end is None else end
            printed.append(sep.join(map(str, objects)) + end)

        namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__main__", "print": capture}
        namespace.update(_host(case, recorder))
        # dont_inherit: this file's own `from __future__ import annotations` must not turn the
        # program's annotations into strings (dataclasses reads ClassVar from them).
        exec(compile(case.program, "<program>", "exec", dont_inherit=True), namespace)

    return _run(case, execute)


def run_sandbox(case: Case) -> Outcome:
    """Run the case through the sandbox's compile policy and namespace, in this process."""

    def execute(recorder: _Recorder, printed: list[str]) -> None:
        namespace = build_globals(host=_host(case, recorder), write_output=printed.append)
        exec(compile_program(case.program), namespace)

    return _run(case, execute)


def run_child(case: Case) -> Outcome:
    """Run the case in a real sandbox child (OS layers included), through the protocol."""
    from ptcrun.sandbox import Sandbox

    from .conftest import limits

    recorder = _Recorder(case.tools)
    tools = [getattr(recorder.tool, name) for name in case.tools]

    async def main() -> Any:
        async with Sandbox(data=case.data, tools=tools, limits=limits()) as sandbox:
            return await sandbox.execute(case.program)

    result = trio.run(main)
    error = result.error.kind if result.error is not None else None
    answer = result.answer if result.status in ("done", "failed") else None
    return Outcome(result.output, result.status, answer, error, tuple(recorder.calls))


def check(case: Case) -> Outcome:
    """Assert the sandbox does what CPython does with the case; return the outcome."""
    expected = run_cpython(case)
    got = run_sandbox(case)
    assert got == expected, f"\nsandbox: {got}\ncpython: {expected}"
    return got


def check_in_child(case: Case) -> Outcome:
    """Like :func:`check`, with the sandbox side in a real child."""
    expected = run_cpython(case)
    got = run_child(case)
    assert got == expected, f"\nchild:   {got}\ncpython: {expected}"
    return got
