"""The sandbox's events placed in the span tree, as the schema's events."""

from __future__ import annotations

import pytest

from ptcrun.runtime._spans import SandboxSpans
from ptcrun.transcript._schema import (
    CallStart,
    Event,
    ItemEnd,
    PmapEnd,
    PmapStart,
    ProgramOutput,
    SandboxStart,
)


def spans_of(*events: dict) -> list[Event]:
    seen: list[Event] = []
    spans = SandboxSpans(seen.append)
    spans.turn = 2
    for event in events:
        spans.on_sandbox_event(event)
    return seen


def test_events_land_under_the_running_turn_with_their_span_ids():
    seen = spans_of(
        {"type": "pmap.start", "pmap": 1, "total": 2, "concurrency": 2, "parent_pmap": None, "parent_item": None},
        {"type": "pmap.start", "pmap": 2, "total": 1, "concurrency": 1, "parent_pmap": 1, "parent_item": 0},
        {"type": "call.start", "call": 7, "tool": "worker", "args": ["x"], "kwargs": {}, "pmap": 2, "item": 0},
        {"type": "output", "text": "hi\n", "pmap": None, "item": None},
        {"type": "pmap.end", "pmap": 2, "done": 1, "failed": 0, "timed_out": False},
    )
    assert [(type(e), e.span, e.parent) for e in seen] == [
        (PmapStart, "t2.m1", "t2.program"),
        (PmapStart, "t2.m2", "t2.m1.i0"),
        (CallStart, "t2.c7", "t2.m2.i0"),
        (ProgramOutput, "t2.program", "t2"),
        (PmapEnd, "t2.m2", "t2.m1.i0"),
    ]


def test_a_sandbox_started_before_the_first_turn_hangs_from_the_run():
    seen: list[Event] = []
    spans = SandboxSpans(seen.append)
    spans.on_sandbox_event({"type": "sandbox.start", "pid": 42, "layers": ["not", "a", "dict"]})
    assert seen == [SandboxStart(span="t0.sandbox", parent="run", pid=42, layers=None, ts=seen[0].ts)]


def test_values_a_hostile_child_sends_are_reduced_to_the_schema():
    (end,) = spans_of({"type": "item.end", "pmap": 1, "item": 3, "slot": 0, "ok": "yes", "error": 5})
    assert isinstance(end, ItemEnd)
    assert (end.span, end.ok, end.error) == ("t2.m1.i3", False, {"type": "Error", "message": "5"})
    assert isinstance(end.as_json()["error"], dict)


def test_an_unknown_sandbox_event_is_a_bug_not_a_silent_drop():
    with pytest.raises(ValueError, match=r"unknown type 'pmap\.pause'"):
        spans_of({"type": "pmap.pause", "pmap": 1})
