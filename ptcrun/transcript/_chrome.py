"""Export a transcript as Chrome trace events, for chrome://tracing and ui.perfetto.dev.

The Trace Event Format draws each thread id as one track, and a track shows complete
(``"X"``) events either side by side or nested inside one another, never partly overlapping.
So the run gets one process, and its spans are laid out on three kinds of tracks:

- ``run``: turns, each holding its planner call and its program (these nest by construction);
- ``pmap 1..n``: pmaps, each on the lowest track free when it starts (nested and concurrent
  pmaps overlap in time);
- ``slot 1..n``: tool calls, each on the lowest slot track free when it starts, so calls that
  overlap never share a track; a worker call's LLM requests nest inside it.

Each ``tool.agent`` sub-run is a process of its own with the same tracks, named for the call
that started it. Times are microseconds from the run's start. Spans that never ended (a killed run) end at the
transcript's last event and say ``"status": "unfinished"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._runs import run_status
from ._transcript import SpanRecord, Transcript

__all__ = ["chrome_trace", "chrome_trace_json"]

_PID = 1
_RUN_TID = 1
_PMAP_BASE = 100
_SLOT_BASE = 1000


class _Lanes:
    """Assigns intervals to the lowest-numbered lane that is free at their start."""

    def __init__(self) -> None:
        self._busy_until: list[float] = []

    def place(self, start: float, end: float) -> int:
        for lane, busy_until in enumerate(self._busy_until):
            if busy_until <= start:
                self._busy_until[lane] = end
                return lane
        self._busy_until.append(end)
        return len(self._busy_until) - 1

    def __len__(self) -> int:
        return len(self._busy_until)


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _args(span: SpanRecord) -> dict[str, Any]:
    keep = (
        "turn", "role", "provider", "model", "input_tokens", "output_tokens", "cost", "tool",
        "args", "kwargs", "value", "error", "total", "concurrency", "done", "failed", "item",
        "slot", "answer", "note", "restarted", "source", "text", "cached",
    )
    args: dict[str, Any] = {"span": span.span, "status": span.status}
    for key in keep:
        if span.fields.get(key) is not None:
            args[key] = span.fields[key]
    return args


def _name(span: SpanRecord) -> str:
    f = span.fields
    if span.kind == "turn":
        return f"turn {f.get('turn')}"
    if span.kind == "llm":
        attempt = span.span.rsplit(".", 1)[-1]
        return "planner request" if f.get("role") == "planner" else f"worker LLM {attempt}"
    if span.kind == "pmap":
        return f"pmap {span.span} ({f.get('total')} items)"
    if span.kind == "call":
        return f"{f.get('tool')} c{f.get('call')}"
    return span.kind


def chrome_trace(t: Transcript) -> dict[str, Any]:
    """The run as a Trace Event Format object: ``{"traceEvents": [...], ...}``.

    The run is process 1; each ``tool.agent`` sub-run is a process of its own (2, 3, ... in
    order of start), named for the call that started it, with the same three kinds of tracks,
    on the run's time axis.
    """
    events: list[dict[str, Any]] = []
    for pid, (prefix, run) in enumerate(t.walk(), _PID):
        name = _process_name(t, prefix, run)
        events += _process(run, pid, prefix, origin=t.started, last=t.ended, name=name)
    meta = [e for e in events if e["ph"] == "M"]
    return {
        "traceEvents": meta + [e for e in events if e["ph"] != "M"],
        "displayTimeUnit": "ms",
        "otherData": _other(t),
    }


def _process_name(t: Transcript, prefix: str, run: Transcript) -> str:
    if not prefix:
        run_name = t.path.parent.name if t.path is not None else "run"
        return f"ptcrun {run_name}: {t.goal[:80]}"
    return f"sub-run of {prefix.rstrip('/')} (depth {run.depth}): {run.goal[:80]}"


def _process(
    t: Transcript, pid: int, prefix: str, *, origin: float, last: float, name: str
) -> list[dict[str, Any]]:
    """One run's own spans (not its sub-runs') as a process: metadata and span events."""
    events: list[dict[str, Any]] = []
    pmap_lanes = _Lanes()
    slot_lanes = _Lanes()
    call_tid: dict[str, int] = {}
    spans = [s for s in t.spans() if "/" not in s.span]

    def complete(span: SpanRecord, tid: int, cat: str) -> dict[str, Any]:
        # Round the start and end, not the duration, so nesting survives the rounding.
        start = _us(span.started - origin)
        end = max(_us((span.ended if span.ended is not None else last) - origin), start)
        args = _args(span)
        if prefix:
            args["span"] = prefix + span.span
        return {"name": _name(span), "cat": cat, "ph": "X", "ts": start, "dur": end - start,
                "pid": pid, "tid": tid, "args": args}

    for span in spans:
        end = span.ended if span.ended is not None else last
        if span.kind in ("run", "turn", "program"):
            events.append(complete(span, _RUN_TID, span.kind))
        elif span.kind == "llm" and span.fields.get("role") == "planner":
            events.append(complete(span, _RUN_TID, "planner"))
        elif span.kind == "pmap":
            lane = pmap_lanes.place(_us(span.started - origin), _us(end - origin))
            events.append(complete(span, _PMAP_BASE + lane, "pmap"))
        elif span.kind == "call":
            lane = slot_lanes.place(_us(span.started - origin), _us(end - origin))
            call_tid[span.span] = _SLOT_BASE + lane
            events.append(complete(span, _SLOT_BASE + lane, "call"))
        elif span.kind == "llm" and span.parent in call_tid:
            events.append(complete(span, call_tid[span.parent], "llm"))
        elif span.kind == "sandbox":
            events.append({"name": "sandbox start", "cat": "sandbox", "ph": "i", "s": "t",
                           "ts": _us(span.started - origin), "pid": pid, "tid": _RUN_TID,
                           "args": {"pid": span.fields.get("pid")}})
    meta = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}},
        *_track(pid, _RUN_TID, "run: turns, planner, programs", 0),
    ]
    for lane in range(len(pmap_lanes)):
        meta += _track(pid, _PMAP_BASE + lane, f"pmap {lane + 1}", 1 + lane)
    for lane in range(len(slot_lanes)):
        meta += _track(pid, _SLOT_BASE + lane, f"slot {lane + 1}", 1000 + lane)
    return meta + events


def _other(t: Transcript) -> Mapping[str, Any]:
    return {
        "status": run_status(t),
        "goal": t.goal,
        "turns": len(t.turns),
        "total_tokens": t.usage.total_tokens,
        "transcript": str(t.path) if t.path else None,
    }


def _track(pid: int, tid: int, name: str, sort_index: int) -> list[dict[str, Any]]:
    """The metadata events that name a track and place it among the others."""
    return [
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}},
        {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": sort_index}},
    ]


def chrome_trace_json(t: Transcript) -> str:
    """:func:`chrome_trace` as JSON text."""
    return json.dumps(chrome_trace(t), ensure_ascii=False)
