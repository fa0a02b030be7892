"""Observers that show a run while it goes: a live terminal display, plain lines, callbacks.

An observer is a function called with each event as the run emits it (the same events the
transcript holds), on the run's own thread, before the run goes on: it must be quick and must
not raise. Four ready-made ones:

- :class:`TerminalProgress`: redraws a few lines in place on a terminal: the current turn,
  a progress bar per running pmap (done / total, failures, elapsed), the ``tool.agent``
  sub-runs running (how many at each depth, and the turn each is on) and ended, tokens against
  the limit, the calls failed and the requests retried so far, with a line kept for each
  finished turn;
  at the end, the run's status, ``done (partial: 43 of 92 calls failed)`` when the answer was
  built while calls were failing.
- :class:`LineProgress`: the same news as plain lines, for logs, pipes and CI.
- :func:`progress_callback`: ``fn(completed, total, latest_result)`` after each pmap item that
  finished well, the simple case.
- :func:`parallel_events`: the worker-pool events ``parallel.start``, ``worker.start``,
  ``worker.complete`` and ``parallel.complete``, for code written against that vocabulary.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ._events import Observer
from ._wording import failure_kinds, preview, status_text

__all__ = ["LineProgress", "TerminalProgress", "parallel_events", "progress_callback"]

Event = Mapping[str, Any]
_BAR_CELLS = 24
_REDRAW_EVERY = 0.1  # seconds; a 1,000-item pmap must not redraw 4,000 times
_SHOWN_PMAPS = 6
_SHOWN_SUB_RUNS = 4
_TICK_EVERY = 0.5  # seconds between redraws when no event comes (the planner thinking)


class _State:
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


def _same(text: str) -> str:
    return text


def _error_text(error: Any, words: Callable[[str], str] = _same) -> str:
    """``": Type: message"`` for an error payload, or nothing."""
    if not isinstance(error, Mapping):
        return ""
    return f": {error.get('type')}: {words(str(error.get('message')))}"


def _bar(done: int, total: int) -> str:
    filled = 0 if total <= 0 else math.floor(_BAR_CELLS * done / total)
    return "█" * filled + "░" * (_BAR_CELLS - filled)


class TerminalProgress:
    """A live display on a terminal, redrawn in place (ANSI cursor moves).

    Shows the current turn and what it is doing, one bar per running pmap, and tokens used
    against the limit; each finished turn leaves a line above the display. Redraws at most
    every ``redraw_every`` seconds, and at once when a turn, a program or a pmap starts or ends.
    Pass it as an observer: ``Runtime(..., observers=[TerminalProgress()])``.

    On a terminal (``stream.isatty()``) a thread also redraws every ``tick_every`` seconds from
    ``run.start`` to ``run.end``, so the clocks move while no event comes (the planner
    thinking); ``run.end`` stops it and waits for it. Events and ticks draw under one lock.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        redraw_every: float = _REDRAW_EVERY,
        tick_every: float = _TICK_EVERY,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.redraw_every = redraw_every
        self.tick_every = tick_every
        self._state = _State()
        self._drawn = 0
        self._last = -math.inf
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        if in_sub_run(event):
            with self._lock:
                self._state.update(event)
                # A sub-run starting, turning or ending shows at the next redraw.
                now = time.monotonic()
                if kind in ("run.start", "run.end", "turn.start") and now - self._last >= self.redraw_every:
                    self._last = now
                    self._draw(final=False)
            return
        if kind == "run.end":
            self._stop_ticker()
        with self._lock:
            self._state.update(event)
            if kind == "run.end":
                self._draw(final=True)
                return
            kept = [self._turn_line(event)] if kind == "turn.end" else []
            urgent = kind in ("turn.start", "turn.end", "program.start", "pmap.start", "pmap.end")
            now = time.monotonic()
            if urgent or now - self._last >= self.redraw_every:
                self._last = now
                self._draw(final=False, kept=kept)
        if kind == "run.start":
            self._start_ticker()

    def _turn_line(self, event: Event) -> str:
        s = self._state
        seconds = time.monotonic() - s.turn_started
        return f"turn {s.turn}: {event.get('status')} · {seconds:.1f} s · {s.tokens_text()}"

    def _start_ticker(self) -> None:
        try:
            on_terminal = self.stream.isatty()
        except (AttributeError, ValueError):  # a closed or file-less stream
            on_terminal = False
        if not on_terminal or self._ticker is not None or not 0 < self.tick_every < math.inf:
            return
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="ptcrun progress", daemon=True)
        self._ticker.start()

    def _stop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop.set()
            if ticker is not threading.current_thread():
                ticker.join()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_every):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._draw(final=False)
                except (OSError, ValueError):  # the terminal went away; stop drawing
                    return

    def _lines(self) -> list[str]:
        s = self._state
        turns = f"{s.turn}/{s.max_turns}" if s.max_turns else str(s.turn)
        phase = s.phase
        if phase == "planner thinking":
            phase += f" {time.monotonic() - s.turn_started:.1f} s"
        lines = [f"turn {turns} · {phase} · {time.monotonic() - s.started:.1f} s"]
        if s.ended is not None:
            lines.append(f"run {s.ended}" + (f" · {s.kinds}" if s.kinds else ""))
        running = [(span, p) for span, p in s.pmaps.items() if p["running"]]
        for span, p in running[-_SHOWN_PMAPS:]:
            finished = p["done"] + p["failed"]
            failed = f" · {p['failed']} failed" if p["failed"] else ""
            lines.append(
                f"  pmap {span} {_bar(finished, p['total'])} {finished}/{p['total']}{failed} · "
                f"{time.monotonic() - p['started']:.1f} s"
            )
        if len(running) > _SHOWN_PMAPS:
            lines.append(f"  … and {len(running) - _SHOWN_PMAPS} more pmaps running")
        if s.ended is None and (s.sub_runs or s.sub_ended):
            lines.append(s.sub_runs_text())
            now = time.monotonic()
            subs = list(s.sub_runs.items())
            for call, sub in subs[:_SHOWN_SUB_RUNS]:
                turns = f"{sub['turn']}/{sub['max_turns']}" if sub["max_turns"] else str(sub["turn"])
                lines.append(
                    f"  {'  ' * (sub['depth'] - 1)}sub-run {call} (depth {sub['depth']}) · turn {turns} · "
                    f"{now - sub['started']:.1f} s · {preview(sub['goal'], 40)}"
                )
            if len(subs) > _SHOWN_SUB_RUNS:
                lines.append(f"  … and {len(subs) - _SHOWN_SUB_RUNS} more sub-runs running")
        lines.append(s.tokens_text())
        return lines

    def _draw(self, *, final: bool, kept: list[str] | None = None) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F\x1b[J")  # back to the first line drawn, clear below
        for line in kept or ():
            out.append(line + "\n")  # above the live lines, so it stays when they are redrawn
        lines = self._lines()
        out.append("\n".join(lines) + "\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = 0 if final else len(lines)


class LineProgress:
    """The run's news as plain lines: turns, programs, pmaps (with a line per quarter done).

    For logs, pipes and CI, where a redrawn display would be noise. ``words`` rewrites the
    error messages it prints (the CLI spells settings as its flags).
    """

    def __init__(self, stream: TextIO | None = None, *, words: Callable[[str], str] = _same) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._words = words
        self._state = _State()
        self._quarters: dict[str, int] = {}

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        s = self._state
        s.update(event)
        kind = event["type"]
        if in_sub_run(event):
            call, _, span = str(event.get("span")).rpartition("/")
            if kind == "run.start":
                self._say(f"turn {s.turn}: sub-run {call} started (depth {s.sub_runs[call]['depth']}): "
                          f"{preview(str(event.get('goal', '')), 60)} · {s.sub_runs_text()}")
            elif kind == "run.end" and span == "run":
                usage = event.get("usage") or {}
                ran = int(event.get("turns") or 0)
                tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, Mapping) else 0
                self._say(f"turn {s.turn}: sub-run {call} ended: {event.get('status')}"
                          f"{_error_text(event.get('error'))} · {ran} turn{'s' * (ran != 1)} · "
                          f"{tokens:,} tokens · {s.sub_runs_text()}")
            return
        turn = f"turn {s.turn}"
        if kind == "llm.end" and event.get("role") == "planner":
            seconds = float(event.get("seconds") or 0)
            if event.get("cached") == "resume":
                self._say(f"{turn}: planner reply replayed from the resumed run, at no cost")
            elif event.get("status") == "ok":
                self._say(f"{turn}: planner replied ({int(event.get('input_tokens') or 0):,} in / "
                          f"{int(event.get('output_tokens') or 0):,} out, {seconds:.1f} s)")
            else:
                error = _error_text(event.get("error"), self._words)
                self._say(f"{turn}: planner call {event.get('status')}{error}")
        elif kind == "program.end":
            what = _error_text(event.get("error"), self._words)
            seconds = float(event.get("seconds") or 0)
            self._say(f"{turn}: program {event.get('status')}{what} ({seconds:.1f} s, "
                      f"{event.get('calls') or 0} calls)")
        elif kind == "turn.end":
            self._say(f"{turn}: {event.get('status')} · {s.tokens_text()}")
        elif kind == "pmap.start":
            self._say(f"{turn}: pmap {event['span']} started: {event.get('total')} items")
            self._quarters[event["span"]] = 0
        elif kind == "item.end":
            span = str(event.get("parent"))
            p = s.pmaps.get(span)
            if p is not None and p["total"] >= 8:
                finished = p["done"] + p["failed"]
                quarter = 4 * finished // p["total"]
                if 0 < quarter < 4 and quarter > self._quarters.get(span, 0):
                    self._quarters[span] = quarter
                    failed = f", {p['failed']} failed" if p["failed"] else ""
                    self._say(f"{turn}: pmap {span}: {finished}/{p['total']}{failed}")
        elif kind == "pmap.end":
            p = s.pmaps.get(event["span"], {})
            timed_out = " (timed out)" if event.get("timed_out") else ""
            self._say(f"{turn}: pmap {event['span']} ended: {event.get('done')} ok, "
                      f"{event.get('failed')} failed{timed_out} ({p.get('seconds', 0.0):.1f} s)")
        elif kind == "batch.start":
            self._say(f"{turn}: batch {event.get('batch_id')} submitted: {int(event.get('requests') or 0):,} "
                      f"worker requests (items {event.get('first_item')}-{event.get('last_item')})")
        elif kind == "batch.end":
            counts = ", ".join(f"{int(event.get(k) or 0):,} {k}" for k in ("succeeded", "errored", "canceled",
                                                                            "expired") if event.get(k))
            self._say(f"{turn}: batch {event['span']} {event.get('status')}: {counts or 'no results'} "
                      f"({float(event.get('seconds') or 0):.1f} s)")
        elif kind == "concurrency.change":
            allowed, ceiling = event.get("allowed"), event.get("ceiling")
            if allowed is not None and ceiling is not None and (allowed < (event.get("previous") or 0)
                                                                 or allowed == ceiling):
                # A cut, or back at the ceiling: the steps of a recovery are left to the transcript.
                self._say(f"{turn}: worker requests in flight {event.get('previous')} -> {allowed} of "
                          f"{ceiling} ({event.get('reason')})")
        elif kind == "sandbox.start" and s.turn:
            self._say(f"{turn}: sandbox restarted")
        elif kind == "run.end":
            turns = f"{s.turn} turn{'s' * (s.turn != 1)}"
            self._say(f"run {s.ended} after {turns} · {s.tokens_text()}")
            if s.failures:
                self._say(f"run: {s.failures}")


def progress_callback(fn: Callable[[int, int, Any], None]) -> Observer:
    """Turn ``fn(completed, total, latest_result)`` into an observer of pmap progress.

    ``fn`` is called after each item of a top-level pmap that finished well (not after a
    failed one): ``completed`` counts the items of that pmap finished so far, failed ones
    included; ``total`` is its item count; ``latest_result`` is the value of the last tool
    call the item made (``None`` if it made none). Items finish in any order. Nested pmaps
    count inside their parent's item, not on their own.

    Example::

        def show(done, total, latest):
            print(f"{done}/{total} - latest: {latest}")

        Runtime(planner=..., observers=[ptcrun.progress_callback(show)])
    """
    totals: dict[str, int] = {}
    finished: dict[str, int] = {}
    last_value: dict[str, Any] = {}

    def observe(event: Event) -> None:
        if in_sub_run(event):
            return  # the run's own top-level pmaps only
        kind = event["type"]
        if kind == "pmap.start":
            if str(event.get("parent", "")).endswith(".program"):
                totals[event["span"]] = int(event.get("total", 0))
                finished[event["span"]] = 0
        elif kind == "call.end" and event.get("ok"):
            last_value[str(event.get("parent"))] = event.get("value")
        elif kind == "item.end":
            pmap = str(event.get("parent"))
            if pmap in totals:
                finished[pmap] += 1
                value = last_value.pop(str(event.get("span")), None)
                if event.get("ok"):
                    fn(finished[pmap], totals[pmap], value)
        elif kind == "pmap.end":
            totals.pop(event["span"], None)
            finished.pop(event["span"], None)

    return observe


def parallel_events(fn: Callable[[dict[str, Any]], None]) -> Observer:
    """Turn the run's pmap events into worker-pool events and pass each to ``fn``.

    =======================  ===========================================================
    ``parallel.start``       a pmap started: ``worker_count`` (threads), ``item_count``
    ``worker.start``         an item started: ``worker_id`` (its slot), ``item_index``,
                             ``total_items``
    ``worker.complete``      an item ended: the same, plus ``error`` (true or false)
    ``parallel.complete``    a pmap ended: ``items_processed``, ``items_failed``,
                             ``timed_out``
    =======================  ===========================================================

    Each is ``{"type", "ts", "source": <pmap span>, "data": {...}}``.
    """
    totals: dict[str, int] = {}

    def send(kind: str, event: Event, source: str, data: dict[str, Any]) -> None:
        fn({"type": kind, "ts": event.get("ts"), "source": source, "data": data})

    def observe(event: Event) -> None:
        kind = event["type"]
        if kind == "pmap.start":
            totals[event["span"]] = int(event.get("total", 0))
            send("parallel.start", event, event["span"],
                 {"worker_count": event.get("concurrency"), "item_count": event.get("total")})
        elif kind in ("item.start", "item.end"):
            pmap = str(event.get("parent"))
            data = {"worker_id": event.get("slot"), "item_index": event.get("item"),
                    "total_items": totals.get(pmap)}
            if kind == "item.start":
                send("worker.start", event, pmap, data)
            else:
                send("worker.complete", event, pmap, {**data, "error": not event.get("ok")})
        elif kind == "pmap.end":
            totals.pop(event["span"], None)
            send("parallel.complete", event, event["span"], {
                "items_processed": int(event.get("done") or 0) + int(event.get("failed") or 0),
                "items_failed": event.get("failed"),
                "timed_out": bool(event.get("timed_out")),
            })

    return observe
