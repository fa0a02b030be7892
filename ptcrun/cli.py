"""The ``ptcrun`` command.

Every subcommand catches :class:`~ptcrun.errors.PtcrunError` once, here, prints its message and
exits with the error's ``exit_code``. Exit codes are documented in ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, PtcrunError

__all__ = ["main"]

#: Exit codes; also in docs/cli.md (a test keeps the two in step).
EXIT_CODES = {
    "done": 0,
    "failed": 1,
    "config": 2,
    "limit": 3,
    "sandbox": 4,
    "error": 5,
}


def _load_chunks(path: str | None, *, lines: int | None, tokens: int | None, overlap: int) -> list[str]:
    if path is None:
        return []
    from .runtime._chunking import chunk_by_lines, chunk_by_tokens, read_text

    text = read_text(path)
    if tokens is not None:
        return list(chunk_by_tokens(text, tokens, overlap))
    return list(chunk_by_lines(text, lines or 100, overlap))


def _cmd_exec(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import _limits
    from ._tools import load_tools_file
    from .sandbox import execute

    path = Path(args.program)
    if not path.is_file():
        raise ConfigError(f"program file {args.program!r} does not exist; pass the path of a .py file.")
    source = path.read_text(encoding="utf-8")
    data = _load_chunks(args.data, lines=args.chunk_lines, tokens=args.chunk_tokens, overlap=args.overlap)
    tools = load_tools_file(args.tools) if args.tools else None
    result = execute(source, data=data, tools=tools, limits=_limits.Limits())
    if result.output:
        sys.stdout.write(result.output)
        if not result.output.endswith("\n"):
            sys.stdout.write("\n")
    if result.status == "done":
        print(f"done: {json.dumps(result.answer, ensure_ascii=False, indent=2)}")
        return EXIT_CODES["done"]
    if result.status == "failed":
        print(f"failed: {result.answer}")
        return EXIT_CODES["failed"]
    if result.status == "error":
        assert result.error is not None
        print(f"error: {result.error}", file=sys.stderr)
        if result.limit is not None:
            return EXIT_CODES["sandbox" if result.error.kind == "SandboxError" else "limit"]
        return EXIT_CODES["error"]
    return EXIT_CODES["done"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptcrun",
        description="Run a planner LLM over a corpus it never sees, through sandboxed Python programs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ex = sub.add_parser(
        "exec",
        help="run one program file in the sandbox, with no LLM (to debug a program)",
        description="Run a program in the sandbox with no LLM: prints its output, then the done value or the error.",
    )
    ex.add_argument("program", help="a .py program file")
    ex.add_argument("--data", help="a text file split into chunks as `data`")
    ex.add_argument("--chunk-lines", type=int, help="lines per chunk (default 100)")
    ex.add_argument("--chunk-tokens", type=int, help="tokens per chunk (instead of lines)")
    ex.add_argument("--overlap", type=int, default=0, help="overlap between chunks, in lines or tokens")
    ex.add_argument("--tools", help="a Python file whose public functions become tool.<name>")
    ex.set_defaults(handler=_cmd_exec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ptcrun`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: Any = args.handler(args)
    except PtcrunError as exc:
        print(f"ptcrun: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ptcrun: interrupted", file=sys.stderr)
        return 130
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
