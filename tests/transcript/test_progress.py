"""Live progress: the terminal display and the plain lines, fed the events of a real run."""

from __future__ import annotations

import io
import re

import pytest

from ptcrun.transcript._progress import LineProgress, TerminalProgress

from .example_runs import example_run


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return [dict(e) for e in example_run(tmp_path_factory.mktemp("runs"))[1].events]


def test_terminal_display_redraws_in_place_with_a_bar_per_running_pmap(events):
    screen = io.StringIO()
    observe = TerminalProgress(screen)
    start = next(i for i, e in enumerate(events) if e["type"] == "pmap.start")
    for event in events[: start + 1]:
        observe(event)
    text = screen.getvalue()
    lines = text.rsplit("\x1b[J", 1)[-1].splitlines()
    assert len(lines) == 3
    assert re.match(r"turn 2/8 · program running · \d+\.\d s$", lines[0])
    assert re.match(r"  pmap t2\.m1 ░{24} 0/12 · \d+\.\d s$", lines[1])
    assert re.match(r"tokens [\d,]+ / 200,000 \(\d+%\)$", lines[2])
    # It moved back over the two lines it drew before the pmap started.
    assert text.endswith("\x1b[2F\x1b[J" + "\n".join(lines) + "\n")


def test_terminal_display_counts_failures_and_ends_cleanly(events):
    screen = io.StringIO()
    observe = TerminalProgress(screen, redraw_every=0)
    second = [i for i, e in enumerate(events) if e["type"] == "pmap.end"][-1]
    for event in events[:second]:
        observe(event)
    frame = screen.getvalue().rsplit("\x1b[J", 1)[-1]
    assert re.search(r"  pmap t2\.m2 █{24} 3/3 · 1 failed · ", frame)
    for event in events[second:]:
        observe(event)
    final = screen.getvalue().rsplit("\x1b[J", 1)[-1]
    assert final.startswith("turn 2/8 · turn ended: done · ")
    assert "pmap" not in final  # pmaps that ended are no longer drawn


def test_line_progress_reports_turns_pmaps_and_the_end(events):
    out = io.StringIO()
    observe = LineProgress(out)
    for event in events:
        observe(event)
    lines = out.getvalue().splitlines()
    assert "\x1b[" not in out.getvalue()
    assert lines[0].startswith("turn 1: planner replied (")
    assert "turn 2: pmap t2.m1 started: 12 items" in lines
    assert [line for line in lines if line.startswith("turn 2: pmap t2.m1: ")] == [
        "turn 2: pmap t2.m1: 3/12", "turn 2: pmap t2.m1: 6/12", "turn 2: pmap t2.m1: 9/12",
    ]
    assert any(re.match(r"turn 2: pmap t2\.m2 ended: 2 ok, 1 failed \(\d+\.\d s\)$", line) for line in lines)
    # One lookup failed and the program called done() all the same: the end says so.
    assert re.match(r"run done \(partial: 1 of 15 calls failed\) after 2 turns · tokens [\d,]+ / 200,000", lines[-2])
    assert lines[-1] == "run: 1 of 15 calls failed: 1 ToolError"
