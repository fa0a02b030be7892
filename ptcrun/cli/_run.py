"""``ptcrun run``: run the planner on a corpus from the command line.

Prints the answer, the run's summary and the transcript's path (or one JSON object with
``--json``). ``corpus.json`` is written beside the transcript as soon as the run folder is made,
so a turn can be run again later, even from a run that was killed.
Errors it prints name the flags that set a limit, not the ``Limits`` fields behind them; the
error that ended a run is also printed on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import ConfigError, TranscriptError, to_payload
from ..runtime._runtime import Runtime
from ..transcript._events import os_error_reason
from ._corpus import (
    STDIN,
    ChunkOptions,
    Corpus,
    chunk_options,
    cut_words,
    given_cut,
    open_corpus,
)
from ._options import build_limits, build_provider, unused_prices
from ._parser import EXIT_CODES, in_cli_words, status_exit_code
from ._record import CORPUS_FILE, read_record, write_record
from ._scratch import Scratch

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


def _observers(args: argparse.Namespace) -> list[Any]:
    from ..transcript._progress import LineProgress, TerminalProgress

    if args.quiet:
        return []
    if not args.json and sys.stderr.isatty():
        return [TerminalProgress(sys.stderr)]
    return [LineProgress(sys.stderr, words=in_cli_words)]


def _dry_run(estimate: Estimate, *, as_json: bool) -> int:
    """Print what the run would cost (``--dry-run``); nothing was sent and nothing written."""
    if as_json:
        print(json.dumps(attrs.asdict(estimate)))
    else:
        print(in_cli_words(estimate.describe()))
    return EXIT_CODES["done"]


class _CorpusRecord:
    """Writes ``corpus.json`` into the run folder as soon as the folder is made, before the first
    event, so a run killed at any point can still be run again turn by turn (the runtime's
    ``on_run_folder``). A failure to write it does not stop the run: it is a warning."""

    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus
        self.warnings: list[str] = []

    def __call__(self, folder: Path) -> None:
        try:
            write_record(folder, self._corpus)
        except OSError as exc:
            corpus = self._corpus
            data = (str(corpus.store) if corpus.store is not None
                    else "the corpus again (it came from standard input)" if corpus.stdin is not None
                    else corpus.path)
            self.warnings.append(
                f"corpus.json was not written beside the transcript ({os_error_reason(exc)}); "
                f"`ptcrun exec TRANSCRIPT --turn N` will need --data {data}."
            )


def _goal(args: argparse.Namespace) -> str:
    """``--goal``, or the text of ``--goal-file`` (``-``: standard input)."""
    if args.goal is not None:
        return str(args.goal)
    path = args.goal_file
    if path == STDIN:
        if args.corpus == STDIN:
            raise ConfigError("--goal-file - and CORPUS - both read standard input; give one of them a file.")
        return sys.stdin.read().strip()
    try:
        goal = Path(path).read_text(encoding="utf-8-sig").strip()
    except FileNotFoundError:
        raise ConfigError(f"--goal-file {path!r} does not exist; pass the path of a text file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--goal-file {path!r} is not UTF-8 text (byte offset {exc.start:,}); save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"--goal-file {path!r} cannot be read: {os_error_reason(exc)}.") from None
    if not goal:
        raise ConfigError(f"--goal-file {path!r} is empty; write the goal in it.")
    return goal


def _cut_options(args: argparse.Namespace) -> ChunkOptions:
    """How to cut a text corpus: the flags; then, for ``--resume``, the earlier run's own cut (its
    ``corpus.json``), which the run continues; then the environment's and the config file's."""
    record = _resumed_record(args)
    if record is None:
        return chunk_options(args)
    flags = argparse.Namespace(**vars(args))
    for name in ("chunk_tokens", "chunk_lines", "overlap"):
        if name not in args.from_flags:
            setattr(flags, name, None)
    return chunk_options(flags, record)


def _resumed_record(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``corpus.json`` of the run ``--resume`` continues, when there is one to read."""
    if args.resume is None:
        return None
    folder = Path(args.resume)
    try:
        return read_record(folder if folder.is_dir() else folder.parent)
    except ConfigError:
        return None  # the resume itself says what is wrong with the run


