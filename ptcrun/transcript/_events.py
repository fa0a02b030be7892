"""The one event stream of a run: appended to the transcript file and handed to observers.

The runtime emits event objects (one class per type, :mod:`._schema`); each is written as one
JSON line (``v``, ``type``, ``ts``, ``span``, ``parent`` and the fields of its type) and flushed
as it happens, so a crash, a kill or Ctrl-C leaves a valid file. Observers get the same JSON
object, as a dict. ``docs/transcript.md`` documents every type.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ._schema import Event

__all__ = ["EventStream", "Observer", "new_run_dir"]

Observer = Callable[[dict[str, Any]], None]


def new_run_dir(root: str | os.PathLike[str]) -> Path:
    """Make and return ``root/<UTC timestamp>-<short id>/``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(root) / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


class EventStream:
    """Write events to a JSONL file (optional) and pass each to the observers, in order."""

    def __init__(self, path: Path | None, observers: Sequence[Observer] = ()) -> None:
        self.path = path
        self._observers = list(observers)
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> dict[str, Any]:
        """Write ``event`` and pass its JSON object to each observer; return that object."""
        data: dict[str, Any] = event.as_json()
        if self._file is not None:
            self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
            self._file.flush()
        for observer in self._observers:
            observer(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
