"""``ptcrun exec``: run one program in the sandbox with no planner, or run a recorded turn again.

``exec PROGRAM.py`` runs a program file against ``--data``, with ``--worker`` behind
``tool.worker``. ``exec TRANSCRIPT --turn N`` runs turn N's program again, and ``exec EDITED.py
--replay RUN`` runs an edited program: every tool and worker call is answered from the run's
record of the same call (same tool, same arguments), so the program sees what it saw in the
run; a call the run never made goes live (``--tools``, ``--worker``), or fails under
``--replay-only``. Which calls were replayed is printed after the program's outcome.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import errors
from .._limits import Limits
from ..corpus._store import StoredChunks, is_store
from ..errors import ConfigError
from ._corpus import Corpus, chunk_options, given_cut, open_corpus
from ._options import build_limits, build_provider
from ._parser import EXIT_CODES, in_cli_words
from ._record import CORPUS_FILE, read_record
from ._runs import resolve_transcript
from ._scratch import Scratch

if TYPE_CHECKING:
    from .._tools import Tool
    from ..runtime._agent import Data
    from ..sandbox import ExecResult
    from ..transcript._transcript import Transcript

__all__ = ["cmd_exec"]


def cmd_exec(args: argparse.Namespace) -> int:
    """Run ``args.program`` (or, with ``--turn``, a recorded turn); return the exit code."""
    if args.data is None:
        given = [flag for flag, dest in (("--chunk-tokens", "chunk_tokens"), ("--chunk-lines", "chunk_lines"),
                                         ("--overlap", "overlap")) if dest in args.from_flags]
        if given:
            raise ConfigError(f"{given[0]} says how to cut --data, but no --data FILE was given; give both.")
    if args.turn is not None:
        if args.replay is not None:
            raise ConfigError("--replay RUN runs a program file against a run; --turn N runs the run's "
                              "own program. Give one of them.")
        return _exec_turn(args)
    if args.fresh:
        raise ConfigError("--fresh skips the turns before --turn N; give --turn N too.")
    if args.replay_only and args.replay is None:
        raise ConfigError(
            "--replay-only says what to do with calls --replay RUN did not record; give --replay RUN too."
        )
    if args.program is None:
        raise ConfigError("give the program to run: ptcrun exec PROGRAM.py (or TRANSCRIPT --turn N).")
    return _exec_program(args) if args.replay is None else _exec_replay(args)


def _live_tools(args: argparse.Namespace) -> dict[str, Tool]:
    from .._tools import load_tools_file

    return dict(load_tools_file(args.tools)) if args.tools else {}


def _exec_program(args: argparse.Namespace) -> int:
    """``exec PROGRAM.py``: the program on ``--data``, with live tools and ``--worker``."""
    from ..sandbox import execute

    source = _program(args.program)
    limits = build_limits(args)
    tools = {"agent": _agent_tool(), **_live_tools(args), "worker": _worker_tool(args, limits)}
    with _scratch(args) as scratch:
        data = _data(args, source, scratch)
        return _report(execute(source, data=data, tools=list(tools.values()), limits=limits))


def _scratch(args: argparse.Namespace, run: Transcript | None = None) -> Scratch:
    """Where exec cuts a corpus it is given as text: beside the run folders, as `run` does
    (beside the run's own folder when it works on a run)."""
    if run is not None and run.path is not None:
        runs = run.path.parent.parent
        return Scratch(runs, where=f"the run folders in {str(runs)!r}")
    return Scratch(Path(args.out), where=f"--out {args.out!r}")


def _exec_replay(args: argparse.Namespace) -> int:
    """``exec EDITED.py --replay RUN``: the program with the run's calls answered from its record."""
    from ..sandbox import execute
    from ..transcript._transcript import Transcript

    source = _program(args.program)
    limits = build_limits(args)
    live = _live_tools(args)
    if args.worker is not None:  # else a worker call the run never made is refused, saying how
        live["worker"] = _worker_tool(args, limits)
    transcript = Transcript.load(resolve_transcript(args.replay, args.out))
    replay = _Replay(transcript.calls, only=args.replay_only)
    names = set(transcript.run.get("tools") or ()) | {c.tool for c in transcript.calls} | set(live)
    tools = [replay.tool(name, live.get(name)) for name in sorted(names)]
    with _scratch(args, transcript) as scratch:
        data = _replay_data(args, transcript, scratch) if args.data is None else _data(args, source, scratch)
        code = _report(execute(source, data=data, tools=tools, limits=limits))
    replay.print_log(f"from {transcript.path}")
    return code


#: Why ``tool.agent`` cannot run under exec, and what can.
_NO_AGENT = (
    "tool.agent starts a sub-run, which needs a planner, and exec runs none: run the goal with "
    "`ptcrun run`, or answer the program's agent calls from a run that made them with --replay RUN"
)


def _agent_tool() -> Tool:
    """``tool.agent`` under exec: a tool that says why it cannot run here, rather than none."""
    from .._tools import Tool

    async def agent(*args: Any, **kwargs: Any) -> Any:
        raise errors.ToolError(f"{_NO_AGENT}.", tool="agent")

    return Tool.from_function(agent, name="agent", description="no planner runs sub-runs under exec")


def _worker_tool(args: argparse.Namespace, limits: Limits) -> Tool:
    """``tool.worker`` under exec: the ``--worker`` model, or a tool that says how to get one."""
    from .._tools import Tool

    if args.worker is None:

        async def worker(*args: Any, **kwargs: Any) -> Any:
            raise errors.ToolError(
                "tool.worker needs a model under exec: pass --worker PROVIDER (or set PTCRUN_WORKER), "
                "or --replay RUN to answer its calls from a run.",
                tool="worker",
            )

        return Tool.from_function(worker, name="worker", description="no worker model was given")
    from ..runtime._budget import Ledger
    from ..runtime._worker import make_worker_tool

    return make_worker_tool(
        provider=build_provider(args.worker, args),
        ledger=Ledger(limits.max_tokens),
        limits=limits,
        emit=lambda event: None,  # exec writes no transcript
        span_of_call=lambda call: f"exec.c{(call or {}).get('call', 0)}",
    )


def _uses_data(source: str) -> bool:
    """Whether the program reads the name ``data`` without ever setting it itself."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False  # the sandbox reports it, with its line
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "data"]
    return any(isinstance(n.ctx, ast.Load) for n in names) and not any(
        isinstance(n.ctx, ast.Store) for n in names
    )


def _data(args: argparse.Namespace, source: str, scratch: Scratch) -> StoredChunks | list[str]:
    """The chunks of ``--data``; a program that reads ``data`` with no ``--data`` is refused
    rather than run on no chunks at all."""
    if args.data is not None:
        corpus = open_corpus(args.data, lambda: chunk_options(args), flag="--data", scratch=scratch,
                             given=given_cut(args))
        _warn(corpus)
        return corpus.chunks
    if _uses_data(source):
        raise ConfigError(
            f"program {args.program!r} reads `data`, but no --data FILE was given, so it would run "
            f"on no chunks; pass the corpus with --data FILE (- for standard input), or --replay RUN "
            f"to use a run's corpus."
        )
    return []


def _program(path: str) -> str:
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"program path {path!r} is a directory; pass the path of a .py file.")
    if not file.is_file():
        raise ConfigError(f"program file {path!r} does not exist; pass the path of a .py file.")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"program file {path!r} is not UTF-8 text (byte offset {exc.start:,}); save it as UTF-8."
        ) from None


def _report(result: ExecResult) -> int:
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
        print(f"error: {in_cli_words(str(result.error))}", file=sys.stderr)
        # A limit or a crashed child exits with its error's code; the program's own errors
        # (NameError, a failed tool call it did not catch) with the generic one.
        return result.limit.exit_code if result.limit is not None else EXIT_CODES["error"]
    return EXIT_CODES["done"]


# -- exec TRANSCRIPT --turn N ------------------------------------------------------------------


def _exec_turn(args: argparse.Namespace) -> int:
    result, turn, replay = exec_turn(args)
    code = _report(result)
    recorded = "done" if turn.status == "invalid_answer" else turn.status
    same = result.output == turn.output and result.status == recorded
    verdict = "the same output and outcome as" if same else "a different output or outcome from"
    call = args.turn[0]
    where = f"turn {call}/{turn.number}" if call else f"turn {turn.number}"
    print(
        f"{where}: {verdict} the recorded run ({replay.replayed} tool calls replayed, "
        f"{replay.live} live)",
        file=sys.stderr,
    )
    return code


@attrs.frozen
class _Answered:
    """How one call of a replayed program was answered: ``replayed``, ``live`` or ``refused``."""

    how: str
    tool: str
    args: str


class _Replay:
    """Answers tool calls from the calls a transcript recorded, matched by tool and arguments.

    A call the run made several times with the same arguments is answered in the order the run
    made them. A call it never made goes to the live tool when there is one, unless ``only``.
    """

    def __init__(self, calls: Sequence[Any], *, only: bool = False) -> None:
        self._queues: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
        for call in calls:
            if call.status in ("ok", "error"):
                self._queues[self._key(call.tool, call.args, call.kwargs)].append(call)
        self._only = only
        self.log: list[_Answered] = []

    @property
    def replayed(self) -> int:
        return sum(1 for a in self.log if a.how == "replayed")

    @property
    def live(self) -> int:
        return sum(1 for a in self.log if a.how == "live")

    @staticmethod
    def _key(tool: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return json.dumps([tool, list(args), dict(kwargs)], sort_keys=True, ensure_ascii=False)

    def tool(self, name: str, live: Tool | None) -> Tool:
        from .._tools import Tool
        from ..transcript._wording import preview

        async def replay(*args: Any, **kwargs: Any) -> Any:
            shown = preview([list(args), kwargs], 80)
            queue = self._queues.get(self._key(name, args, kwargs))
            if queue:
                record = queue.popleft()
                self.log.append(_Answered("replayed", name, shown))
                if record.status == "ok":
                    return record.value
                raise errors.from_payload(record.error)
            if live is not None and not self._only:
                self.log.append(_Answered("live", name, shown))
                return await live.call(list(args), kwargs)
            self.log.append(_Answered("refused", name, shown))
            if self._only:
                fix = "--replay-only refuses calls the run did not make; drop it to make them live"
            elif name == "agent":
                fix = "tool.agent starts a sub-run, which needs a planner, and exec runs none"
            else:
                fix = f"pass {'--worker PROVIDER' if name == 'worker' else '--tools FILE'} to make it live"
            raise errors.ToolError(
                f"tool {name!r} was called with arguments the recorded run never used ({shown}); "
                f"only the run's own calls can be answered from its transcript: {fix}.",
                tool=name,
            )

        return Tool.from_function(replay, name=name, description=f"replays recorded calls of tool.{name}")

    def print_log(self, source: str, *, shown: int = 20) -> None:
        """The calls that were not replayed, and a count of each kind, on standard error."""
        counts = collections.Counter(a.how for a in self.log)
        print(
            f"calls: {counts['replayed']:,} replayed {source}, {counts['live']:,} live, "
            f"{counts['refused']:,} refused",
            file=sys.stderr,
        )
        others = [a for a in self.log if a.how != "replayed"]
        for answered in others[:shown]:
            print(f"  {answered.how:<8} tool.{answered.tool} {answered.args}", file=sys.stderr)
        if len(others) > shown:
            print(f"  ... and {len(others) - shown:,} more", file=sys.stderr)


def _limits_from(recorded: Mapping[str, Any]) -> Limits:
    names = {f.name for f in attrs.fields(Limits)}
    values: dict[str, Any] = {k: (math.inf if v is None else v) for k, v in recorded.items() if k in names}
    try:
        return Limits(**values)
    except ConfigError:
        return Limits()


def _flags_only(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with only the settings given as flags: a recorded run's own cut and limits come
    before the environment's and the config file's, which are defaults for new runs."""
    kept = vars(args).copy()
    for name in args.from_settings:
        if name not in args.from_flags:
            kept[name] = None
    return argparse.Namespace(**kept)


def _warn(corpus: Corpus) -> None:
    for warning in corpus.warnings:
        print(f"ptcrun: warning: {warning}", file=sys.stderr)


def _replay_data(args: argparse.Namespace, transcript: Transcript, scratch: Scratch) -> StoredChunks:
    """The run's chunks: from ``--data`` (flags not given default to the run's), else from the
    store the run kept, else cut again from the corpus ``corpus.json`` names; checked against
    the run's fingerprint, which a store carries (no pass over a corpus larger than memory)."""
    folder = transcript.path.parent if transcript.path is not None else Path(".")
    record = read_record(folder)
    flags = _flags_only(args)
    if args.data is not None:
        corpus = open_corpus(args.data, lambda: chunk_options(flags, record), flag="--data",
                             scratch=scratch, given=given_cut(args))
    elif record is not None:
        corpus = _recorded_corpus(record, folder, flags, scratch)
    else:
        raise ConfigError(
            f"the run folder has no {CORPUS_FILE} (the run was not started by `ptcrun run`); pass "
            f"the corpus with --data FILE and the chunk options the run used."
        )
    _warn(corpus)
    chunks = corpus.chunks
    recorded_data = transcript.run.get("data") or {}
    expected = recorded_data.get("chunks")
    if isinstance(expected, int) and expected != len(chunks):
        raise ConfigError(
            f"--data gives {len(chunks):,} chunks but the run had {expected:,}; pass the same "
            f"--chunk-tokens/--chunk-lines/--overlap the run used."
        )
    fingerprint = recorded_data.get("sha256")
    if isinstance(fingerprint, str) and chunks.sha256 != fingerprint:
        raise ConfigError(
            "--data gives chunks that differ from the run's (their fingerprint in the transcript's "
            "run.start does not match); pass the original text and the chunk options the run used."
        )
    return chunks


def _recorded_corpus(
    record: dict[str, Any], folder: Path, flags: argparse.Namespace, scratch: Scratch
) -> Corpus:
    """The corpus ``corpus.json`` records: the store the run kept when it is still the same,
    else the corpus file cut again as the run cut it."""
    where = folder / CORPUS_FILE
    kept = record.get("store")
    damaged: ConfigError | None = None
    if isinstance(kept, str) and is_store(kept):
        try:
            corpus = open_corpus(kept, lambda: chunk_options(flags, record), flag="--data", scratch=scratch)
        except ConfigError as exc:  # damaged since: the corpus file may still be there
            damaged = exc
        else:
            if corpus.chunks.sha256 == record.get("sha256"):
                return corpus
    path = record["path"]
    if not Path(path).is_file():
        if damaged is not None:
            raise damaged
        gone = "" if not isinstance(kept, str) else f" and its store {kept!r} is not either"
        raise ConfigError(
            f"the run's corpus {path!r} (named in {where}) is not there any more{gone}; pass the "
            f"corpus with --data FILE."
        )
    corpus = open_corpus(path, chunk_options(flags, record), flag="--data", scratch=scratch)
    if record.get("sha256") and corpus.chunks.sha256 != record["sha256"]:
        raise ConfigError(
            f"corpus {path!r} changed since the run (its chunks differ from the ones recorded in "
            f"{where}); pass the original text with --data."
        )
    return corpus


def _sub_run_data(top: Transcript, call: str, chunks: StoredChunks) -> Data:
    """The sub-run's corpus, chosen from the run's ``chunks`` as each ``tool.agent`` call on the
    way down chose it (its ``data=`` argument), and checked against the sub-run's fingerprint."""
    from ..runtime._agent import select_data

    data: Data = chunks
    run = top
    parts = call.split("/") if call else []
    for depth, span in enumerate(parts, 1):
        where = "/".join(parts[:depth])
        record = next(c for c in run.calls if c.span == span)
        chosen = record.args[1] if len(record.args) > 1 else record.kwargs.get("data")
        try:
            data = select_data(data, chosen)
        except errors.ToolArgumentError as exc:
            raise ConfigError(f"the sub-run of call {where} cannot be rebuilt: {exc}") from None
        run = run.sub_runs[span]
        if _fingerprint(data) != run.run.get("data"):
            raise ConfigError(
                f"the chunks the call {where} gave its sub-run differ from the ones it recorded "
                f"(their fingerprint in its run.start does not match); pass the run's corpus."
            )
    return data


def _fingerprint(data: Data) -> Any:
    """The ``data`` summary a ``run.start`` records, to check a rebuilt corpus against it."""
    from ..runtime._turnloop import data_summary

    return data_summary(data)


def exec_turn(args: argparse.Namespace) -> tuple[ExecResult, Any, _Replay]:
    """Run turn ``args.turn`` of the transcript ``args.program`` again, without the LLM.

    ``args.turn`` is ``(CALL, N)``: turn N of the run when CALL is ``""``, else of the sub-run
    the ``tool.agent`` call CALL started, over the chunks that call gave it.

    The programs of the turns before it (since the sandbox last restarted) run first, silently,
    so the variables the turn relies on exist, with the run's ``random`` seed, so they draw what
    they drew in the run. Returns the turn's ``ExecResult``, the recorded
    turn and the replay counts.
    """
    from ..transcript._transcript import Transcript

    top = Transcript.load(resolve_transcript(args.program, args.out))
    call, number = args.turn
    transcript = top.sub_run(call) if call else top
    turn = transcript.turn(number)
    program = turn.program
    if program is None:
        with_code = [t.number for t in transcript.turns if t.program is not None]
        raise ConfigError(
            f"turn {turn.number} has no program (its reply held no code block); turns with one: "
            f"{', '.join(map(str, with_code)) or 'none'}."
        )
    first = 1
    for earlier in transcript.turns:
        if earlier.number < turn.number and earlier.restarted:
            first = earlier.number + 1
    if args.fresh:
        first = turn.number
    before = [t.program for t in transcript.turns if first <= t.number < turn.number and t.program]
    with _scratch(args, top) as scratch:
        data = _sub_run_data(top, call, _replay_data(args, top, scratch))
        return _exec_turn_with(args, transcript, turn, first, before, program, data)


def _exec_turn_with(
    args: argparse.Namespace, transcript: Transcript, turn: Any, first: int, before: list[str],
    program: str, data: Data,
) -> tuple[ExecResult, Any, _Replay]:
    """exec_turn's second half: the turn's program and those before it, on data."""
    import trio

    from ..sandbox.host._driver import Sandbox

    live = _live_tools(args)
    limits = build_limits(_flags_only(args), _limits_from(transcript.limits))
    if args.worker is not None:
        live["worker"] = _worker_tool(args, limits)
    replay = _Replay([c for c in transcript.calls if first <= c.turn <= turn.number])
    names = set(transcript.run.get("tools") or ()) | {c.tool for c in transcript.calls} | set(live)
    tools = [replay.tool(name, live.get(name)) for name in sorted(names)]

    # Every child of the run started its programs' random generator from the recorded seed.
    # (the top run's: a sub-run's children, under "/" spans, drew their own)
    seeds = [e.get("seed") for e in transcript.events
             if e.get("type") == "sandbox.start" and "/" not in str(e.get("span", ""))]
    seed = next((s for s in seeds if type(s) is int), None)

    async def main() -> ExecResult:
        async with Sandbox(data=data, tools=tools, limits=limits, seed=seed) as sandbox:
            for earlier in before:
                await sandbox.execute(earlier)
            return await sandbox.execute(program)

    result = trio.run(main)
    return result, turn, replay
