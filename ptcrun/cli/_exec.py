"""``ptcrun exec``: run one program in the sandbox with no LLM, or run a recorded turn again.

``exec PROGRAM.py`` runs a program file against ``--data``. ``exec TRANSCRIPT --turn N`` runs turn
N's program again: every tool call it makes is answered from the transcript's record of the same
call (same tool, same arguments), so the program sees what it saw in the run.
"""

from __future__ import annotations

import argparse
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
from ..corpus._chunking import corpus_digest
from ..corpus._load import load_corpus
from ..errors import ConfigError
from ._corpus import CORPUS_FILE, chunk_options, read_record
from ._parser import EXIT_CODES

if TYPE_CHECKING:
    from .._tools import Tool
    from ..sandbox import ExecResult
    from ..transcript._transcript import Transcript

__all__ = ["cmd_exec"]


def cmd_exec(args: argparse.Namespace) -> int:
    """Run ``args.program`` (or, with ``--turn``, a recorded turn); return the exit code."""
    if args.data is None:
        given = [flag for flag, value in (("--chunk-tokens", args.chunk_tokens),
                                          ("--chunk-lines", args.chunk_lines),
                                          ("--overlap", args.overlap)) if value is not None]
        if given:
            raise ConfigError(f"{given[0]} says how to cut --data, but no --data FILE was given; give both.")
    if args.turn is not None:
        return _exec_turn(args)
    if args.fresh:
        raise ConfigError("--fresh skips the turns before --turn N; give --turn N too.")
    from .._tools import load_tools_file
    from ..sandbox import execute

    source = _program(args.program)
    data = load_corpus(args.data, **chunk_options(args)) if args.data is not None else []
    tools = list(load_tools_file(args.tools).values()) if args.tools else None
    return _report(execute(source, data=data, tools=tools, limits=Limits()))


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
        print(f"error: {result.error}", file=sys.stderr)
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
    print(
        f"turn {turn.number}: {verdict} the recorded run ({replay.replayed} tool calls replayed, "
        f"{replay.live} live)",
        file=sys.stderr,
    )
    return code


class _Replay:
    """Answers tool calls from the calls a transcript recorded, matched by tool and arguments."""

    def __init__(self, calls: Sequence[Any]) -> None:
        self._queues: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
        for call in calls:
            if call.status in ("ok", "error"):
                self._queues[self._key(call.tool, call.args, call.kwargs)].append(call)
        self.replayed = 0
        self.live = 0

    @staticmethod
    def _key(tool: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return json.dumps([tool, list(args), dict(kwargs)], sort_keys=True, ensure_ascii=False)

    def tool(self, name: str, live: Tool | None) -> Tool:
        from .._tools import Tool
        from ..transcript._views import preview

        async def replay(*args: Any, **kwargs: Any) -> Any:
            queue = self._queues.get(self._key(name, args, kwargs))
            if queue:
                record = queue.popleft()
                self.replayed += 1
                if record.status == "ok":
                    return record.value
                raise errors.from_payload(record.error)
            if live is not None:
                self.live += 1
                return await live.call(list(args), kwargs)
            shown = preview([list(args), kwargs], 80)
            raise errors.ToolError(
                f"tool {name!r} was called with arguments the recorded run never used ({shown}); "
                f"exec --turn answers calls from the transcript only. Pass --tools FILE to call "
                f"user tools live.",
                tool=name,
            )

        return Tool.from_function(replay, name=name, description=f"replays recorded calls of tool.{name}")


def _limits_from(recorded: Mapping[str, Any]) -> Limits:
    names = {f.name for f in attrs.fields(Limits)}
    values: dict[str, Any] = {k: (math.inf if v is None else v) for k, v in recorded.items() if k in names}
    try:
        return Limits(**values)
    except ConfigError:
        return Limits()


def _replay_data(args: argparse.Namespace, transcript: Transcript) -> list[str]:
    """The run's chunks: from ``--data`` (flags not given default to the run's), or cut again
    from the corpus ``corpus.json`` names; checked against the run's fingerprint."""
    folder = transcript.path.parent if transcript.path is not None else Path(".")
    record = read_record(folder)
    chunks: list[str]
    if args.data is not None:
        chunks = list(load_corpus(args.data, **chunk_options(args, record)))
    elif record is not None:
        if not Path(record["path"]).is_file():
            raise ConfigError(
                f"the run's corpus {record['path']!r} (named in {folder / CORPUS_FILE}) is not "
                f"there any more; pass the corpus with --data FILE."
            )
        chunks = list(load_corpus(record["path"], **chunk_options(args, record)))
        if record.get("sha256") and corpus_digest(chunks) != record["sha256"]:
            raise ConfigError(
                f"corpus {record['path']!r} changed since the run (its chunks differ from the ones "
                f"recorded in {folder / CORPUS_FILE}); pass the original text with --data."
            )
    else:
        raise ConfigError(
            f"the run folder has no {CORPUS_FILE} (the run was not started by `ptcrun run`); pass "
            f"the corpus with --data FILE and the chunk options the run used."
        )
    recorded_data = transcript.run.get("data") or {}
    expected = recorded_data.get("chunks")
    if isinstance(expected, int) and expected != len(chunks):
        raise ConfigError(
            f"--data gives {len(chunks):,} chunks but the run had {expected:,}; pass the same "
            f"--chunk-tokens/--chunk-lines/--overlap the run used."
        )
    fingerprint = recorded_data.get("sha256")
    if isinstance(fingerprint, str) and corpus_digest(chunks) != fingerprint:
        raise ConfigError(
            "--data gives chunks that differ from the run's (their fingerprint in the transcript's "
            "run.start does not match); pass the original text and the chunk options the run used."
        )
    return chunks


def exec_turn(args: argparse.Namespace) -> tuple[ExecResult, Any, _Replay]:
    """Run turn ``args.turn`` of the transcript ``args.program`` again, without the LLM.

    The programs of the turns before it (since the sandbox last restarted) run first, silently,
    so the variables the turn relies on exist, with the run's ``random`` seed, so they draw what
    they drew in the run. Returns the turn's ``ExecResult``, the recorded
    turn and the replay counts.
    """
    import trio

    from .._tools import load_tools_file
    from ..sandbox.host._driver import Sandbox
    from ..transcript._transcript import Transcript

    transcript = Transcript.load(args.program)
    turn = transcript.turn(args.turn)
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
    data = _replay_data(args, transcript)
    live = load_tools_file(args.tools) if args.tools else {}
    replay = _Replay([c for c in transcript.calls if first <= c.turn <= turn.number])
    names = set(transcript.run.get("tools") or ()) | {c.tool for c in transcript.calls} | set(live)
    tools = [replay.tool(name, live.get(name)) for name in sorted(names)]

    # Every child of the run started its programs' random generator from the recorded seed.
    seeds = [e.get("seed") for e in transcript.events if e.get("type") == "sandbox.start"]
    seed = next((s for s in seeds if type(s) is int), None)

    async def main() -> ExecResult:
        async with Sandbox(
            data=data, tools=tools, limits=_limits_from(transcript.limits), seed=seed
        ) as sandbox:
            for earlier in before:
                await sandbox.execute(earlier)
            return await sandbox.execute(program)

    result = trio.run(main)
    return result, turn, replay
