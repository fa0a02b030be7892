"""The custom-tools example's world: a SQLite customer database and a billing log that names them.

``build(folder)`` creates ``customers.db`` (tables ``customers`` and ``notifications``) and
``billing.log`` (payments that went through, retries, support tickets, and the failed payments
the planner must find), and returns what a correct answer contains: the customers with failed
payments, which of them are on the enterprise plan, and the one id the log names that is not in
the database (an account deleted since).
"""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

import attrs

CUSTOMERS = [
    ("1001", "Acme Corp", "billing@acme.example", "enterprise", "Dana Whitfield", "dana.whitfield@ourco.example"),
    ("1002", "Globex", "ap@globex.example", "pro", "Sam Ortiz", "sam.ortiz@ourco.example"),
    ("1007", "Initech", "finance@initech.example", "free", None, None),
    ("1013", "Umbrella Health", "payables@umbrella.example", "enterprise", "Priya Raman", "priya.raman@ourco.example"),
    ("1021", "Stark Logistics", "billing@stark.example", "enterprise", "Dana Whitfield", "dana.whitfield@ourco.example"),
    ("1034", "Wayne Retail", "accounts@wayne.example", "pro", "Sam Ortiz", "sam.ortiz@ourco.example"),
    ("1042", "Hooli", "billing@hooli.example", "pro", "Priya Raman", "priya.raman@ourco.example"),
    ("1055", "Vandelay Imports", "art@vandelay.example", "free", None, None),
]
#: Failed payments planted in the log: customer id, reason, how many times.
FAILED = [("1001", "card_expired", 2), ("1013", "insufficient_funds", 1), ("1042", "card_declined", 1), ("1099", "card_expired", 1)]
UNKNOWN = ["1099"]


@attrs.frozen
class World:
    db: Path
    log: Path
    #: customer id -> failed payments, for the customers the database knows
    failed: dict[str, int]
    #: the enterprise customers among them: their account managers must be notified
    enterprise: list[str]
    unknown: list[str]


def build(folder: Path, seed: int = 7, lines: int = 400) -> World:
    """Create the database and the log in ``folder`` (replacing earlier ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "customers.db"
    db.unlink(missing_ok=True)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT, email TEXT, plan TEXT, "
            "account_manager TEXT, manager_email TEXT)"
        )
        conn.execute(
            "CREATE TABLE notifications (id INTEGER PRIMARY KEY, customer_id TEXT, sent_to TEXT, "
            "priority TEXT, message TEXT)"
        )
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", CUSTOMERS)

    rng = random.Random(seed)
    known = [c[0] for c in CUSTOMERS]
    body = []
    for _ in range(lines):
        roll = rng.random()
        customer = rng.choice(known)
        if roll < 0.7:
            body.append(f"INFO [billing] payment ok customer={customer} amount={rng.randint(20, 4000)}.00 EUR")
        elif roll < 0.8:
            body.append(f"WARN [billing] payment retry scheduled customer={customer} attempt=1")
        elif roll < 0.9:
            body.append(f"INFO [support] ticket opened customer={customer} topic=invoice-copy")
        else:
            body.append(f"DEBUG [billing] card check passed customer={customer}")
    for customer, reason, times in FAILED:
        for _ in range(times):
            at = rng.randrange(len(body))
            body.insert(at, f"ERROR [billing] payment failed customer={customer} amount={rng.randint(20, 4000)}.00 EUR reason={reason}")
    stamped = [f"2024-06-0{1 + i * 7 // len(body)}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z {line}" for i, line in enumerate(body)]
    log = folder / "billing.log"
    log.write_text("\n".join(stamped) + "\n", encoding="utf-8")

    plans = {c[0]: c[3] for c in CUSTOMERS}
    failed = {c: t for c, _, t in FAILED if c in plans}
    return World(
        db=db,
        log=log,
        failed=failed,
        enterprise=sorted(c for c in failed if plans[c] == "enterprise"),
        unknown=list(UNKNOWN),
    )
