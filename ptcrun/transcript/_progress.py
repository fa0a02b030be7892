"""Observers that show a run while it goes: a live terminal display, or plain lines.

An observer is a function called with each event as the run emits it (the same events the
transcript holds), on the run's own thread, before the run goes on: it must be quick and must
not raise. Two ready-made ones draw what ``_progress_state`` counts:

- :class:`TerminalProgress`: redraws a few lines in place on a terminal: the current turn,
  a progress bar per running pmap (done / total, failures, elapsed), the ``tool.agent``
  sub-runs running (how many at each depth, and the turn each is on) and ended, tokens against
  the limit, the calls failed and the requests retried so far, with a line kept for each
  finished turn;
  at the end, the run's status, ``done (partial: 43 of 92 calls failed)`` when the answer was
  built while calls were failing.
- :class:`LineProgress`: the same news as plain lines, for logs, pipes and CI.

The observers that hand progress to the application's own function are ``_callbacks``'.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ._progress_state import Event, ProgressState, in_sub_run
from ._wording import account, preview

__all__ = ["LineProgress", "TerminalProgress"]

_BAR_CELLS = 24
_REDRAW_EVERY = 0.1  # seconds; a 1,000-item pmap must not redraw 4,000 times
_SHOWN_PMAPS = 6
_SHOWN_SUB_RUNS = 4
_TICK_EVERY = 0.5  # seconds between redraws when no event comes (the planner thinking)

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
        self._state = ProgressState()
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
        self._state = ProgressState()
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
                # The throttle is an account's (planner, workers and sub-runs alike): name it.
                to = account(event.get("provider"))
                self._say(f"{turn}: requests in flight to {to} {event.get('previous')} -> {allowed} of "
                          f"{ceiling} ({event.get('reason')})")
        elif kind == "sandbox.start" and not str(event.get("span", "")).rpartition("/")[2].startswith("t0."):
            self._say(f"{turn}: sandbox restarted")
        elif kind == "run.end":
            turns = f"{s.turn} turn{'s' * (s.turn != 1)}"
            self._say(f"run {s.ended} after {turns} · {s.tokens_text()}")
            if s.failures:
                self._say(f"run: {s.failures}")
