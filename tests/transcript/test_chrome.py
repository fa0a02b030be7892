"""The Chrome/Perfetto export, checked against the Trace Event Format: structure and timing."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptcrun import Transcript
from ptcrun.transcript._chrome import _Lanes, chrome_trace, chrome_trace_json

from .example_runs import example_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return example_run(tmp_path_factory.mktemp("runs"))[1]


def validate(trace: dict) -> list[dict]:
    """Check the Trace Event Format's rules that viewers rely on; return the X events."""
    assert set(trace) >= {"traceEvents"}
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    named: set[tuple[int, int]] = set()
    complete = []
    for event in events:
        assert event["ph"] in ("X", "M", "i"), event
        assert isinstance(event["name"], str) and event["name"]
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "thread_name", "thread_sort_index")
            if event["name"] == "thread_name":
                named.add((event["pid"], event["tid"]))
            continue
        assert isinstance(event["ts"], int) and event["ts"] >= 0
        assert isinstance(event.get("args", {}), dict)
        if event["ph"] == "X":
            assert isinstance(event["dur"], int) and event["dur"] >= 0
            complete.append(event)
    for event in complete:
        assert (event["pid"], event["tid"]) in named, f"track of {event['name']} has no name"
    # On one track, complete events must nest or be disjoint: never overlap in part.
    tracks: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for event in complete:
        tracks[(event["pid"], event["tid"])].append(event)
    for track in tracks.values():
        track.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_ends: list[int] = []
        for event in track:
            end = event["ts"] + event["dur"]
            while open_ends and open_ends[-1] <= event["ts"]:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1], f"{event['name']} overlaps in part on tid {event['tid']}"
            open_ends.append(end)
    return complete


def test_export_is_valid_trace_event_json(run):
    trace = json.loads(chrome_trace_json(run))
    complete = validate(trace)
    assert trace["displayTimeUnit"] == "ms"
    assert sum(e["cat"] == "call" for e in complete) == len(run.calls) == 15
    assert sum(e["cat"] == "turn" for e in complete) == 2
    assert sum(e["cat"] == "pmap" for e in complete) == 2
    assert sum(e["cat"] == "llm" for e in complete) == 12
    assert sum(e["cat"] == "planner" for e in complete) == 2


def test_calls_that_overlap_never_share_a_slot_track(run):
    complete = validate(chrome_trace(run))
    calls = [e for e in complete if e["cat"] == "call"]
    by_track: dict[int, list[dict]] = defaultdict(list)
    for event in calls:
        by_track[event["tid"]].append(event)
    for track in by_track.values():
        track.sort(key=lambda e: e["ts"])
        for before, after in itertools.pairwise(track):
            assert before["ts"] + before["dur"] <= after["ts"]
    # Lowest-free placement uses exactly as many tracks as calls ever overlapped.
    edges = sorted([(e["ts"], 1) for e in calls] + [(e["ts"] + e["dur"], -1) for e in calls],
                   key=lambda edge: (edge[0], edge[1]))
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    assert len(by_track) == peak


def test_times_are_microseconds_from_the_run_start(run):
    complete = validate(chrome_trace(run))
    by_span = {e["args"]["span"]: e for e in complete}
    for call in run.calls:
        event = by_span[call.span]
        assert abs(event["ts"] - (call.started - run.started) * 1e6) <= 1
        assert abs(event["ts"] + event["dur"] - (call.ended - run.started) * 1e6) <= 1
        for request in call.llm:
            inner = by_span[request.span]
            assert inner["tid"] == event["tid"]
            assert event["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= event["ts"] + event["dur"]
    run_event = by_span["run"]
    assert run_event["ts"] == 0
    assert abs(run_event["dur"] - (run.ended - run.started) * 1e6) <= 1


def test_tracks_are_named_and_ordered(run):
    trace = chrome_trace(run)
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names[1] == "run: turns, planner, programs"
    assert sorted(n for n in names.values() if n.startswith("slot")) == sorted(
        f"slot {i}" for i in range(1, len([n for n in names.values() if n.startswith("slot")]) + 1))
    (process,) = [e for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert run.goal in process["args"]["name"]


def test_unfinished_spans_end_at_the_last_event(run, tmp_path):
    text = run.path.read_text()
    cut = text.index('"type": "item.end"')
    path = tmp_path / "transcript.jsonl"
    path.write_text(text[:cut])
    cut_run = Transcript.load(path)
    complete = validate(chrome_trace(cut_run))
    last = round((cut_run.ended - cut_run.started) * 1e6)
    unfinished = [e for e in complete if e["args"]["status"] == "unfinished"]
    assert {e["cat"] for e in unfinished} >= {"run", "turn", "program", "pmap"}
    for event in unfinished:
        assert abs(event["ts"] + event["dur"] - last) <= 1


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 300)), max_size=60))
def test_lanes_never_overlap_and_use_the_fewest_tracks(intervals):
    lanes = _Lanes()
    placed: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for start, length in sorted(intervals):
        placed[lanes.place(start, start + length)].append((start, start + length))
    for spans in placed.values():
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start
    # The most intervals that hold one moment: no placement can use fewer lanes.
    peak = max((sum(1 for s, n in intervals if s <= t < s + n) for t, _ in intervals), default=0)
    assert len(lanes) == peak
