"""How every view of a run words it: its status, failed calls, previews, reused replies, batches.

``show``, ``tree`` and the summary (``_views``), the HTML page (``_html``), the live progress
(``_progress``) and the CLI say these things in the same words, so each is written once, here.
An answer built while calls were failing is never shown as a plain ``done``: its status reads
``done (partial: 43 of 92 calls failed)`` wherever a status is shown (:func:`status_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._runs import ended_its_program
from ._transcript import TurnRecord

__all__ = [
    "account",
    "batch_counts",
    "batch_note",
    "failed_notes",
    "failure_kinds",
    "planner_prose",
    "preview",
    "reused",
    "status_text",
    "steering_note",
    "sub_runs_text",
]

_PREVIEW_CHARS = 60


def preview(value: Any, width: int = _PREVIEW_CHARS) -> str:
    """One line of at most ``width`` characters showing ``value`` (JSON for non-strings)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def failure_kinds(failed: Mapping[str, int]) -> str:
    """``"43 BudgetExceeded, 2 ToolError"``: failures by kind, most frequent first."""
    ranked = sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{count:,} {kind}" for kind, count in ranked)


def failed_notes(turn: TurnRecord) -> list[str]:
    """``["1 failed", "1 ended the program"]``: a turn's failed calls, counted as the run's
    ``failed_calls`` counts them. A call outside pmap whose error ended the program is the
    program's error, not a failure it went on after, so it is named apart."""
    failed = sum(1 for c in turn.calls if c.status == "error")
    ended = int(ended_its_program(turn))
    return [f"{failed - ended} failed"] * bool(failed - ended) + ["1 ended the program"] * ended


def sub_runs_text(statuses: Mapping[str, int]) -> str:
    """``"5: 4 done, 1 timeout"``: the sub-runs below a run, by how they ended."""
    parts = ", ".join(f"{count:,} {status}" for status, count in statuses.items())
    return f"{sum(statuses.values()):,}: {parts}"


def status_text(status: str, failed: Mapping[str, int], calls: int, partial: bool) -> str:
    """The run's status as every view shows it: ``done``, or
    ``done (partial: 43 of 92 calls failed)`` when the answer was built while calls failed."""
    if not partial:
        return status
    count = sum(failed.values())
    return f"{status} (partial: {count:,} of {max(calls, count):,} call{'s' * (calls != 1)} failed)"


def reused(source: str) -> str:
    """How a reply that cost nothing is marked in every view: ``cached (disk)``, ``replayed``."""
    return "replayed" if source == "resume" else f"cached ({'this run' if source == 'run' else source})"


_FENCED = re.compile(r"```[^\n]*\n.*?(?:```|\Z)", re.DOTALL)


def planner_prose(reply: str) -> tuple[str, str]:
    """The planner's text before its first code block and after its last one, stripped."""
    blocks = list(_FENCED.finditer(reply))
    if not blocks:
        return reply.strip(), ""
    return reply[: blocks[0].start()].strip(), reply[blocks[-1].end() :].strip()


def steering_note(events: Iterable[Mapping[str, Any]]) -> str:
    """What rate limits did to the requests in flight (``concurrency.change``), in one line;
    empty when they never changed it.

    The throttle is an account's, shared by the planner, the workers and the sub-runs that call
    the same API with the same key, so the line names each account by its providers (the
    event's ``provider``), not a role.
    """
    accounts: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        if event.get("type") == "concurrency.change":
            accounts.setdefault(str(event.get("provider") or "a provider"), []).append(event)
    return "; ".join(_steered(providers, changes) for providers, changes in accounts.items())


def account(providers: object) -> str:
    """The providers of one account (``concurrency.change``'s comma-separated ``provider``), as
    words: ``"anthropic:a and anthropic:b"``."""
    names = str(providers or "a provider").split(", ")
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _steered(providers: str, changes: list[Mapping[str, Any]]) -> str:
    lowest = min(changes, key=lambda e: e["allowed"])
    last = changes[-1]
    return (f"rate limits steered the requests in flight to {account(providers)} {len(changes):,} time"
            f"{'s' * (len(changes) != 1)}: down to {lowest['allowed']} of {lowest['ceiling']} "
            f"({lowest['reason']}), {last['allowed']} at the end")


_BATCH_COUNTS = ("succeeded", "errored", "canceled", "expired")


def batch_counts(fields: Mapping[str, Any]) -> str:
    """``"5 succeeded, 1 errored"``: how a batch's requests ended."""
    counts = [f"{int(fields.get(k) or 0):,} {k}" for k in _BATCH_COUNTS if fields.get(k)]
    return ", ".join(counts) or "no results"


def batch_note(events: Iterable[Mapping[str, Any]]) -> str:
    """The run's batches (``pmap(..., batch=True)``) in one line: how many requests, how they
    ended, what they cost; empty when the run sent none."""
    starts = [e for e in events if e.get("type") in ("batch.start", "batch.end")]
    if not starts:
        return ""
    requests = sum(int(e.get("requests") or 0) for e in starts if e["type"] == "batch.start")
    ends = [e for e in starts if e["type"] == "batch.end"]
    batches = sum(1 for e in starts if e["type"] == "batch.start")
    totals = {k: sum(int(e.get(k) or 0) for e in ends) for k in _BATCH_COUNTS}
    costs = [e.get("cost") for e in ends]
    cost = ""
    if costs and None not in costs:
        cost = f", ${sum(c for c in costs if c is not None):.4f} at the batch price"
    cancelled = sum(1 for e in ends if e.get("status") == "canceled")
    note = f"; {cancelled} cancelled by a clock or a cancel" if cancelled else ""
    resumed = sum(1 for e in starts if e["type"] == "batch.start" and e.get("resumed"))
    if resumed:
        one = resumed == 1
        note += (f"; {resumed} {'was' if one else 'were'} the resumed run's, read by "
                 f"{'its id' if one else 'their ids'}; what did not succeed there was sent again")
    return (f"{batches} batch{'es' * (batches != 1)} of {requests:,} worker requests: "
            f"{batch_counts(totals)}{cost}{note}")
