"""The ``ptcrun`` command line: its flags, its exit codes, and errors spelled in its flags.

Exit codes are derived, not restated: an error exits with its class's ``exit_code``
(``ptcrun/errors.py`` is the only place those are set), and :data:`EXIT_CODES` names them beside
the endings that are not errors. ``docs/cli.md`` lists the same table; a test keeps it in step.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError, LimitExceeded, PtcrunError, SandboxError
from . import _settings
from ._settings import LIMIT_FLAGS, PROVIDER_FLAGS, SETTINGS, BadValue, Convert

__all__ = [
    "EXIT_CODES",
    "LIMIT_FLAGS",
    "PROVIDER_FLAGS",
    "build_parser",
    "in_cli_words",
    "parse",
    "status_exit_code",
]

_SETTING = {s.dest: s for s in SETTINGS}

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


#: Arguments of ``Runtime`` and ``Runtime.run`` that ``ptcrun run`` sets with a flag of their
#: name; messages spell them ``cache=`` (Python), the CLI ``--cache``.
_ARGUMENT_FLAGS = {"cache": "--cache", "resume": "--resume"}

_PROVIDER_SETTINGS = re.compile(r"\b(?:AnthropicProvider|OpenAICompatProvider)\(([^()]*)\)")


def in_cli_words(message: str) -> str:
    """Spell the settings a message names as the flags that set them.

    ``Limits.max_tokens`` becomes ``--token-limit``, and so does a field in the fix the message
    names ("Raise max_tokens", "lower sandbox_memory_bytes"; but "lower max_tokens" is a call's
    own argument: lowering the run's budget is never a fix). A bare field name elsewhere is left
    alone: it may be another setting of the same name (a worker call's ``max_tokens``); the clocks' names
    (``turn_timeout``) belong to ``Limits`` alone and are spelled as flags wherever they appear.
    A provider's settings, ``AnthropicProvider(timeout=2, max_retries=1)``, become
    ``--request-timeout=2, --max-retries=1`` when ``run`` has a flag for each of them.
    """
    for field, (flag, _) in LIMIT_FLAGS.items():
        message = re.sub(rf"\bLimits\.{field}\b", flag, message)
        if field.endswith("_timeout"):  # no other setting has these names
            message = re.sub(rf"\b{field}\b", flag, message)
        elif field == "max_tokens":  # "lower max_tokens" is a call's own max_tokens= argument
            message = re.sub(rf"\b([Rr]aise) {field}\b", rf"\1 {flag}", message)
        else:
            message = re.sub(rf"\b([Rr]aise|[Ll]ower) {field}\b", rf"\1 {flag}", message)
    # The command reads API keys and base URLs from the providers' own variables and the
    # provider string (anthropic:MODEL@URL); it has no flag for either.
    message = _API_KEY_ARGUMENT.sub("", message)
    message = _BASE_URL_ARGUMENT.sub(_base_url_words, message)
    message = _PROVIDER_SETTINGS.sub(_provider_flags, message)
    message = re.sub(r"\bmath\.inf\b", "inf", message)
    # The corpus store's messages name the Python call that builds a store; here it is a command.
    message = _BUILD_STORE_CALL.sub(r"`ptcrun store build CORPUS \1`", message)
    message = message.replace("ptcrun.build_store or ptcrun.write_store", "`ptcrun store build`")
    message = message.replace("(ptcrun.build_store)", "(`ptcrun store build`)")
    for name, flag in _ARGUMENT_FLAGS.items():
        message = re.sub(rf"\b{name}=(?=['\"])", f"{flag} ", message)
        message = re.sub(rf"\b{name}=(?=[\s.,;)]|$)", flag, message)
    # Unlike "timeout", these two names belong to the providers alone.
    for name in ("max_retry_wait", "max_retries"):
        message = re.sub(rf"\b{name}\b", PROVIDER_FLAGS[name][0], message)
    return message


_BUILD_STORE_CALL = re.compile(r"ptcrun\.build_store\(corpus, ('[^']*'|\"[^\"]*\")\)")
_API_KEY_ARGUMENT = re.compile(r" or pass (?:AnthropicProvider|OpenAICompatProvider)\(api_key=\.\.\.\)")
_BASE_URL_ARGUMENT = re.compile(r"\b(AnthropicProvider|OpenAICompatProvider)\(base_url=\.\.\.\)")


def _base_url_words(match: re.Match[str]) -> str:
    kind = "anthropic" if match.group(1) == "AnthropicProvider" else "openai"
    return f"the base URL ({kind}:MODEL@URL, or {kind.upper()}_BASE_URL)"


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


def _typed(convert: Convert) -> Callable[[str], Any]:
    """An argparse type from a setting's reader; argparse names the flag in the error."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except BadValue as exc:
            raise argparse.ArgumentTypeError(f"{exc}; got {text!r}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _add_settings(parser: argparse.ArgumentParser, *dests: str, mutually_exclusive: bool = False) -> None:
    """The flags of these settings (see ``SETTINGS``); not given, they are ``None`` until
    ``apply_config`` fills them from the environment, the config file or the default."""
    target: Any = parser.add_mutually_exclusive_group() if mutually_exclusive else parser
    for dest in dests:
        s = _SETTING[dest]
        default = "" if s.default is None else f" (default {s.default})"
        target.add_argument(s.flag, dest=s.dest, type=_typed(s.convert), metavar=s.metavar,
                            help=f"{s.help}{default}; env {s.env}")


def _add_corpus_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how a corpus is cut: the same for ``run`` and ``exec``."""
    _add_settings(parser, "chunk_tokens", "chunk_lines", mutually_exclusive=True)
    _add_settings(parser, "overlap")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Every limit, the request settings and prices: the same for ``run`` and ``exec``."""
    _add_settings(parser, *LIMIT_FLAGS, *PROVIDER_FLAGS)
    parser.add_argument("--price", action="append", metavar="MODEL=IN,OUT",
                        help="USD per million input and output tokens of a model, so its runs get "
                        "a cost (repeatable; env PTCRUN_PRICE, config [prices])")


def _add_config_flags(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="the TOML config file (default ~/.config/ptcrun/config.toml when "
                        "there is one; none for no file; env PTCRUN_CONFIG)")
    s = _SETTING["out"]
    parser.add_argument("--out", dest="out", type=_typed(s.convert), metavar="DIR",
                        help=f"{out_help} (default {s.default}; env {s.env})")


def _transcript_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("transcript", metavar="TRANSCRIPT", nargs="?", default="latest",
                        help="a transcript.jsonl file, its run folder, or latest (the default): "
                        "the newest run under --out")
    _add_config_flags(parser, out_help="where latest is looked for")


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
        "the transcript path. Settings not given as flags come from PTCRUN_* variables, then the "
        "config file, then their defaults.",
    )
    run.add_argument("corpus", metavar="CORPUS",
                     help="a UTF-8 text file, cut into chunks as `data` (- reads standard input), "
                     "or a corpus store file (`ptcrun store build`), read as it was cut")
    goal = run.add_mutually_exclusive_group(required=True)
    goal.add_argument("--goal", help="what the planner must find out or produce")
    goal.add_argument("--goal-file", metavar="FILE", help="a UTF-8 file that holds the goal")
    _add_corpus_flags(run)
    _add_settings(run, "planner", "worker", "sub_planner")
    _tools_flag(run)
    _add_model_flags(run)
    _add_config_flags(run, out_help="where run folders are made")
    run.add_argument("--schema", metavar="FILE.json", help="a JSON Schema the answer must match")
    run.add_argument("--cache", metavar="FILE", help="a SQLite file that keeps worker replies across "
                     "runs: a request an earlier run asked is answered from it at no cost "
                     "(created if missing)")
    run.add_argument("--store", metavar="FILE", help="keep the cut corpus in this store file: made "
                     "from CORPUS when missing, reused without cutting when it was cut from the same "
                     "bytes (checked each run) and with the chunk flags given, if any")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an earlier run of the same goal and "
                     "corpus (interrupted or not): its recorded replies are replayed at no cost until this "
                     "run diverges from it")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--dry-run", action="store_true",
                     help="print what the run would cost (no LLM is called, no run folder is made) and "
                     "exit; a text corpus is cut into a scratch store beside --out, removed on exit")
    run.add_argument("--fail-on-partial", action="store_true",
                     help=f"exit {EXIT_CODES['partial']}, not 0, when the answer was built while calls "
                     "were failing")

    ex = sub.add_parser(
        "exec",
        help="run one program file in the sandbox, with no planner (to debug a program)",
        description="Run a program in the sandbox with no planner: prints its output, then the done "
        "value or the error. Corpus, worker and limit settings are read as `run` reads them.",
    )
    ex.add_argument("program", metavar="PROGRAM", nargs="?",
                    help="a .py program file; with --turn, a transcript, its run folder or latest "
                    "(the default)")
    ex.add_argument("--data", metavar="FILE",
                    help="a UTF-8 text file, cut into chunks as `data` (- reads standard input), or a "
                    "corpus store file")
    _add_corpus_flags(ex)
    _tools_flag(ex)
    _add_settings(ex, "worker")
    _add_model_flags(ex)
    _add_config_flags(ex, out_help="where latest and --replay latest are looked for")
    ex.add_argument(
        "--turn",
        type=_typed(_settings.turn_address),
        metavar="N",
        help="PROGRAM is a transcript (or run folder): run turn N's program again, tool calls "
        "answered from the transcript; CALL/N runs turn N of the sub-run that call started "
        "(t1.c3/2, as `show` names it)",
    )
    ex.add_argument("--fresh", action="store_true", help="with --turn: skip the earlier turns' programs")
    ex.add_argument("--replay", metavar="RUN",
                    help="answer the program's tool and worker calls from this run's transcript "
                    "(a transcript, run folder or latest) where it made the same call")
    ex.add_argument("--replay-only", action="store_true",
                    help="with --replay: a call the run never made fails, instead of going live")

    store = sub.add_parser(
        "store",
        help="cut a corpus once into a store file that runs reuse",
        description="A corpus store holds a corpus cut into chunks, read from disk by index: `ptcrun "
        "run STORE` and `ptcrun exec --data STORE` read it without cutting the corpus again.",
    )
    stores = store.add_subparsers(dest="store_command", required=True, metavar="ACTION", parser_class=_Parser)
    build = stores.add_parser(
        "build",
        help="cut CORPUS into a store file",
        description="Cut CORPUS into chunks as `ptcrun run` would and write them to STORE, with the "
        "chunk options and the corpus's size and SHA-256, so a run can check what it reuses.",
    )
    build.add_argument("corpus", metavar="CORPUS", help="a UTF-8 text file; - reads standard input")
    build.add_argument("path", metavar="STORE", help="the store file to write (replaced when it is a store)")
    _add_corpus_flags(build)
    build.add_argument("--config", metavar="FILE", help="the TOML config file whose [corpus] settings "
                       "apply (default ~/.config/ptcrun/config.toml; none for no file; env PTCRUN_CONFIG)")
    build.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    info = stores.add_parser(
        "info",
        help="what a store holds and what it was cut from",
        description="The store's chunks, characters and tokens, its cut, the corpus it was cut from "
        "and whether that file has changed since.",
    )
    info.add_argument("path", metavar="STORE", help="a corpus store file")
    info.add_argument("--json", action="store_true", help="print it as one JSON object")
    info.add_argument("--verify", action="store_true", help="also read every chunk and check the "
                      "store's fingerprint (exit 2, as for any damaged store, when it does not match)")

    runs = sub.add_parser(
        "runs",
        help="list the runs under the output folder, newest first",
        description="One line per run folder under --out, newest first: id, when, status, goal, "
        "turns, tokens, cost, wall time and failed calls. A run still going reads running, a "
        "killed one interrupted.",
    )
    _add_config_flags(runs, out_help="the folder whose runs are listed")
    runs.add_argument("--limit", type=_typed(_settings.NON_NEGATIVE), default=20, metavar="N",
                      help="the newest N runs (default 20; 0 for all)")
    runs.add_argument("--json", action="store_true", help="one JSON object per run, a line each")

    show = sub.add_parser(
        "show",
        help="the turn-by-turn view of a transcript",
        description="Each turn's planner text, program with line numbers, output, error, tokens "
        "and time.",
    )
    _transcript_argument(show)
    show.add_argument("--turn", type=_typed(_settings.turn_address), metavar="N",
                      help="only turn N; CALL/N: turn N of the sub-run that call started (t1.c3/2)")
    show.add_argument("--calls", action="store_true", help="also each pmap's calls: duration, status, reply")
    show.add_argument("--prompt", action="store_true",
                      help="also the planner's whole prompt of each turn: system prompt and messages")

    tree = sub.add_parser(
        "tree",
        help="the span tree of a transcript, slowest calls marked",
        description="Every span (turn, planner call, program, pmap, item, call) with its duration "
        "and status.",
    )
    _transcript_argument(tree)
    tree.add_argument("--depth", type=_typed(_settings.POSITIVE), metavar="N",
                      help="show N levels (1: the run, 2: its turns, ...); deeper spans are counted")

    export = sub.add_parser(
        "export",
        help="export a transcript as Chrome/Perfetto trace events or OpenTelemetry spans",
        description="Write trace events for chrome://tracing and ui.perfetto.dev, or OTLP/JSON spans "
        "for an OpenTelemetry collector; print the path.",
    )
    _transcript_argument(export)
    export.add_argument("--format", choices=["chrome", "otlp-json"], default="chrome",
                        help="chrome: Chrome/Perfetto trace events; otlp-json: OpenTelemetry spans, the "
                        "body an OTLP/HTTP collector takes at /v1/traces")
    export.add_argument("--output", "-o", metavar="FILE",
                        help="where to write (default trace.chrome.json or trace.otlp.json in the run "
                        "folder; - for stdout)")

    view = sub.add_parser(
        "view",
        help="write a self-contained HTML page of a run and print its path",
        description="Write one HTML file (turns, programs, outputs, a timeline of every pmap); "
        "print its path.",
    )
    _transcript_argument(view)
    view.add_argument("--output", "-o", metavar="FILE",
                      help="where to write (default timeline.html in the run folder)")
    view.add_argument("--open", action="store_true",
                      help="also open the page in the web browser ($BROWSER, else the system's)")

    from ._bench import add_bench_parser  # here, not at the top: _bench imports this module

    add_bench_parser(sub)
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
        command = _chosen(parser, args)
        flags = [flag for action in command._actions for flag in action.option_strings]
        option = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=", 1)[0]
        near = difflib.get_close_matches(option, flags, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand given: ``bench run`` for ``ptcrun bench run ...``."""
    while True:
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if action is None:
            return parser
        chosen = action.choices.get(getattr(args, action.dest, None) or "")
        if chosen is None:
            return parser
        parser = chosen
