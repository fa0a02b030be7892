"""What the live progress knows of a run so far, updated event by event.

The displays (``_progress``) draw from it: the turn and what it is doing, the pmaps running, the
sub-runs, tokens against the limit, and the calls failed so far. It counts failed calls as the
run counts them (the runtime's ``FailureTally``), so the count a display shows while the run goes
is the one the run ends with.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ._wording import failure_kinds, status_text

__all__ = ["Event", "ProgressState", "in_sub_run"]

Event = Mapping[str, Any]


class ProgressState:
    """What the observers know of the run so far, updated event by event."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.turn = 0
        self.max_turns: int | None = None
        self.max_tokens: int | None = None
        self.tokens = 0
        self.cost: float | None = None
        self.phase = "starting"
        self.pmaps: dict[str, dict[str, Any]] = {}
        #: Failed calls so far, counted as the run counts them (``FailureTally``): failed pmap
        #: items, calls a pmap item caught, calls outside pmap, and those of sub-runs that
        #: answered; a call whose error ended its program is that program's error, not a
        #: failure the program went on after (the run's end gives the count).
        self.failed = 0
        #: Failed calls outside pmap whose error ended their program, so far.
        self.enders = 0
        self._last_loose: str | None = None  # the error type of the last call outside pmap
        # Failed calls inside a pmap item, by (pmap, item), until the item ends: failures of
        # their own if it then ends well (its function caught them), else the item's failure.
        self._pending: Counter[tuple[object, object]] = Counter()
        #: LLM requests the provider sent again (``llm.retry`` events) so far.
        self.retries = 0
        self.turn_started = self.started
        self.ended: str | None = None  # the run's status, as the views show it, once it ended
        self.failures = ""  # how many calls failed, and their kinds, once it ended
        self.kinds = ""  # the failures' kinds alone
        #: The sub-runs running, by the span of the call that started each (``t1.c3``,
        #: ``t1.c3/t2.c1``): their depth, goal, turn and start.
        self.sub_runs: dict[str, dict[str, Any]] = {}
        #: The sub-runs that ended, by status.
        self.sub_ended: Counter[str] = Counter()

    def update(self, event: Event) -> None:
        kind = event["type"]
        if in_sub_run(event):
            # A sub-run's tokens are the run's; its turns and pmaps are its own, and only its
            # start, its turns and its end are followed.
            self._sub_run(kind, event)
            self._sub_run_failures(kind, event)
            if kind not in ("llm.end", "llm.retry"):
                return
        if kind == "run.start":
            limits = event.get("limits") or {}
            self.max_turns = limits.get("max_turns")
            self.max_tokens = limits.get("max_tokens")
        elif kind == "turn.start":
            self.turn = int(event.get("turn", self.turn + 1))
            self.phase = "planner thinking"
            self.turn_started = time.monotonic()
        elif kind == "program.start":
            self.phase = "program running"
            self._last_loose = None
            self._pending.clear()
        elif kind == "turn.end":
            self.phase = f"turn ended: {event.get('status')}"
        elif kind == "llm.retry":
            self.retries += 1
        elif kind == "llm.end":
            self.tokens += int(event.get("input_tokens") or 0) + int(event.get("output_tokens") or 0)
            if isinstance(event.get("cost"), (int, float)):
                self.cost = (self.cost or 0.0) + float(event["cost"])
        elif kind == "pmap.start":
            self.pmaps[event["span"]] = {
                "total": int(event.get("total", 0)), "done": 0, "failed": 0,
                "started": time.monotonic(), "running": True,
            }
        elif kind == "item.end":
            pmap = self.pmaps.get(str(event.get("parent")))
            if pmap is not None:
                pmap["done" if event.get("ok") else "failed"] += 1
            caught = self._pending.pop((event.get("pmap"), event.get("item")), 0)
            if event.get("ok"):
                self.failed += caught
        elif kind == "pmap.end":
            pmap = self.pmaps.get(event["span"])
            if pmap is not None:
                pmap["running"] = False
                pmap["done"] = int(event.get("done", pmap["done"]))
                pmap["failed"] = int(event.get("failed", pmap["failed"]))
                pmap["seconds"] = time.monotonic() - pmap["started"]
                self.failed += pmap["failed"]
        elif kind == "call.end" and event.get("pmap") is not None:
            if not event.get("ok") and _error_type(event.get("error")) != "Cancelled":
                self._pending[(event.get("pmap"), event.get("item"))] += 1
        elif kind == "call.end":
            self._last_loose = None if event.get("ok") else _error_type(event.get("error"))
            if self._last_loose not in (None, "Cancelled"):
                self.failed += 1
        elif kind == "program.end":
            ended_by = _error_type(event.get("error")) if event.get("error") else None
            if ended_by is not None and ended_by == self._last_loose and ended_by != "Cancelled":
                self.failed -= 1
                self.enders += 1
            self._last_loose = None
        elif kind == "run.end":
            self._run_end(event)

    def _sub_run(self, kind: str, event: Event) -> None:
        call, _, span = str(event.get("span")).rpartition("/")
        if kind == "run.start":
            depth = event.get("depth")
            self.sub_runs[call] = {
                "depth": depth if isinstance(depth, int) else call.count("/") + 1,
                "goal": str(event.get("goal", "")),
                "max_turns": (event.get("limits") or {}).get("max_turns"),
                "turn": 0,
                "started": time.monotonic(),
            }
        elif kind == "turn.start" and call in self.sub_runs:
            self.sub_runs[call]["turn"] = int(event.get("turn") or 0)
        elif kind == "run.end" and span == "run":
            self.sub_runs.pop(call, None)
            self.sub_ended[str(event.get("status"))] += 1

    def _sub_run_failures(self, kind: str, event: Event) -> None:
        # A sub-run that answered gave an answer built on its calls: its failed calls (its own
        # sub-runs' among them) are the run's, as FailureTally.sub_run_ended counts them.
        call, _, span = str(event.get("span")).rpartition("/")
        if kind == "run.end" and span == "run" and "/" not in call and event.get("status") == "done":
            failed = event.get("failed_calls")
            if isinstance(failed, Mapping):
                self.failed += sum(int(n) for n in failed.values())

    def sub_runs_text(self) -> str:
        """``"sub-runs: 3 running (depth 1: 2, depth 2: 1) · 5 ended (4 done, 1 failed)"``, or
        nothing when no sub-run started."""
        if not self.sub_runs and not self.sub_ended:
            return ""
        depths = Counter(sub["depth"] for sub in self.sub_runs.values())
        where = ", ".join(f"depth {d}: {n}" for d, n in sorted(depths.items()))
        text = f"sub-runs: {len(self.sub_runs):,} running" + (f" ({where})" if where else "")
        ended = sum(self.sub_ended.values())
        if ended:
            statuses = ", ".join(f"{n:,} {status}" for status, n in sorted(
                self.sub_ended.items(), key=lambda kv: (-kv[1], kv[0])))
            text += f" · {ended:,} ended ({statuses})"
        return text

    def _run_end(self, event: Event) -> None:
        failed = event.get("failed_calls")
        failed = {str(k): int(v) for k, v in failed.items()} if isinstance(failed, Mapping) else {}
        calls = int(event.get("calls_made") or 0)
        self.ended = status_text(str(event.get("status")), failed, calls, event.get("partial") is True)
        if failed:
            count = sum(failed.values())
            self.kinds = failure_kinds(failed)
            self.failures = f"{count:,} of {max(calls, count):,} calls failed: {self.kinds}"

    def tokens_text(self) -> str:
        text = f"tokens {self.tokens:,}"
        if self.max_tokens:
            text += f" / {self.max_tokens:,} ({self.tokens / self.max_tokens:.0%})"
        if self.cost is not None:
            text += f" · ${self.cost:.4f}"
        if (self.failed or self.enders) and self.ended is None:
            text += f" · {self.failed:,} call{'s' * (self.failed != 1)} failed"
            if self.enders:
                whose = "its program" if self.enders == 1 else "their programs"
                text += f" (+{self.enders:,} that ended {whose})"
        if self.retries:
            text += f" · {self.retries:,} retr{'y' if self.retries == 1 else 'ies'}"
        return text


def in_sub_run(event: Event) -> bool:
    """Whether the event is a ``tool.agent`` sub-run's: its span id has a ``/``. The progress
    lines follow the run's own turns and pmaps; a sub-run adds its tokens and retries."""
    return "/" in str(event.get("span", ""))


def _error_type(error: object) -> str:
    kind = error.get("type") if isinstance(error, Mapping) else None
    return kind if isinstance(kind, str) and kind else "Error"
