"""Live progress follows sub-runs: how many run at each depth, their turns, how they ended."""

from __future__ import annotations

import io
import json
import re

from ptcrun.transcript._progress import LineProgress, TerminalProgress

from .test_sub_run_views import nested  # noqa: F401  # the fixture: a run with sub-runs at two depths


def _frames(screen: io.StringIO) -> list[str]:
    return [frame for frame in screen.getvalue().split("\x1b[J") if frame]


def test_the_terminal_display_shows_the_sub_runs_running_at_each_depth(nested):  # noqa: F811
    events = _all(nested)
    screen = io.StringIO()
    observe = TerminalProgress(screen, redraw_every=0)
    # Up to the start of the second depth-2 sub-run: one at depth 1 and two at depth 2 run.
    starts = [i for i, e in enumerate(events) if e["type"] == "run.start" and e.get("depth") == 2]
    for event in events[: starts[1] + 1]:
        observe(event)
    frame = _frames(screen)[-1]
    assert "sub-runs: 3 running (depth 1: 1, depth 2: 2)" in frame
    assert re.search(r"^  sub-run t1\.c1 \(depth 1\) · turn 1/1 · \d+\.\d s · Count the words of each chunk\.$",
                     frame, flags=re.MULTILINE)
    assert re.search(r"^    sub-run t1\.c1/t1\.c1 \(depth 2\) · turn \d/1 · \d+\.\d s · Count one chunk\.$",
                     frame, flags=re.MULTILINE)
    # When the depth-2 sub-runs have ended, the display says so.
    ends = [i for i, e in enumerate(events) if e["type"] == "run.end" and e["span"].count("/") == 2]
    for event in events[starts[1] + 1 : ends[-1] + 1]:
        observe(event)
    frame = _frames(screen)[-1]
    assert "sub-runs: 1 running (depth 1: 1) · 2 ended (2 done)" in frame
    for event in events[ends[-1] + 1 :]:
        observe(event)
    final = _frames(screen)[-1]
    assert "sub-run" not in final  # the run's end shows its own outcome


def test_line_progress_says_when_each_sub_run_starts_and_ends(nested):  # noqa: F811
    out = io.StringIO()
    observe = LineProgress(out)
    for event in _all(nested):
        observe(event)
    lines = [line for line in out.getvalue().splitlines() if "sub-run" in line]
    assert lines[0] == ("turn 1: sub-run t1.c1 started (depth 1): Count the words of each chunk. · "
                        "sub-runs: 1 running (depth 1: 1)")
    assert len(lines) == 6  # three sub-runs, a line as each starts and ends
    assert re.fullmatch(r"turn 1: sub-run t1\.c1 ended: done · 1 turn · [\d,]+ tokens · sub-runs: 0 running · "
                        r"3 ended \(3 done\)", lines[-1])
    assert sum(1 for line in lines if re.match(r"turn 1: sub-run t1\.c1/t1\.c\d ended: done · 1 turn", line)) == 2
    # The run's own turns are unchanged: one turn, ended done.
    assert "turn 1: done · " in out.getvalue()


def _all(t) -> list[dict]:
    """The file's events in order, the sub-runs' among the run's."""
    return [json.loads(line) for line in t.path.read_text().splitlines()]
