"""A read-only SQLite database on the host, behind a task's tools.

A program reaches it only through the tools a task gives (``tool.query(sql)``,
``tool.lookup_customer(id)``), so every query is one a planner wrote: it may read, never write,
attach a file, change a setting or run without end. An authorizer allows reading tables and
calling functions only; a progress handler stops a query after a fixed amount of work; results
are cut at ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_ROWS", "Database"]

#: Rows one query returns at most.
MAX_ROWS = 500
#: SQLite virtual-machine steps one query may take (in units of ``_STEP``), about a second.
_MAX_STEPS = 20_000
_STEP = 1_000
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


class Database:
    """An in-memory database built from ``script``, then opened for reading only."""

    def __init__(self, script: str) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.executescript(script)
        self._conn.set_authorizer(self._authorize)
        self._lock = threading.Lock()
        self._steps = 0

    @staticmethod
    def _authorize(action: int, *args: Any) -> int:
        return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        self._steps += 1
        return 1 if self._steps > _MAX_STEPS else 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one SELECT, as objects keyed by column name (at most ``MAX_ROWS``).

        Raises:
            ValueError: the statement is not a single read-only query, is not valid SQL, or
                took too long; the message says which.
        """
        if not isinstance(sql, str):
            raise ValueError(f"sql must be a string; got {type(sql).__name__}")
        with self._lock:
            self._steps = 0
            self._conn.set_progress_handler(self._progress, _STEP)
            try:
                cursor = self._conn.execute(sql, tuple(params))
                names = [d[0] for d in cursor.description or ()]
                rows = cursor.fetchmany(MAX_ROWS)
            except sqlite3.DatabaseError as exc:
                text = str(exc)
                if "not authorized" in text:
                    text = "only SELECT statements that read tables are allowed"
                elif "interrupted" in text:
                    text = "the query took too long; narrow it with WHERE or LIMIT"
                raise ValueError(f"query refused: {text}") from None
            except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
                raise ValueError(f"query refused: {exc}; send one SELECT per call") from None
            finally:
                self._conn.set_progress_handler(None, _STEP)
        return [dict(zip(names, row, strict=True)) for row in rows]
