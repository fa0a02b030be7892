"""The user's own tools, backed by the SQLite database: one sync, one async.

``make_tools(db)`` returns them bound to a database file. They are ordinary functions: ptcrun
reads their names, type hints and docstrings, shows them to the planner as ``tool.<name>(...)``,
and checks every call's arguments against the hints before the function runs.

- ``lookup_customer`` is sync: a plain ``sqlite3`` query. ptcrun runs sync tools on a thread, so
  a slow query does not hold up the other calls. An unknown id raises ``LookupError``, which the
  program receives as a ``ToolError`` it can catch.
- ``notify_account_manager`` is async: it awaits a (simulated) messaging API, then records the
  notification in the database. Async tools run on the run's event loop; many can wait at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

import trio

#: Seconds the simulated messaging API takes to answer.
API_LATENCY = 0.2


def make_tools(db: Path, api_latency: float = API_LATENCY) -> list[Callable[..., Any]]:
    """The example's tools, bound to the database at ``db``."""

    def lookup_customer(customer_id: str) -> dict:
        """Look up a customer by id (a string of digits, e.g. "1042").

        Returns {"id", "name", "email", "plan", "account_manager", "manager_email"}; plan is
        "free", "pro" or "enterprise". Raises an error when no customer has that id.
        """
        with closing(sqlite3.connect(db)) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            raise LookupError(f"no customer with id {customer_id!r}")
        return dict(row)

    async def notify_account_manager(
        customer_id: str, message: str, priority: Literal["normal", "urgent"] = "normal"
    ) -> dict:
        """Send the customer's account manager a message; returns {"notification_id", "sent_to"}.

        Fails when the customer has no account manager.
        """
        with closing(sqlite3.connect(db)) as conn:
            row = conn.execute("SELECT manager_email FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None or row[0] is None:
            raise LookupError(f"customer {customer_id!r} has no account manager")
        await trio.sleep(api_latency)  # the messaging API's round trip
        with closing(sqlite3.connect(db)) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO notifications (customer_id, sent_to, priority, message) VALUES (?, ?, ?, ?)",
                (customer_id, row[0], priority, message),
            )
            notification = cursor.lastrowid
        return {"notification_id": notification, "sent_to": row[0]}

    return [lookup_customer, notify_account_manager]


def notifications(db: Path) -> list[tuple[str, str, str]]:
    """Every notification sent: (customer id, sent to, priority), in the order sent."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT customer_id, sent_to, priority FROM notifications ORDER BY id").fetchall()
