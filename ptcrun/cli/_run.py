"""``ptcrun run``: run the planner on a corpus from the command line.

Prints the answer, the run's summary and the transcript's path (or one JSON object with
``--json``), and writes ``corpus.json`` beside the transcript so a turn can be run again later.
Errors it prints name the flags that set a limit, not the ``Limits`` fields behind them; the
error that ended a run is also printed on standard error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._limits import Limits
from ..corpus._load import load_corpus
from ..errors import ConfigError, TranscriptError, to_payload
from ..transcript._events import os_error_reason
from ._corpus import CORPUS_FILE, chunk_options, write_record
from ._parser import EXIT_CODES, LIMIT_FLAGS, PROVIDER_FLAGS, in_cli_words, status_exit_code

if TYPE_CHECKING:
    from .._result import Result
    from ..runtime._estimate import Estimate
    from ..transcript._transcript import Transcript

__all__ = ["cmd_run"]


def _schema(path: str | None) -> Any:
    """The JSON Schema ``--schema`` names, read and checked before the run starts."""
    from ..runtime._answers import AnswerCheck

    if path is None:
        return None
    fix = "pass the path of a JSON Schema file"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--schema {path!r} does not exist; {fix}.") from None
    except IsADirectoryError:
        raise ConfigError(f"--schema {path!r} is a directory, not a file; {fix}.") from None
    except OSError as exc:
        raise ConfigError(f"--schema {path!r} cannot be read: {os_error_reason(exc)}; {fix}.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--schema {path!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset "
            f"{exc.start:,}; save it as UTF-8 JSON."
        ) from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--schema {path!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}; fix the file."
        ) from None
    if not isinstance(schema, dict):
        raise ConfigError(
            f"--schema {path!r} holds a JSON {type(schema).__name__}, not an object; a JSON "
            f'Schema is an object, such as {{"type": "object"}}.'
        )
    try:
        AnswerCheck.build(schema)
    except ConfigError as exc:
        raise ConfigError(f"--schema {path!r}: {str(exc).rstrip('.')}; fix the file.") from None
    return schema


def _check_out(out: str) -> None:
    """Refuse an ``--out`` that cannot hold run folders, before anything runs."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--out {out!r} cannot hold run folders: {os_error_reason(exc)} "
            f"({exc.strerror or exc}); pass --out a folder you can write to."
        ) from None


#: The clocks from the outermost in: each must fit inside the one before it.
_CLOCKS = ("run_timeout", "turn_timeout", "pmap_timeout", "call_timeout")


def _limits(args: argparse.Namespace) -> Limits:
    given: dict[str, Any] = {field: getattr(args, field) for field in LIMIT_FLAGS}
    given = {field: value for field, value in given.items() if value is not None}
    # A clock given shorter than an inner clock's default (--turn-timeout 60, with pmaps
    # allowed 300 s) lowers the inner clocks that were not given, rather than be refused.
    defaults = Limits()
    outer = math.inf
    for clock in _CLOCKS:
        if clock not in given and getattr(defaults, clock) > outer:
            given[clock] = outer
        outer = given.get(clock, getattr(defaults, clock))
    return Limits(**given)


