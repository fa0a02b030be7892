"""The sandbox child starts while the planner writes its first reply."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio

from ptcrun import Limits, Runtime, ScriptedProvider

DONE = "```python\ndone(len(data))\n```"


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.transcript.read_text().splitlines()]


def children() -> set[str]:
    found: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update((task / "children").read_text().split())
    return found


def test_the_child_starts_while_the_planner_replies(tmp_path):
    rt = Runtime(planner=ScriptedProvider([DONE], latency=1.0), transcript_dir=tmp_path)
    result = rt.run("Count.", ["a", "b"])
    assert result.status == "done" and result.answer == 2
    seen = events(result)
    (start,) = [e for e in seen if e["type"] == "sandbox.start"]
    (asked,) = [e for e in seen if e["type"] == "llm.start"]
    (replied,) = [e for e in seen if e["type"] == "llm.end"]
    # Started during the planner's second of thinking, and placed as the run's own child, not
    # as a restart in turn 1.
    assert asked["ts"] < start["ts"] < replied["ts"]
    assert (start["span"], start["parent"]) == ("t0.sandbox", "run")


def test_a_restart_is_still_placed_in_its_turn(tmp_path):
    crash = "```python\nx = 'x' * (1 << 40)\n```"
    rt = Runtime(planner=ScriptedProvider([crash, DONE]), transcript_dir=tmp_path,
                 limits=Limits(sandbox_memory_bytes=256 << 20))
    result = rt.run("Count.", ["a"])
    starts = [(e["span"], e["parent"]) for e in events(result) if e["type"] == "sandbox.start"]
    assert starts[0] == ("t0.sandbox", "run")
    assert starts[1:] == [("t2.sandbox", "t2")]  # the next program needed a new child


def test_a_planner_that_fails_at_once_leaves_no_child(tmp_path):
    def fail(request):
        raise RuntimeError("down")

    before = children()
    rt = Runtime(planner=ScriptedProvider(fail), transcript_dir=tmp_path)
    result = rt.run("Count.", ["a"])
    assert result.status == "error" and "down" in str(result.error.__cause__ or result.error)
    assert children() - before == set()


def test_a_run_cancelled_during_the_first_reply_leaves_no_child(tmp_path):
    before = children()
    rt = Runtime(planner=ScriptedProvider([DONE], latency=30), transcript_dir=tmp_path)

    async def main():
        with trio.move_on_after(0.5):
            await rt.arun("Count.", ["a"])

    trio.run(main)
    assert children() - before == set()


def test_a_first_reply_slower_than_the_turn_clock_ends_the_run_as_before(tmp_path):
    before = children()
    rt = Runtime(planner=ScriptedProvider([DONE], latency=5), transcript_dir=tmp_path,
                 limits=Limits(turn_timeout=0.5, pmap_timeout=0.4, call_timeout=0.3))
    result = rt.run("Count.", ["a"])
    assert result.status == "timeout"
    assert "the planner did not reply in time" in str(result.error)
    assert children() - before == set()


def test_a_child_that_cannot_start_ends_the_run_without_waiting_for_the_reply(tmp_path, monkeypatch):
    from ptcrun.sandbox.host import _driver

    monkeypatch.setattr(_driver, "_BOOT", "import sys; sys.exit('no sandbox on this machine')")
    rt = Runtime(planner=ScriptedProvider([DONE], latency=5), transcript_dir=tmp_path)
    result = rt.run("Count.", ["a"])
    assert result.status == "error"
    assert "no sandbox on this machine" in str(result.error)
    # The planner's reply could not have been used: it is not waited for, nor taken as a turn.
    ends = [e for e in events(result) if e["type"] == "llm.end"]
    assert [e["status"] for e in ends] != ["ok"] and result.turns == ()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("during", ["reply", "start"])
def test_a_signal_during_the_first_reply_or_the_start_cancels_the_run_and_leaves_no_child(
    tmp_path, monkeypatch, signum, during
):
    from ptcrun.sandbox.host import _driver

    planner = ScriptedProvider([DONE], latency=2)
    if during == "start":
        send_init = _driver.Sandbox._send_init

        async def signalled(self, channel):
            os.kill(os.getpid(), signum)
            await trio.sleep(0.3)
            await send_init(self, channel)

        monkeypatch.setattr(_driver.Sandbox, "_send_init", signalled)
    else:
        def reply(request):
            os.kill(os.getpid(), signum)
            return DONE

        planner = ScriptedProvider(reply, latency=0.05)
    before = children()
    result = Runtime(planner=planner, transcript_dir=tmp_path).run("Count.", ["a"])
    assert (result.status, result.signal) == ("cancelled", signum)
    assert children() - before == set()
    last = events(result)[-1]
    assert (last["type"], last["status"]) == ("run.end", "cancelled")


def test_a_slow_start_does_not_take_the_first_program_s_turn_clock(tmp_path, monkeypatch):
    # The reply is at once (as when a run resumes); the child takes longer than the turn clock
    # to start. The program still has the turn clock less the reply's time, as in later turns.
    from ptcrun.sandbox.host import _driver

    send_init = _driver.Sandbox._send_init

    async def slow(self, channel):
        await trio.sleep(1.2)
        await send_init(self, channel)

    monkeypatch.setattr(_driver.Sandbox, "_send_init", slow)
    busy = "```python\nx = 0\nfor i in range(20_000):\n    x += i\ndone(len(data))\n```"
    rt = Runtime(planner=ScriptedProvider([busy]), transcript_dir=tmp_path,
                 limits=Limits(turn_timeout=1.0, pmap_timeout=0.9, call_timeout=0.8))
    result = rt.run("Count.", ["a", "b"])
    assert [turn.status for turn in result.turns] == ["done"], result.turns[0].error
    assert result.answer == 2
