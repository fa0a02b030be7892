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

from ..errors import ConfigError, PtcrunError

__all__ = ["main"]

#: Exit codes; also in docs/cli.md (a test keeps the two in step).
EXIT_CODES = {
    "done": 0,
    "failed": 1,
    "config": 2,
    "limit": 3,
    "sandbox": 4,
    "error": 5,
    "interrupted": 130,
}


def _load_chunks(path: str | None, *, lines: int | None, tokens: int | None, overlap: int) -> list[str]:
    if path is None:
        return []
    from ..corpus._chunking import chunk_by_lines, chunk_by_tokens, read_text

    text = read_text(path)
    if tokens is not None:
        return list(chunk_by_tokens(text, tokens, overlap))
    return list(chunk_by_lines(text, lines or 100, overlap))


def _cmd_exec(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import _limits
    from .._tools import load_tools_file
    from ..sandbox import execute

    if args.turn is not None:
        return _cmd_exec_turn(args)
    path = Path(args.program)
    if not path.is_file():
        raise ConfigError(f"program file {args.program!r} does not exist; pass the path of a .py file.")
    source = path.read_text(encoding="utf-8")
    data = _load_chunks(args.data, lines=args.chunk_lines, tokens=args.chunk_tokens, overlap=args.overlap)
    tools = load_tools_file(args.tools) if args.tools else None
    result = execute(source, data=data, tools=tools, limits=_limits.Limits())
    return _report_exec(result)


def _report_exec(result: Any) -> int:
    """Print a program's output, then its done value or its error; return the exit code."""
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
    ex.add_argument("program", help="a .py program file; with --turn, a transcript or its run folder")
    ex.add_argument("--data", help="a text file split into chunks as `data`")
    ex.add_argument("--chunk-lines", type=int, help="lines per chunk (default 100)")
    ex.add_argument("--chunk-tokens", type=int, help="tokens per chunk (instead of lines)")
    ex.add_argument("--overlap", type=int, default=0, help="overlap between chunks, in lines or tokens")
    ex.add_argument("--tools", help="a Python file whose public functions become tool.<name>")
    ex.add_argument(
        "--turn",
        type=int,
        metavar="N",
        help="PROGRAM is a transcript (or run folder): run turn N's program again, tool calls "
        "answered from the transcript",
    )
    ex.add_argument("--fresh", action="store_true", help="with --turn: skip the earlier turns' programs")
    ex.set_defaults(handler=_cmd_exec)
    _add_run_and_views(sub)
    return parser


def _cmd_exec_turn(args: argparse.Namespace) -> int:
    from ._run import exec_turn

    result, turn, replay = exec_turn(args)
    code = _report_exec(result)
    same = result.output == turn.output and result.status == ("done" if turn.status == "invalid_answer" else turn.status)
    verdict = "the same output and outcome as" if same else "a different output or outcome from"
    print(
        f"turn {turn.number}: {verdict} the recorded run ({replay.replayed} tool calls replayed, "
        f"{replay.live} live)",
        file=sys.stderr,
    )
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    from ._run import cmd_run

    return cmd_run(args, EXIT_CODES)


def _cmd_show(args: argparse.Namespace) -> int:
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_show

    sys.stdout.write(render_show(Transcript.load(args.transcript), turn=args.turn, calls=args.calls))
    return EXIT_CODES["done"]


def _cmd_tree(args: argparse.Namespace) -> int:
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_tree

    sys.stdout.write(render_tree(Transcript.load(args.transcript)))
    return EXIT_CODES["done"]


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..transcript._chrome import chrome_trace_json
    from ..transcript._transcript import Transcript

    transcript = Transcript.load(args.transcript)
    text = chrome_trace_json(transcript)
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_CODES["done"]
    assert transcript.path is not None
    out = Path(args.output) if args.output else transcript.path.parent / "trace.chrome.json"
    out.write_text(text, encoding="utf-8")
    print(out)
    return EXIT_CODES["done"]


def _cmd_view(args: argparse.Namespace) -> int:
    from ..transcript._html import write_html
    from ..transcript._transcript import Transcript

    print(write_html(Transcript.load(args.transcript), args.output))
    return EXIT_CODES["done"]


def _add_run_and_views(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the planner on a corpus and print the answer",
        description="Run the planner on a corpus with live progress; print the answer, a summary and "
        "the transcript path.",
    )
    run.add_argument("corpus", metavar="CORPUS", help="a UTF-8 text file, cut into chunks as `data`")
    run.add_argument("--goal", required=True, help="what the planner must find out or produce")
    run.add_argument("--chunk-tokens", type=int, metavar="N", help="tokens per chunk (default 4000)")
    run.add_argument("--chunk-lines", type=int, metavar="N", help="lines per chunk (instead of tokens)")
    run.add_argument("--overlap", type=int, default=0, metavar="N", help="overlap between chunks, in tokens or lines")
    run.add_argument("--planner", default="anthropic:claude-sonnet-4-6", metavar="PROVIDER",
                     help="the planner model (default anthropic:claude-sonnet-4-6)")
    run.add_argument("--worker", metavar="PROVIDER", help="the model behind tool.worker (default: the planner)")
    run.add_argument("--tools", metavar="FILE.py", help="a Python file whose public functions become tool.<name>")
    run.add_argument("--token-limit", type=int, metavar="N", help="tokens the run may spend (Limits.max_tokens)")
    run.add_argument("--max-turns", type=int, metavar="N", help="planner turns (Limits.max_turns)")
    run.add_argument("--concurrency", type=int, metavar="N", help="calls in flight at once (Limits.max_concurrency)")
    run.add_argument("--out", default="runs", metavar="DIR", help="where run folders are made (default runs)")
    run.add_argument("--schema", metavar="FILE.json", help="a JSON Schema the answer must match")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.set_defaults(handler=_cmd_run)

    show = sub.add_parser("show", help="the turn-by-turn view of a transcript",
                          description="Each turn's program with line numbers, its output, error, tokens and time.")
    show.add_argument("transcript", metavar="TRANSCRIPT", help="a transcript.jsonl file or its run folder")
    show.add_argument("--turn", type=int, metavar="N", help="only turn N")
    show.add_argument("--calls", action="store_true", help="also each pmap's calls: duration, status, reply")
    show.set_defaults(handler=_cmd_show)

    tree = sub.add_parser("tree", help="the span tree of a transcript, slowest calls marked",
                          description="Every span (turn, planner call, program, pmap, item, call) with its duration and status.")
    tree.add_argument("transcript", metavar="TRANSCRIPT", help="a transcript.jsonl file or its run folder")
    tree.set_defaults(handler=_cmd_tree)

    export = sub.add_parser("export", help="export a transcript as Chrome/Perfetto trace events",
                            description="Write trace events for chrome://tracing and ui.perfetto.dev; print the path.")
    export.add_argument("transcript", metavar="TRANSCRIPT", help="a transcript.jsonl file or its run folder")
    export.add_argument("--format", choices=["chrome"], default="chrome", help="the trace format (chrome)")
    export.add_argument("--output", "-o", metavar="FILE",
                        help="where to write (default trace.chrome.json in the run folder; - for stdout)")
    export.set_defaults(handler=_cmd_export)

    view = sub.add_parser("view", help="write a self-contained HTML page of a run and print its path",
                          description="Write one HTML file (turns, programs, outputs, a timeline of every pmap); print its path.")
    view.add_argument("transcript", metavar="TRANSCRIPT", help="a transcript.jsonl file or its run folder")
    view.add_argument("--output", "-o", metavar="FILE", help="where to write (default timeline.html in the run folder)")
    view.set_defaults(handler=_cmd_view)


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
        return EXIT_CODES["interrupted"]
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
