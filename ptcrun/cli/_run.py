"""``ptcrun run`` and ``ptcrun exec TRANSCRIPT --turn N``: the commands that run programs.

``run`` drives a whole run from the command line. ``exec --turn`` runs one turn's program again,
with no LLM: every tool call it makes is answered from the transcript's record of the same call
(same tool, same arguments), so the program sees what it saw in the run.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import errors
from .._limits import Limits
from ..errors import ConfigError
from ..corpus._chunking import corpus_digest

__all__ = ["STATUS_EXIT", "cmd_run", "exec_turn", "load_corpus"]

#: Which row of ``cli.EXIT_CODES`` each run status exits with (``error`` may be refined by the
#: error's kind: a sandbox failure or a configuration problem).
STATUS_EXIT = {
    "done": "done",
    "failed": "failed",
    "budget_exceeded": "limit",
    "max_turns": "limit",
    "timeout": "limit",
    "cancelled": "interrupted",
    "error": "error",
}

_CORPUS_FILE = "corpus.json"
_DEFAULT_CHUNK_TOKENS = 4_000


def load_corpus(path: str, *, tokens: int | None, lines: int | None, overlap: int) -> list[str]:
    """Read a corpus file and cut it into chunks (by tokens unless ``lines`` is given)."""
    from ..corpus._chunking import chunk_by_lines, chunk_by_tokens, read_text

    if tokens is not None and lines is not None:
        raise ConfigError("give --chunk-tokens or --chunk-lines, not both.")
    text = read_text(path)
    if lines is not None:
        return list(chunk_by_lines(text, lines, overlap))
    return list(chunk_by_tokens(text, tokens or _DEFAULT_CHUNK_TOKENS, overlap))


def _schema(path: str | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"schema file {path!r} does not exist; pass a JSON Schema file.") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"schema file {path!r} is not valid JSON: {exc}.") from None


def _limits(args: argparse.Namespace) -> Limits:
    changes = {
        "max_tokens": args.token_limit,
        "max_turns": args.max_turns,
        "max_concurrency": args.concurrency,
    }
    return Limits(**{k: v for k, v in changes.items() if v is not None})


def _observers(args: argparse.Namespace) -> list[Any]:
    from ..transcript._progress import LineProgress, TerminalProgress

    if args.quiet:
        return []
    if not args.json and sys.stderr.isatty():
        return [TerminalProgress(sys.stderr)]
    return [LineProgress(sys.stderr)]


def _exit_name(result: Any) -> str:
    name = STATUS_EXIT.get(result.status, "error")
    if result.status == "error":
        if isinstance(result.error, errors.SandboxError):
            return "sandbox"
        if isinstance(result.error, errors.ConfigError):
            return "config"
    return name


def cmd_run(args: argparse.Namespace, exit_codes: Mapping[str, int]) -> int:
    from .._tools import load_tools_file
    from ..runtime._runtime import Runtime
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_summary
    from ..runtime.providers._spec import parse_provider

    chunks = load_corpus(args.corpus, tokens=args.chunk_tokens, lines=args.chunk_lines, overlap=args.overlap)
    planner = parse_provider(args.planner)
    worker = parse_provider(args.worker) if args.worker else None
    tools = load_tools_file(args.tools) if args.tools else None
    runtime = Runtime(
        planner=planner,
        worker=worker,
        tools=tools,
        limits=_limits(args),
        transcript_dir=args.out,
        observers=_observers(args),
    )
    result = runtime.run(args.goal, chunks, schema=_schema(args.schema))
    code = exit_codes[_exit_name(result)]
    assert result.transcript is not None  # the command always writes one
    # Where the chunks came from, so `ptcrun exec TRANSCRIPT --turn N` can rebuild the same data.
    corpus = {
        "path": str(Path(args.corpus).resolve()),
        "chunk_tokens": None if args.chunk_lines is not None else (args.chunk_tokens or _DEFAULT_CHUNK_TOKENS),
        "chunk_lines": args.chunk_lines,
        "overlap": args.overlap,
        "chunks": len(chunks),
        "sha256": corpus_digest(chunks),
    }
    (result.transcript.parent / _CORPUS_FILE).write_text(json.dumps(corpus, indent=2) + "\n", encoding="utf-8")
    transcript = Transcript.load(result.transcript)
    if args.json:
        print(json.dumps({
            "status": result.status,
            "answer": result.answer,
            "fallback_used": result.fallback_used,
            "error": None if result.error is None else {"type": type(result.error).__name__, "message": str(result.error)},
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
    print(render_summary(transcript))
    print(f"transcript {result.transcript}")
    return code


# -- exec TRANSCRIPT --turn N ------------------------------------------------------------------


def _recorded_error(error: Mapping[str, Any], tool: str) -> errors.PtcrunError:
    """The error a recorded call failed with, rebuilt with the same class, message and fields."""
    cls = getattr(errors, str(error.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.PtcrunError)):
        return errors.ToolError(str(error.get("message", "")), tool=tool)
    exc = cls.__new__(cls)
    Exception.__init__(exc, str(error.get("message", "")))
    fields = error.get("fields") or {}
    exc.__dict__.update({k: v for k, v in fields.items() if isinstance(k, str) and not k.startswith("_")})
    return exc


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

    def tool(self, name: str, live: Any) -> Any:
        from .._tools import Tool
        from ..transcript._views import preview

        async def replay(*args: Any, **kwargs: Any) -> Any:
            queue = self._queues.get(self._key(name, args, kwargs))
            if queue:
                record = queue.popleft()
                self.replayed += 1
                if record.status == "ok":
                    return record.value
                raise _recorded_error(record.error or {}, name)
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
    values = {k: (math.inf if v is None else v) for k, v in recorded.items() if k in names}
    try:
        return Limits(**values)
    except ConfigError:
        return Limits()


def _replay_data(args: argparse.Namespace, transcript: Any) -> list[str]:
    folder = transcript.path.parent if transcript.path is not None else Path(".")
    sidecar = folder / _CORPUS_FILE
    recorded: dict[str, Any] = {}
    if sidecar.is_file():
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    if args.data is not None:
        chunks = load_corpus(args.data, tokens=args.chunk_tokens, lines=args.chunk_lines, overlap=args.overlap)
    elif recorded:
        chunks = load_corpus(recorded["path"], tokens=recorded.get("chunk_tokens"),
                             lines=recorded.get("chunk_lines"), overlap=int(recorded.get("overlap") or 0))
        if recorded.get("sha256") and corpus_digest(chunks) != recorded["sha256"]:
            raise ConfigError(
                f"corpus {recorded['path']!r} changed since the run (its chunks differ from the ones "
                f"recorded in {sidecar}); pass the original text with --data."
            )
    else:
        raise ConfigError(
            f"the run folder has no {_CORPUS_FILE} (the run was not started by `ptcrun run`); pass "
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


def exec_turn(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Run turn ``args.turn`` of the transcript ``args.program`` again, without the LLM.

    The programs of the turns before it (since the sandbox last restarted) run first, silently,
    so the variables the turn relies on exist. Returns the turn's ``ExecResult``, the recorded
    turn and the replay counts.
    """
    import trio

    from .._tools import load_tools_file
    from ..transcript._transcript import Transcript
    from ..sandbox.host._driver import Sandbox

    transcript = Transcript.load(args.program)
    turn = transcript.turn(args.turn)
    if turn.program is None:
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
    before = [t for t in transcript.turns if first <= t.number < turn.number and t.program is not None]
    data = _replay_data(args, transcript)
    live = load_tools_file(args.tools) if args.tools else {}
    replay = _Replay([c for c in transcript.calls if first <= c.turn <= turn.number])
    names = set(transcript.run.get("tools") or ()) | {c.tool for c in transcript.calls} | set(live)
    tools = {name: replay.tool(name, live.get(name)) for name in sorted(names)}

    async def main() -> Any:
        async with Sandbox(data=data, tools=tools, limits=_limits_from(transcript.limits)) as sandbox:
            for earlier in before:
                await sandbox.execute(earlier.program)
            return await sandbox.execute(turn.program)

    result = trio.run(main)
    return result, turn, replay
