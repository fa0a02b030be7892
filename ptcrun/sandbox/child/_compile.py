"""Compiling a planner program: its size, its parse, and a rejection the planner can act on.

:func:`compile_program` is the one way a program becomes code. It refuses a program too long, or
holding a NUL, before parsing it; parses it; and compiles it with RestrictedPython under the
compile policy (``_policy``), which decides what may run and rewrites it first. Whatever stops a
program is a :class:`ProgramRejected` naming the line and what to change; the policy's problems
are listed together, up to ten, so the planner can fix them in one turn.
"""

from __future__ import annotations
import __future__

import ast
import types
import warnings
from collections.abc import Sequence

from RestrictedPython.compile import compile_restricted_exec

from ._policy import Problem, ProgramPolicy

__all__ = [
    "MAX_SOURCE_CHARS",
    "MAX_SOURCE_LINES",
    "ProgramRejected",
    "compile_program",
]

#: Longest program accepted, in characters. Compiling is superlinear in deep nesting and the
#: error for a long statement echoes it, so the child refuses long programs before parsing.
MAX_SOURCE_CHARS = 50_000
#: Most lines a program may have.
MAX_SOURCE_LINES = 2_000

_MAX_PROBLEMS = 10  # listed in one rejection; the rest are counted
_MAX_SOURCE_LINE_CHARS = 200
_ANNOTATIONS_FLAG = __future__.annotations.compiler_flag


class ProgramRejected(Exception):
    """The program cannot be compiled; nothing of it ran.

    Attributes:
        kind: ``"SyntaxError"`` (or ``"IndentationError"``, ``"TabError"``) when Python
            cannot parse it; ``"NotAllowed"`` when it uses something the sandbox refuses;
            ``"TooLarge"`` when it exceeds MAX_SOURCE_CHARS or MAX_SOURCE_LINES;
            ``"TooDeep"`` when it is nested too deeply to compile.
        message: what is wrong and how to fix it, written for the program's author (an LLM).
            Several problems are listed one per line, each prefixed with its line.
        line: the 1-based line of the (first) problem, when there is one.
        source_line: that line of the program, stripped and cut to 200 characters.
    """

    def __init__(
        self, kind: str, message: str, line: int | None = None, source_line: str | None = None
    ) -> None:
        super().__init__(kind, message, line, source_line)
        self.kind = kind
        self.message = message
        self.line = line
        self.source_line = source_line

    def __str__(self) -> str:
        text = self.message if self.line is None else f"line {self.line}: {self.message}"
        return text if not self.source_line else f"{text}\n    {self.source_line}"


def compile_program(
    source: str, *, filename: str = "<program>", restricted: bool = True
) -> types.CodeType:
    """Compile a planner program for ``exec`` in the globals of ``_namespace.build_globals``.

    The size checks apply in both modes. With ``restricted=False`` the program is compiled by
    plain ``compile()``; that mode exists only for tests that check the OS layers alone.

    Raises:
        ProgramRejected: the program is too large, does not parse, is nested too deeply, or
            uses something the policy refuses.
        TypeError: source is not a str.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, not {type(source).__name__}")
    # Numbered as Python numbers them: only \n, \r\n and \r end a line.
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    _check_size(source, lines)
    try:
        # Programs from LLMs are full of "\d" in plain strings: compile them silently, as
        # python does for a script, rather than let a DeprecationWarning become an error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename, "exec")
            if not restricted:
                code: types.CodeType = compile(
                    tree, filename, "exec", flags=_ANNOTATIONS_FLAG, dont_inherit=True
                )
                return code
            result = compile_restricted_exec(tree, filename, policy=ProgramPolicy)
    except SyntaxError as exc:
        line = exc.lineno
        kind = type(exc).__name__
        raise ProgramRejected(kind, exc.msg, line, _source_line(lines, line)) from None
    except (RecursionError, MemoryError):
        raise ProgramRejected(
            "TooDeep",
            "the program is nested too deeply to compile (brackets, calls, operators or "
            "blocks inside each other). Split deep expressions into several statements.",
        ) from None
    if result.errors:
        raise _rejection(result.errors, lines)
    assert result.code is not None
    return result.code


def _check_size(source: str, lines: list[str]) -> None:
    shorter = "Write a shorter program: variables persist into the next one."
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramRejected(
            "TooLarge",
            f"the program is {len(source):,} characters long; at most {MAX_SOURCE_CHARS:,} "
            f"are allowed. {shorter}",
        )
    count = len(lines) - (lines[-1] == "")
    if count > MAX_SOURCE_LINES:
        raise ProgramRejected(
            "TooLarge",
            f"the program has {count:,} lines; at most {MAX_SOURCE_LINES:,} are allowed. {shorter}",
        )
    if "\0" in source:
        line = next(n for n, text in enumerate(lines, 1) if "\0" in text)
        message = "the program contains a NUL character; remove it"
        raise ProgramRejected("SyntaxError", message, line, _source_line(lines, line))


def _source_line(lines: list[str], line: int | None) -> str | None:
    if line is None or not 0 < line <= len(lines):
        return None
    text = lines[line - 1].strip().replace("\0", "\\0")
    if len(text) > _MAX_SOURCE_LINE_CHARS:
        text = text[: _MAX_SOURCE_LINE_CHARS - 1] + "…"
    return text or None


def _rejection(errors: Sequence[str], lines: list[str]) -> ProgramRejected:
    problems = [p if isinstance(p, Problem) else Problem(None, str(p)) for p in errors]
    first = problems[0]
    message = str(first)
    if len(problems) > 1:
        shown = [f"line {p.line}: {p}" if p.line else str(p) for p in problems[:_MAX_PROBLEMS]]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
        message = "\n".join(shown)
    return ProgramRejected("NotAllowed", message, first.line, _source_line(lines, first.line))
