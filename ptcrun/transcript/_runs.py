"""The runs under an output folder: one line each, newest first, and which one is the latest.

A run folder is ``<root>/<UTC timestamp>-<id>/`` holding ``transcript.jsonl``. Listing reads
the file's first line (``run.start``: when, goal) and its last (``run.end``: status, turns,
tokens, cost, wall time, failures), so a folder of large transcripts lists at once. A
transcript with no ``run.end`` is read whole to count what it did, and is shown as ``running``
while the process that writes it holds its lock (the run's :class:`~._events.EventStream` holds
it from the first event to :meth:`~._events.EventStream.close`, for a run started from Python
or from the command line alike; the lock dies with the process, so a killed run never looks
alive), else as ``interrupted``. A folder that is not a run (no transcript, or a file that is
not a ptcrun transcript) never stops the list: it is left out, or shown as ``unreadable`` with
the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._result import Usage
from ..errors import TranscriptError
from ._events import lock_transcript

if TYPE_CHECKING:
    from ._transcript import CallRecord, Transcript, TurnRecord

try:
    import fcntl
except ImportError:  # Windows: no flock, so no run reads as running
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "RunSummary",
    "ended_its_program",
    "latest_run",
    "list_runs",
    "lock_transcript",
    "program_ender",
    "run_status",
]

_FILE_NAME = "transcript.jsonl"
#: Bytes read from the end of a transcript to find its last line; a longer ``run.end`` (a very
#: large answer) is found by reading the file whole.
_TAIL_BYTES = 64 << 10


@attrs.frozen(kw_only=True)
class RunSummary:
    """One run folder, as ``ptcrun runs`` lists it.

    Attributes:
        id: the folder's name (``20261204T221500Z-ab12cd``).
        path: the folder.
        started: Unix seconds of ``run.start``, or the transcript's modification time when
            unreadable.
        status: the run's status; with no ``run.end``, ``"running"`` while its writer holds the
            transcript's lock and ``"interrupted"`` once it does not; ``"unreadable"`` when the
            file is not a ptcrun transcript (``problem`` says why).
        goal: the goal, from ``run.start``.
        turns, tokens, cost, seconds: from ``run.end``, or counted from the events; ``cost`` is
            ``None`` when a model had no price.
        failed_calls, calls_made, partial: as in ``Result``.
        sub_runs: how many ``tool.agent`` sub-runs ran below the run, at every depth;
            ``failed_sub_runs`` of them did not end ``done``.
        problem: why an unreadable transcript could not be read.
    """

    id: str
    path: Path
    started: float
    status: str
    goal: str = ""
    turns: int = 0
    tokens: int = 0
    cost: float | None = None
    seconds: float | None = None
    failed_calls: int = 0
    calls_made: int = 0
    partial: bool = False
    sub_runs: int = 0
    failed_sub_runs: int = 0
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The summary as one JSON object (``ptcrun runs --json``)."""
        data = attrs.asdict(self)
        data["path"] = str(self.path)
        data["transcript"] = str(self.path / _FILE_NAME)
        return data