def _provider_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``PROVIDER_FLAGS`` given, as ``parse_provider`` takes them."""
    return {setting: getattr(args, setting) for setting in PROVIDER_FLAGS}


def _observers(args: argparse.Namespace) -> list[Any]:
    from ..transcript._progress import LineProgress, TerminalProgress

    if args.quiet:
        return []
    if not args.json and sys.stderr.isatty():
        return [TerminalProgress(sys.stderr)]
    return [LineProgress(sys.stderr)]


def _dry_run(estimate: Estimate, *, as_json: bool) -> int:
    """Print what the run would cost (``--dry-run``); nothing was sent and nothing written."""
    if as_json:
        print(json.dumps(attrs.asdict(estimate)))
    else:
        print(in_cli_words(estimate.describe()))
    return EXIT_CODES["done"]


def cmd_run(args: argparse.Namespace) -> int:
    """Run the planner on ``args.corpus``; print the outcome; return the exit code."""
    from .._tools import load_tools_file
    from ..runtime._runtime import Runtime
    from ..runtime.providers._spec import parse_provider
    from ..transcript._views import render_summary

    options = chunk_options(args)
    if not args.dry_run:
        _check_out(args.out)
    schema = _schema(args.schema)
    chunks = load_corpus(args.corpus, **options)
    settings = _provider_settings(args)
    planner = parse_provider(args.planner, **settings)
    worker = parse_provider(args.worker, **settings) if args.worker else None
    tools = list(load_tools_file(args.tools).values()) if args.tools else None
    runtime = Runtime(
        planner=planner,
        worker=worker,
        tools=tools,
        limits=_limits(args),
        transcript_dir=args.out,
        observers=_observers(args),
        cache=args.cache,
    )
    if args.dry_run:
        return _dry_run(runtime.estimate(args.goal, chunks, schema=schema), as_json=args.json)
    result = runtime.run(args.goal, chunks, schema=schema, resume=args.resume)
    code = status_exit_code(result.status, result.error, result.signal)
    if args.fail_on_partial and result.partial and code == EXIT_CODES["done"]:
        code = EXIT_CODES["partial"]
    assert result.transcript is not None  # the command always writes one
    warnings = list(result.warnings)
    try:
        write_record(result.transcript.parent, args.corpus, options, chunks)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a file cut short would read as a broken record
            (result.transcript.parent / CORPUS_FILE).unlink(missing_ok=True)
        warnings.append(
            f"corpus.json was not written beside the transcript ({os_error_reason(exc)}); "
            f"`ptcrun exec TRANSCRIPT --turn N` will need --data {args.corpus}."
        )
    transcript = _whole_transcript(result)
    if result.error is not None:
        # What ended the run and its fix, where a failing command says it, whatever stdout holds.
        print(f"ptcrun: {in_cli_words(str(result.error))}", file=sys.stderr)
    if result.failed_calls:
        print(f"ptcrun: warning: {_failures_warning(result)}", file=sys.stderr)
    for warning in warnings:
        print(f"ptcrun: warning: {warning}", file=sys.stderr)
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
            "parallel_speedup": None if transcript is None else transcript.parallel_speedup,
            "transcript": str(result.transcript),
            "warnings": warnings,
            "partial": result.partial,
            "failed_calls": dict(result.failed_calls),
            "calls_made": result.calls_made,
            "cached_calls": result.cached_calls,
            "resumed_from": None if result.resumed_from is None else str(result.resumed_from),
            "replayed": dict(result.replayed),
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
    print(in_cli_words(render_summary(transcript) if transcript is not None else _result_summary(result)))
    print(f"transcript {result.transcript}" + ("" if transcript is not None else " (incomplete)"))
    return code


def _failures_warning(result: Result) -> str:
    """The line on standard error that says which calls failed, and what it means for the answer."""
    from ..transcript._views import failure_kinds

    count = result.failed_call_count
    made = max(result.calls_made, count)
    text = f"{count:,} of {made:,} calls failed ({failure_kinds(result.failed_calls)})"
    if result.partial:
        text += "; the answer was built while they were failing and may be incomplete"
    return f"{text}. `ptcrun show {result.transcript} --calls` lists them."


def _whole_transcript(result: Result) -> Transcript | None:
    """The run's transcript, or None when the file stops short of ``run.end`` (a full disk)."""
    from ..transcript._transcript import Transcript

    assert result.transcript is not None
    try:
        transcript = Transcript.load(result.transcript)
    except (TranscriptError, OSError):
        return None
    return transcript if transcript.complete else None


def _result_summary(result: Result) -> str:
    """The summary's first lines, from the Result, for a run whose transcript stops short."""
    from ..transcript._views import status_text

    u = result.usage
    error = f" ({type(result.error).__name__}: {result.error})" if result.error is not None else ""
    status = status_text(result.status, result.failed_calls, result.calls_made, result.partial)
    lines = [
        f"status     {status}{error}",
        f"turns      {len(result.turns)}",
        (
            f"tokens     {u.total_tokens:,}: planner {u.planner_input_tokens:,} in / "
            f"{u.planner_output_tokens:,} out, workers {u.worker_input_tokens:,} in / "
            f"{u.worker_output_tokens:,} out"
        ),
        f"wall time  {result.seconds:.1f} s",
    ]
    if result.cached_calls:
        lines.append(f"cached     {result.cached_calls:,} worker requests answered by the result cache")
    if result.resumed_from is not None:
        replayed = ", ".join(f"{count:,} {role}" for role, count in result.replayed.items())
        lines.append(f"resumed    from {result.resumed_from}: replies replayed: {replayed}")
    return "\n".join(lines)
