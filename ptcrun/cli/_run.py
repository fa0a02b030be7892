"""``ptcrun run``: run the planner on a corpus from the command line.

Prints the answer, the run's summary and the transcript's path (or one JSON object with
``--json``), and writes ``corpus.json`` beside the transcript so a turn can be run again later.
Errors it prints name the flags that set a limit, not the ``Limits`` fields behind them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import attrs

from .._limits import Limits
from ..corpus._load import load_corpus
from ..errors import ConfigError, to_payload
from ._corpus import chunk_options, write_record
from ._parser import LIMIT_FLAGS, in_cli_words, status_exit_code

__all__ = ["cmd_run"]


def _schema(path: str | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"schema file {path!r} does not exist; pass a JSON Schema file.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"schema file {path!r} is not valid JSON: {exc}.") from None


def _limits(args: argparse.Namespace) -> Limits:
    given: dict[str, Any] = {field: getattr(args, field) for field in LIMIT_FLAGS}
    return Limits(**{field: value for field, value in given.items() if value is not None})


def _observers(args: argparse.Namespace) -> list[Any]:
    from ..transcript._progress import LineProgress, TerminalProgress

    if args.quiet:
        return []
    if not args.json and sys.stderr.isatty():
        return [TerminalProgress(sys.stderr)]
    return [LineProgress(sys.stderr)]


def cmd_run(args: argparse.Namespace) -> int:
    """Run the planner on ``args.corpus``; print the outcome; return the exit code."""
    from .._tools import load_tools_file
    from ..runtime._runtime import Runtime
    from ..runtime.providers._spec import parse_provider
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_summary

    options = chunk_options(args)
    chunks = load_corpus(args.corpus, **options)
    planner = parse_provider(args.planner)
    worker = parse_provider(args.worker) if args.worker else None
    tools = list(load_tools_file(args.tools).values()) if args.tools else None
    runtime = Runtime(
        planner=planner,
        worker=worker,
        tools=tools,
        limits=_limits(args),
        transcript_dir=args.out,
        observers=_observers(args),
    )
    result = runtime.run(args.goal, chunks, schema=_schema(args.schema))
    code = status_exit_code(result.status, result.error)
    assert result.transcript is not None  # the command always writes one
    write_record(result.transcript.parent, args.corpus, options, chunks)
    transcript = Transcript.load(result.transcript)
    if args.json:
        error = result.error
        shown = None if error is None else {**to_payload(error), "message": in_cli_words(str(error))}
        print(json.dumps({
            "status": result.status,
            "answer": result.answer,
            "fallback_used": result.fallback_used,
            "error": shown,
            "turns": len(result.turns),
            "usage": {**attrs.asdict(result.usage), "total_tokens": result.usage.total_tokens},
            "seconds": result.seconds,
            "parallel_speedup": transcript.parallel_speedup,
            "transcript": str(result.transcript),
            "exit_code": code,
        }, ensure_ascii=False))
        return code
    if result.status == "failed":
        print(f"failed: {result.answer}")
    elif result.answer is not None or result.status == "done":
        label = "answer (fallback)" if result.fallback_used else "answer"
        print(f"{label}:\n{json.dumps(result.answer, ensure_ascii=False, indent=2)}")
    else:
        print("no answer")
    print()
    print(in_cli_words(render_summary(transcript)))
    print(f"transcript {result.transcript}")
    return code
