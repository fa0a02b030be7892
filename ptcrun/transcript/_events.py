"""The one event stream of a run: appended to the transcript file and handed to observers.

Every event is a JSON object with ``v`` (the schema version), ``type``, ``ts`` (Unix seconds),
``span`` and ``parent`` (span ids that make the run a tree: run → turn → planner call / program
→ pmap → item → tool or worker call) and the fields of its type. Each line is written and flushed
as it happens, so a crash, a kill or Ctrl-C leaves a valid file. ``docs/transcript.md`` documents
every type.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..runtime._llm import plain

__all__ = ["SCHEMA_VERSION", "EventStream", "Observer", "new_run_dir"]

#: Bumped when a field changes meaning or disappears; readers refuse newer versions.
SCHEMA_VERSION = 1

Observer = Callable[[dict[str, Any]], None]


def new_run_dir(root: str | os.PathLike[str]) -> Path:
    """Make and return ``root/<UTC timestamp>-<short id>/``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
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

    def emit(self, type: str, span: str, parent: str | None, **fields: Any) -> dict[str, Any]:
        event = {"v": SCHEMA_VERSION, "type": type, "ts": time.time(), "span": span, "parent": parent}
        event.update({k: plain(v) for k, v in fields.items()})
        if self._file is not None:
            self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._file.flush()
        for observer in self._observers:
            observer(event)
        return event

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