def list_runs(root: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run folder directly under ``root``, newest first (by the time the run started).

    Folders without a ``transcript.jsonl`` are not runs and are left out; a missing ``root``
    holds no runs.
    """
    folder = Path(root)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    runs = [_summary(entry) for entry in entries if _holds_transcript(entry)]
    return sorted(runs, key=lambda run: (run.started, run.id), reverse=True)


def _holds_transcript(entry: Path) -> bool:
    try:
        return (entry / _FILE_NAME).is_file()
    except OSError:  # a folder we may not look into: listed as unreadable, with the reason
        return entry.is_dir()


def latest_run(root: str | os.PathLike[str]) -> Path:
    """The folder of the run that started last under ``root``.

    Raises:
        TranscriptError: ``root`` holds no run folder.
    """
    readable = [run for run in list_runs(root) if run.status != "unreadable"]
    if not readable:
        raise TranscriptError(
            f"there is no run in {os.fspath(root)!r} to take as the latest; pass a transcript "
            f"or run folder, or the output folder the runs were written to."
        )
    return readable[0].path


def program_ender(turn: TurnRecord) -> CallRecord | None:
    """The call whose error ended the turn's program: its last call outside pmap, when the
    program ended in that call's error.

    That call is the program's error, reported as such, not a failure the program went on
    after: ``failed_calls`` leaves it out (``FailureTally.end_program``), and so do the views.
    """
    loose = [c for c in turn.calls if c.pmap is None]
    last = max(loose, key=lambda c: c.id) if loose else None
    if (
        last is not None and last.status == "error" and turn.error is not None
        and (last.error or {}).get("type") == turn.error.get("type")
    ):
        return last
    return None


def ended_its_program(turn: TurnRecord) -> bool:
    """Whether a call's error ended the turn's program (:func:`program_ender`)."""
    return program_ender(turn) is not None


def run_status(t: Transcript) -> str:
    """A run's status in the words every view uses: its ``run.end`` status; with no ``run.end``,
    ``running`` while the process writing it holds its lock, else ``interrupted``.

    (:attr:`Transcript.status <._transcript.Transcript.status>` says ``incomplete`` for both:
    whether the writer is alive is not in the file.)
    """
    if t.complete:
        return t.status
    return "running" if t.path is not None and _locked(t.path) else "interrupted"


def _locked(path: Path) -> bool:
    """Whether a process holds the transcript's lock: its run is still going."""
    if fcntl is None:
        return False
    try:
        with path.open("rb") as file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(OSError):
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _summary(folder: Path) -> RunSummary:
    file = folder / _FILE_NAME
    try:
        first, last = _ends(file)
        start = json.loads(first)
        if not isinstance(start, dict) or start.get("type") != "run.start":
            raise ValueError("its first line is not a ptcrun run.start event")
        end = _json_or_none(last)
        # A file cut short inside a sub-run may end with the sub-run's run.end (span
        # "t1.c3/run"): only the top run's, span "run", says how the run ended.
        if not isinstance(end, dict) or end.get("type") != "run.end" or end.get("span") != "run":
            return _from_whole(folder)
        statuses = end.get("sub_runs") or {}
        return RunSummary(
            id=folder.name,
            path=folder,
            started=float(start["ts"]),
            status=str(end["status"]),
            goal=str(start.get("goal", "")),
            turns=int(end.get("turns") or 0),
            **_usage(end.get("usage")),
            seconds=float(end["seconds"]) if isinstance(end.get("seconds"), (int, float)) else None,
            failed_calls=sum(int(n) for n in (end.get("failed_calls") or {}).values()),
            calls_made=int(end.get("calls_made") or 0),
            partial=bool(end.get("partial")),
            sub_runs=sum(int(n) for n in statuses.values()),
            failed_sub_runs=sum(int(n) for status, n in statuses.items() if status != "done"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return _unreadable(folder, str(exc) or type(exc).__name__)


def _from_whole(folder: Path) -> RunSummary:
    """A run with no ``run.end``: read it whole, as the views do, to count what it did."""
    from ._transcript import Transcript

    try:
        t = Transcript.load(folder)
    except TranscriptError as exc:
        return _unreadable(folder, str(exc))
    u = t.usage
    statuses = t.sub_run_statuses
    return RunSummary(
        id=folder.name,
        path=folder,
        started=t.started,
        status=run_status(t),
        goal=t.goal,
        turns=len(t.turns),
        tokens=u.total_tokens,
        cost=u.cost,
        seconds=t.seconds,
        failed_calls=sum(1 for c in t.calls if c.status == "error")
        - sum(ended_its_program(turn) for turn in t.turns),
        calls_made=len(t.calls),
        partial=t.partial,
        sub_runs=sum(statuses.values()),
        failed_sub_runs=sum(n for status, n in statuses.items() if status != "done"),
    )


def _unreadable(folder: Path, problem: str) -> RunSummary:
    try:
        started = (folder / _FILE_NAME).stat().st_mtime
    except OSError:
        started = 0.0
    return RunSummary(id=folder.name, path=folder, started=started, status="unreadable", problem=problem)


def _usage(data: object) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {"tokens": 0, "cost": None}
    names = {f.name for f in attrs.fields(Usage)}
    usage = Usage(**{k: v for k, v in data.items() if k in names})
    return {"tokens": usage.total_tokens, "cost": usage.cost}


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _ends(file: Path) -> tuple[str, str]:
    """The first and the last non-empty line of a file, read without reading it whole."""
    with file.open("rb") as f:
        first = f.readline()
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - _TAIL_BYTES, 0))
        tail = f.read()
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        if len(lines) == 1 and size > _TAIL_BYTES:
            f.seek(0)  # the last line is longer than the tail: read the file whole
            lines = f.read().rstrip(b"\n").rsplit(b"\n", 1)
    if not first.strip():
        raise ValueError("the transcript is empty")
    return first.decode("utf-8"), lines[-1].decode("utf-8")
