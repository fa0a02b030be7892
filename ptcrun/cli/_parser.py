"""The ``ptcrun`` command line: its flags, its exit codes, and errors spelled in its flags.

Exit codes are derived, not restated: an error exits with its class's ``exit_code``
(``ptcrun/errors.py`` is the only place those are set), and :data:`EXIT_CODES` names them beside
the endings that are not errors. ``docs/cli.md`` lists the same table; a test keeps it in step.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import math
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any

from ..corpus._load import DEFAULT_CHUNK_TOKENS
from ..errors import ConfigError, LimitExceeded, PtcrunError, SandboxError

__all__ = [
    "EXIT_CODES",
    "LIMIT_FLAGS",
    "PROVIDER_FLAGS",
    "build_parser",
    "in_cli_words",
    "parse",
    "status_exit_code",
]

#: The exit code of each way a command can end, by name.
EXIT_CODES: dict[str, int] = {
    "done": 0,
    "failed": 1,  # the program called fail(): an answer of its own, not an error
    "config": ConfigError.exit_code,
    "limit": LimitExceeded.exit_code,
    "sandbox": SandboxError.exit_code,
    "error": PtcrunError.exit_code,
    # With --fail-on-partial: the run is done, but its answer was built while calls were
    # failing (``Result.partial``). Without the flag such a run exits 0, as any done run.
    "partial": 6,
    "interrupted": 128 + signal.SIGINT,  # the shell's code for a process ended by Ctrl-C
    # SIGTERM and SIGHUP end a run as Ctrl-C does, and exit with the shell's code for them too.
    "terminated": 128 + signal.SIGTERM,
    "hangup": 128 + signal.SIGHUP,
}

# Which row each run status exits with; a run that ended with status ``error`` exits with its
# error's own code instead (a sandbox failure, a bad setting found late).
_STATUS_EXIT = {
    "done": "done",
    "failed": "failed",
    "budget_exceeded": "limit",
    "max_turns": "limit",
    "timeout": "limit",
    "cancelled": "interrupted",
    "error": "error",
}


def status_exit_code(status: str, error: PtcrunError | None, stopped_by: int | None = None) -> int:
    """The exit code of a run that ended with ``status`` (a ``Result.status``) and ``error``.

    A run a signal stopped (``Result.signal``) exits with 128 + its number, as a shell reports
    a process that signal ended: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
    """
    if status == "cancelled" and stopped_by is not None:
        return 128 + stopped_by
    if status == "error" and error is not None:
        return error.exit_code
    return EXIT_CODES[_STATUS_EXIT.get(status, "error")]


#: The ``Limits`` fields ``ptcrun run`` sets: field name → (flag, help). The parser adds the flags
#: from it, ``run`` builds ``Limits`` from it, and :func:`in_cli_words` spells errors with it.
#: Fields ending in ``_timeout`` take seconds; the others a whole number.
LIMIT_FLAGS: dict[str, tuple[str, str]] = {
    "max_tokens": ("--token-limit", "tokens the run may spend, planner and workers together"),
    "max_turns": ("--max-turns", "planner turns"),
    "max_concurrency": ("--concurrency", "tool and worker calls in flight at once"),
    "call_timeout": ("--call-timeout", "seconds one tool or worker call may take"),
    "pmap_timeout": ("--pmap-timeout", "seconds one pmap may take, all its items together"),
    "turn_timeout": ("--turn-timeout", "seconds one turn may take: the planner's reply and its program"),
    "run_timeout": ("--run-timeout", "seconds the whole run may take"),
}

#: The settings of the HTTP providers (``AnthropicProvider``, ``OpenAICompatProvider``) that
#: ``ptcrun run`` sets, for the planner and the worker alike: argument → (flag, help).
PROVIDER_FLAGS: dict[str, tuple[str, str]] = {
    "timeout": ("--request-timeout", "seconds one attempt of an LLM request may take"),
    "max_retries": ("--max-retries", "retries of a failed LLM request (rate limit, overload, 5xx, timeout)"),
    "max_retry_wait": ("--max-retry-wait", "seconds a busy server may ask to wait before a retry"),
}

#: Arguments of ``Runtime`` and ``Runtime.run`` that ``ptcrun run`` sets with a flag of their
#: name; messages spell them ``cache=`` (Python), the CLI ``--cache``.
_ARGUMENT_FLAGS = {"cache": "--cache", "resume": "--resume"}

_PROVIDER_SETTINGS = re.compile(r"\b(?:AnthropicProvider|OpenAICompatProvider)\(([^()]*)\)")


def in_cli_words(message: str) -> str:
    """Spell the settings a message names as the flags that set them.

    ``Limits.max_tokens`` becomes ``--token-limit``, and so does ``max_tokens`` in the fix the
    message names ("Raise max_tokens"). A bare field name elsewhere is left alone: it may be
    another setting of the same name (a worker call's ``max_tokens``); the clocks' names
    (``turn_timeout``) belong to ``Limits`` alone and are spelled as flags wherever they appear.
    A provider's settings, ``AnthropicProvider(timeout=2, max_retries=1)``, become
    ``--request-timeout=2, --max-retries=1`` when ``run`` has a flag for each of them.
    """
    for field, (flag, _) in LIMIT_FLAGS.items():
        message = re.sub(rf"\bLimits\.{field}\b", flag, message)
        if field.endswith("_timeout"):  # no other setting has these names
            message = re.sub(rf"\b{field}\b", flag, message)
        else:
            message = re.sub(rf"\b([Rr]aise) {field}\b", rf"\1 {flag}", message)
    message = _PROVIDER_SETTINGS.sub(_provider_flags, message)
    for name, flag in _ARGUMENT_FLAGS.items():
        message = re.sub(rf"\b{name}=(?=['\"])", f"{flag} ", message)
        message = re.sub(rf"\b{name}=(?=[\s.,;)]|$)", flag, message)
    # Unlike "timeout", these two names belong to the providers alone.
    for name in ("max_retry_wait", "max_retries"):
        message = re.sub(rf"\b{name}\b", PROVIDER_FLAGS[name][0], message)
    return message


def _provider_flags(match: re.Match[str]) -> str:
    """``--request-timeout=2, --max-retries=1`` for ``AnthropicProvider(timeout=2, max_retries=1)``;
    the text as it was when a setting has no flag (``api_key=...``)."""
    spelled = []
    for part in match.group(1).split(","):
        name, _, value = part.strip().partition("=")
        if name not in PROVIDER_FLAGS:
            return match.group(0)
        flag = PROVIDER_FLAGS[name][0]
        spelled.append(flag if value in ("", "...") else f"{flag}={value}")
    return ", ".join(spelled)


def _count(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least`` (argparse names the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {least}; got {text!r}")
        return value

    return parse


_POSITIVE = _count(1)
_NON_NEGATIVE = _count(0)


def _seconds(least: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: seconds, above ``least`` (or at least it); ``inf`` means no limit."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value >= least if inclusive else value > least):
            bound = f"at least {least:g}" if inclusive else f"more than {least:g}"
            raise argparse.ArgumentTypeError(f"must be seconds, {bound} (inf for no limit); got {text!r}")
        return value

    return parse


_DURATION = _seconds(0, inclusive=False)
_WAIT = _seconds(0, inclusive=True)


def _add_corpus_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how a corpus is cut: the same for ``run`` and ``exec``."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--chunk-tokens", type=_POSITIVE, metavar="N",
                      help=f"tokens per chunk (default {DEFAULT_CHUNK_TOKENS})")
    size.add_argument("--chunk-lines", type=_POSITIVE, metavar="N", help="lines per chunk, instead of tokens")
    parser.add_argument("--overlap", type=_NON_NEGATIVE, metavar="N",
                        help="tokens (or lines) repeated between neighbouring chunks (default 0)")


def _transcript_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("transcript", metavar="TRANSCRIPT", help="a transcript.jsonl file or its run folder")


def _tools_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools", metavar="FILE.py", help="a Python file whose public functions become tool.<name>"
    )


class _Parser(argparse.ArgumentParser):
    """A parser that reads flags whole: ``--plan`` must not silently mean ``--planner``, and a
    new flag must never change what an old command line means."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _version() -> str:
    try:
        return importlib.metadata.version("ptcrun")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.command`` names the one given."""
    parser = _Parser(
        prog="ptcrun",
        description="Run a planner LLM over a corpus it never sees, through sandboxed Python programs.",
    )
    parser.add_argument("--version", action="version", version=f"ptcrun {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run the planner on a corpus and print the answer",
        description="Run the planner on a corpus with live progress; print the answer, a summary and "
        "the transcript path.",
    )
    run.add_argument("corpus", metavar="CORPUS", help="a UTF-8 text file, cut into chunks as `data`")
    run.add_argument("--goal", required=True, help="what the planner must find out or produce")
    _add_corpus_flags(run)
    run.add_argument("--planner", default="anthropic:claude-sonnet-4-6", metavar="PROVIDER",
                     help="the planner model (default anthropic:claude-sonnet-4-6)")
    run.add_argument("--worker", metavar="PROVIDER",
                     help="the model behind tool.worker (default: the planner)")
    _tools_flag(run)
    for field, (flag, text) in LIMIT_FLAGS.items():
        seconds = field.endswith("_timeout")
        run.add_argument(flag, dest=field, type=_DURATION if seconds else _POSITIVE,
                         metavar="SECONDS" if seconds else "N", help=f"{text} (Limits.{field})")
    for setting, (flag, text) in PROVIDER_FLAGS.items():
        kind, metavar = {"timeout": (_DURATION, "SECONDS"), "max_retries": (_NON_NEGATIVE, "N"),
                         "max_retry_wait": (_WAIT, "SECONDS")}[setting]
        run.add_argument(flag, dest=setting, type=kind, metavar=metavar,
                         help=f"{text}; for HTTP planner and worker providers ({setting}=)")
    run.add_argument("--out", default="runs", metavar="DIR", help="where run folders are made (default runs)")
    run.add_argument("--schema", metavar="FILE.json", help="a JSON Schema the answer must match")
    run.add_argument("--cache", metavar="FILE", help="a SQLite file that keeps worker replies across "
                     "runs: a request an earlier run asked is answered from it at no cost "
                     "(created if missing)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an earlier run of the same goal and "
                     "corpus (interrupted or not): its recorded replies are replayed at no cost until this "
                     "run diverges from it")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--dry-run", action="store_true",
                     help="print what the run would cost (no LLM is called, no run folder is made) and exit")
    run.add_argument("--fail-on-partial", action="store_true",
                     help=f"exit {EXIT_CODES['partial']}, not 0, when the answer was built while calls "
                     "were failing")

    ex = sub.add_parser(
        "exec",
        help="run one program file in the sandbox, with no LLM (to debug a program)",
        description="Run a program in the sandbox with no LLM: prints its output, then the done "
        "value or the error.",
    )
    ex.add_argument("program", metavar="PROGRAM",
                    help="a .py program file; with --turn, a transcript or its run folder")
    ex.add_argument("--data", metavar="FILE", help="a UTF-8 text file, cut into chunks as `data`")
    _add_corpus_flags(ex)
    _tools_flag(ex)
    ex.add_argument(
        "--turn",
        type=_POSITIVE,
        metavar="N",
        help="PROGRAM is a transcript (or run folder): run turn N's program again, tool calls "
        "answered from the transcript",
    )
    ex.add_argument("--fresh", action="store_true", help="with --turn: skip the earlier turns' programs")

    show = sub.add_parser(
        "show",
        help="the turn-by-turn view of a transcript",
        description="Each turn's program with line numbers, its output, error, tokens and time.",
    )
    _transcript_argument(show)
    show.add_argument("--turn", type=_POSITIVE, metavar="N", help="only turn N")
    show.add_argument("--calls", action="store_true", help="also each pmap's calls: duration, status, reply")

    tree = sub.add_parser(
        "tree",
        help="the span tree of a transcript, slowest calls marked",
        description="Every span (turn, planner call, program, pmap, item, call) with its duration "
        "and status.",
    )
    _transcript_argument(tree)

    export = sub.add_parser(
        "export",
        help="export a transcript as Chrome/Perfetto trace events",
        description="Write trace events for chrome://tracing and ui.perfetto.dev; print the path.",
    )
    _transcript_argument(export)
    export.add_argument("--format", choices=["chrome"], default="chrome", help="the trace format (chrome)")
    export.add_argument("--output", "-o", metavar="FILE",
                        help="where to write (default trace.chrome.json in the run folder; - for stdout)")

    view = sub.add_parser(
        "view",
        help="write a self-contained HTML page of a run and print its path",
        description="Write one HTML file (turns, programs, outputs, a timeline of every pmap); "
        "print its path.",
    )
    _transcript_argument(view)
    view.add_argument("--output", "-o", metavar="FILE",
                      help="where to write (default timeline.html in the run folder)")
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse a command line; an unknown option is refused by its subcommand, with a suggestion.

    argparse leaves options a subcommand does not know to the top-level parser, whose usage
    says nothing about the subcommand; here the subcommand's own usage is printed instead,
    with the nearest flag it has (``--planer``: did you mean ``--planner``?).
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = _subparsers(parser).get(args.command, parser)
        flags = [flag for action in command._actions for flag in action.option_strings]
        option = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=", 1)[0]
        near = difflib.get_close_matches(option, flags, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
