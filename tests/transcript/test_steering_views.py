"""How the views say what rate limits did: the throttle is an account's, not the workers'.

One throttle per API account is shared by the planner, the workers and the sub-runs that call
it with the same key, and each ``concurrency.change`` names the account's providers. The views
name them too, one account at a time, instead of calling every change the workers'.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from ptcrun.transcript._html import render_html
from ptcrun.transcript._progress import LineProgress
from ptcrun.transcript._transcript import Transcript
from ptcrun.transcript._views import render_summary
from ptcrun.transcript._wording import steering_note

from .example_runs import example_run

PLANNER = "anthropic:claude-sonnet-4-5"
SHARED = "anthropic:claude-haiku-4-5, anthropic:claude-sonnet-4-5"
BOTH = "anthropic:claude-haiku-4-5 and anthropic:claude-sonnet-4-5"  # SHARED, in words


def change(provider: str, previous: int, allowed: int, reason: str, ts: float) -> dict:
    return {"type": "concurrency.change", "span": "run", "parent": None, "ts": ts, "provider": provider,
            "allowed": allowed, "previous": previous, "ceiling": 8, "reason": reason}


def test_the_note_names_each_account_by_its_providers() -> None:
    events = [change(SHARED, 8, 4, "429 rate limited", 1.0), change(PLANNER, 8, 4, "529 overloaded", 1.5),
              change(SHARED, 4, 2, "429 rate limited", 2.0), change(SHARED, 2, 3, "recovered", 3.0)]
    assert steering_note(events) == (
        f"rate limits steered the requests in flight to {BOTH} 3 times: down to 2 of 8 "
        f"(429 rate limited), 3 at the end; rate limits steered the requests in flight to {PLANNER} "
        "1 time: down to 4 of 8 (529 overloaded), 4 at the end"
    )
    assert "worker" not in steering_note(events)
    assert steering_note([{"type": "llm.retry"}]) == ""


def test_the_summary_and_the_page_give_each_account_its_own_row(tmp_path: Path) -> None:
    _, run = example_run(tmp_path)
    assert run.path is not None
    lines = Path(run.path).read_text().splitlines()
    first = json.loads(lines[0])
    extra = [json.dumps({"v": first["v"], **c}) for c in (
        change(SHARED, 8, 4, "429 rate limited", first["ts"] + 0.01),
        change(PLANNER, 8, 2, "429 rate limited", first["ts"] + 0.02),
    )]
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([*lines[:-1], *extra, lines[-1]]) + "\n")
    transcript = Transcript.load(edited)
    summary = render_summary(transcript)
    # The example's worker (a scripted provider, an account of its own) was rate limited once.
    assert ("throttled  rate limits steered the requests in flight to scripted 1 time: down to 2 "
            "of 4 (429 rate limited), 2 at the end; rate limits steered the requests in flight to "
            f"{BOTH} 1 time: down to 4 of 8 (429 rate limited), 4 at the end; rate limits steered "
            f"the requests in flight to {PLANNER} 1 time: down to 2 of 8") in summary
    page = render_html(transcript)
    # One lane each: a bar of one account does not end where another account changed.
    assert page.count('<span class="name">in flight</span>') == 3
    assert f"4 of 8 requests allowed in flight to {BOTH} (429 rate limited)" in page
    assert f"2 of 8 requests allowed in flight to {PLANNER} (429 rate limited)" in page
    assert "worker requests allowed in flight" not in page


def test_the_progress_line_names_the_account() -> None:
    out = io.StringIO()
    observe = LineProgress(out)
    observe(change(SHARED, 8, 4, "429 rate limited", 1.0))
    observe(change(SHARED, 4, 5, "recovered", 2.0))  # a step of a recovery: left to the transcript
    assert out.getvalue() == f"turn 0: requests in flight to {BOTH} 8 -> 4 of 8 (429 rate limited)\n"
