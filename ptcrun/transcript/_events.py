"""The one event stream of a run: appended to the transcript file and handed to observers.

The runtime emits event objects (one class per type, :mod:`._schema`); each is written as one
JSON line (``v``, ``type``, ``ts``, ``span``, ``parent`` and the fields of its type) and handed to
the operating system as it happens, so a crash, a kill or Ctrl-C leaves a valid file. Observers
get the same JSON object, as a dict. ``docs/transcript.md`` documents every type.

A disk that fails under a run does not stop the run. The file only ever holds whole lines: a
write cut short (the disk filled mid-line) is truncated back to the last whole event. When the
disk is full, the lines that did not fit wait in memory (up to ``MAX_BACKLOG_BYTES``) and are
written, in order, as soon as space returns; any other failure (a read-only or failing disk), or
a backlog that outgrows its bound, stops the writing for good. Either way the run goes on, every
observer still gets every event, and :attr:`EventStream.warnings` says where the file stops. An
observer that raises is dropped, with a warning, rather than ending the run.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path
from typing import IO, Any

from .._tools import describe_exception
from ._schema import Event

try:
    import fcntl
except ImportError:  # Windows: no flock, so no run reads as running
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MAX_BACKLOG_BYTES",
    "EventStream",
    "Observer",
    "lock_transcript",
    "new_run_dir",
    "os_error_reason",
]

Observer = Callable[[dict[str, Any]], None]

#: The most bytes of events kept in memory while the disk is full, waiting for space.
MAX_BACKLOG_BYTES = 8 << 20

# One encoder for every line: json.dumps with any option builds a new one per call, a sixth of
# an event's cost, six events a worker call.
_encode = json.JSONEncoder(ensure_ascii=False).encode

# Errors after which space may come back (another process frees some): keep the lines.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def new_run_dir(root: str | os.PathLike[str]) -> Path:
    """Make and return ``root/<UTC timestamp>-<short id>/``.

    Raises:
        OSError: the folder cannot be made; :func:`os_error_reason` words why.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(root) / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def os_error_reason(exc: OSError) -> str:
    """Why a file or folder could not be made or written, in a few words for a message."""
    code = exc.errno
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return "a file is in the way: the path, or a folder above it, is a regular file"
    if code in _FULL:
        return "the disk is full"
    if code == errno.EROFS:
        return "it is on a read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EIO:
        return "the disk reported an I/O error"
    if isinstance(exc, FileNotFoundError):
        return "it cannot be made there"
    return exc.strerror or describe_exception(exc)


def lock_transcript(path: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on a transcript for as long as the returned file stays open, so
    :func:`~._runs.list_runs` can tell a run still going from one that was killed. ``None`` where the
    OS has no ``flock`` or the lock cannot be taken; close the file to release it."""
    if fcntl is None:
        return None
    try:
        file = path.open("rb")
    except OSError:
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        file.close()
        return None
    return file


class EventStream:
    """Write events to a JSONL file (optional) and pass each to the observers, in order.

    The stream holds a lock on its file (:func:`lock_transcript`) until :meth:`close`, so
    ``ptcrun runs`` lists the run as ``running`` while it goes, and as ``interrupted`` once the
    process that wrote it is gone without a ``run.end``.

    Args:
        path: the transcript file, appended to; ``None`` writes no file.
        observers: called with each event's JSON object, in order.

    Raises:
        OSError: the file cannot be opened (its folder is made first when missing).
    """

    def __init__(self, path: Path | None, observers: Sequence[Observer] = ()) -> None:
        self.path = path
        #: What went wrong beside the run: the file stopped short, an observer was dropped.
        self.warnings: list[str] = []
        self._observers = list(observers)
        self._file: FileIO | None = None
        self._events = 0  # events the file holds
        self._good = 0  # its length in bytes: whole lines only
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._full: OSError | None = None  # the ENOSPC that started the backlog
        self._torn = False  # a cut-short line could not be truncated away: write no more after it
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = FileIO(path, "a")
            self._good = os.fstat(self._file.fileno()).st_size
        # Held apart from the file, which a failing disk may make us close before the run ends.
        self._lock = lock_transcript(path) if path is not None else None

    def emit(self, event: Event) -> dict[str, Any]:
        """Write ``event`` and pass its JSON object to each observer; return that object."""
        data: dict[str, Any] = event.as_json()
        if self._file is not None:
            line = _encode(data) + "\n"
            # A lone surrogate cannot be UTF-8; as a \\u escape it still reads back as itself.
            self._backlog.append(line.encode("utf-8", "backslashreplace"))
            self._backlog_bytes += len(self._backlog[-1])
            self._drain()
        for observer in tuple(self._observers):
            try:
                observer(data)
            except Exception as exc:  # an observer's bug, or its terminal gone: not the run's end
                self._observers.remove(observer)
                name = getattr(observer, "__qualname__", None) or type(observer).__name__
                self.warnings.append(
                    f"observer {name} raised {describe_exception(exc)} on a {data['type']} event "
                    f"and got no later events; the run and its transcript went on without it."
                )
        return data

    def close(self) -> None:
        """Write what still waits for space, if it now fits, close the file and let go of its lock."""
        try:
            self._close_file()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def _close_file(self) -> None:
        if self._file is None:
            return
        self._drain()
        if self._backlog:
            assert self._full is not None  # only a full disk keeps a backlog
            self._give_up(self._full)
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                self.warnings.append(
                    f"transcript {self.path} may be incomplete: closing it failed "
                    f"({os_error_reason(exc)}: {exc.strerror or exc}); check that disk."
                )

    def _drain(self) -> None:
        """Write the waiting lines in order; on a failure keep or drop them (module docstring)."""
        assert self._file is not None
        while self._backlog:
            line = self._backlog[0]
            try:
                self._write(line)
            except OSError as exc:
                if exc.errno in _FULL and self._backlog_bytes <= MAX_BACKLOG_BYTES and not self._torn:
                    self._full = exc
                    return
                self._give_up(exc)
                return
            self._backlog.popleft()
            self._backlog_bytes -= len(line)
            self._events += 1
            self._good += len(line)
        self._full = None

    def _write(self, line: bytes) -> None:
        """Write one whole line, or none of it: a partial write is truncated away."""
        assert self._file is not None
        view = memoryview(line)
        try:
            while view:
                written = self._file.write(view)
                if written is None or written == 0:  # pragma: no cover - a blocking file writes
                    raise OSError(errno.EIO, "the disk accepted no bytes")
                view = view[written:]
        except OSError:
            if len(view) != len(line):
                self._truncate()
            raise

    def _truncate(self) -> None:
        assert self._file is not None
        try:
            os.ftruncate(self._file.fileno(), self._good)
        except OSError:
            # The torn line stays; it must stay the last one, which the reader drops.
            self._torn = True

    def _give_up(self, exc: OSError) -> None:
        """Stop writing the file for good; say where it stops and why."""
        assert self._file is not None
        self._backlog.clear()
        self._backlog_bytes = 0
        self._full = None
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None
        self._warn(exc)

    def _warn(self, exc: OSError) -> None:
        fix = (
            "free space on that disk, or write transcripts to another one"
            if exc.errno in _FULL
            else "check that disk, or write transcripts to another one"
        )
        self.warnings.append(
            f"transcript incomplete: writing {self.path} failed after {self._events:,} events "
            f"({os_error_reason(exc)}: {exc.strerror or exc}), so it has no run.end; the run "
            f"itself went on to its end. To keep whole transcripts, {fix}."
        )