def _check_resumed(args: argparse.Namespace, corpus: Corpus) -> None:
    """Refuse chunks other than those of the run ``--resume`` continues, naming both cuts (the
    resume would refuse them too, without saying which cut each is)."""
    record = _resumed_record(args)
    if record is None or not isinstance(record.get("sha256"), str):
        return
    if record["sha256"] == corpus.chunks.sha256:
        return

    def cut(options: Mapping[str, Any], chunks: object) -> str:
        known = options.get("chunk_tokens") is not None or options.get("chunk_lines") is not None
        count = f"{chunks:,}" if isinstance(chunks, int) else "its"
        return f"{count} chunks cut with {cut_words(options) if known else 'an unrecorded cut'}"

    now, then = cut(corpus.options, len(corpus.chunks)), cut(record, record.get("chunks"))
    same = " of other text" if now == then else ""
    if corpus.store is not None and args.store is not None:
        named, fix = f"--store {args.store!r}", (
            "pass --store the store the run read, or a new path (--store NEW_PATH), which is cut "
            "as the run was"
        )
    elif corpus.store is not None:
        named, fix = f"CORPUS {args.corpus!r}", "pass the store or the text the run read"
    else:
        named = "standard input" if args.corpus == STDIN else f"CORPUS {args.corpus!r}"
        fix = (f"pass the text the run read ({record['path']})" if same or not given_cut(args) else
               "drop the chunk flags: without them the corpus is cut as the run was")
    raise ConfigError(
        f"{named} gives {now}{same}, but the run --resume {args.resume!r} continues read {then} "
        f"(its {CORPUS_FILE} says so); {fix}."
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the planner on ``args.corpus``; print the outcome; return the exit code."""
    if not args.dry_run:
        _check_out(args.out)
    # A corpus that is not a store already is cut into one beside the run folders, not into a
    # list in memory nor the system's temporary folder (often held in memory), so a corpus
    # larger than memory runs; a dry run too, as it needs the chunks' token counts.
    with Scratch(Path(args.out), where=f"--out {args.out!r}") as scratch:
        return _run(args, scratch)


def _run(args: argparse.Namespace, scratch: Scratch) -> int:
    from .._tools import load_tools_file
    from ..transcript._views import render_summary

    goal = _goal(args)
    schema = _schema(args.schema)
    corpus = open_corpus(args.corpus, lambda: _cut_options(args), flag="CORPUS", scratch=scratch,
                         given=given_cut(args), keep=args.store)
    _check_resumed(args, corpus)
    planner = build_provider(args.planner, args)
    worker = build_provider(args.worker, args) if args.worker else None
    sub_planner = build_provider(args.sub_planner, args) if args.sub_planner else None
    named = [(args.planner, planner)] + ([(args.worker, worker)] if worker is not None else [])
    if sub_planner is not None:
        named.append((args.sub_planner, sub_planner))
    tools = list(load_tools_file(args.tools).values()) if args.tools else None
    record = _CorpusRecord(corpus)
    runtime = Runtime(
        planner=planner,
        worker=worker,
        sub_planner=sub_planner,
        tools=tools,
        limits=build_limits(args),
        transcript_dir=args.out,
        observers=_observers(args),
        on_run_folder=record,
        cache=args.cache,
    )
    for entry in unused_prices(args, named):
        print(f"ptcrun: warning: --price {entry!r} names neither the planner nor the worker; no cost "
              f"uses it.", file=sys.stderr)
    if args.dry_run:
        for warning in corpus.warnings:
            print(f"ptcrun: warning: {warning}", file=sys.stderr)
        return _dry_run(runtime.estimate(goal, corpus.chunks, schema=schema), as_json=args.json)
    result = runtime.run(goal, corpus.chunks, schema=schema, resume=args.resume)
    code = status_exit_code(result.status, result.error, result.signal)
    if args.fail_on_partial and result.partial and code == EXIT_CODES["done"]:
        code = EXIT_CODES["partial"]
    assert result.transcript is not None  # the command always writes one
    warnings = [in_cli_words(w) for w in (*corpus.warnings, *result.warnings, *record.warnings)]
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
            "sub_runs": dict(result.sub_runs),
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
    from ..transcript._wording import failure_kinds

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
    from ..transcript._wording import status_text, sub_runs_text

    u = result.usage
    error = f" ({type(result.error).__name__}: {result.error})" if result.error is not None else ""
    status = status_text(result.status, result.failed_calls, result.calls_made, result.partial)
    sub_runs = [f"sub-runs   {sub_runs_text(result.sub_runs)}"] if result.sub_runs else []
    lines = [
        f"status     {status}{error}",
        *sub_runs,
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
