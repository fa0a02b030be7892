"""Signals during nested sub-runs: every sandbox child ends and every run writes its run.end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import assert_ends, events_of, transcript_of

# Two sub-runs (depth 1), each starting a sub-run (depth 2) whose planner thinks far past the
# test: when the signal comes, five runs and five sandbox children are alive.
SCRIPT = '''
import sys
import trio
from ptcrun import Limits, Runtime, ScriptedProvider

def block(code):
    return "```python\\n" + code + "\\n```"

TOP = block("done(pmap(lambda i: tool.agent('Middle.', data=[i], max_tokens=20_000, max_turns=1), [0, 1]))")
MIDDLE = block("done(tool.agent('Deep.', data=[0], max_tokens=5_000, max_turns=1))")

async def sub(request):
    if "Middle." in request.messages[0].content:
        return MIDDLE
    await trio.sleep(120)
    return block("done(0)")

rt = Runtime(planner=ScriptedProvider([TOP]), sub_planner=ScriptedProvider(sub),
             limits=Limits(planner_max_tokens=300), transcript_dir=sys.argv[1])
result = rt.run("Nest.", ["one chunk", "another chunk"])

# The sandbox children still running once run() returned: checked here, before this process
# exits, since a child left behind would also end when its pipes close with this process.
import glob, os
running = []
for listing in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
    for pid in open(listing).read().split():
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
print(result.status, result.signal, len(running))
'''


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def _wait_for_depth_two(out: Path, process: subprocess.Popen[str]) -> list[dict]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = list(out.glob("*/transcript.jsonl"))
        if found:
            events = [json.loads(line) for line in found[0].read_text().splitlines() if line.endswith("}")]
            deep = [e for e in events if e["type"] == "llm.start" and e["span"].count("/") == 2]
            # Each sub-run's child starts while its planner is asked: wait for all five.
            started = [e for e in events if e["type"] == "sandbox.start"]
            if len(deep) == 2 and len(started) == 5:
                return events
        time.sleep(0.05)
    raise AssertionError("the nested sub-runs did not start in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_nested_sub_runs_ends_every_child_and_every_run(tmp_path, signum):
    script = tmp_path / "nest.py"
    script.write_text(SCRIPT)
    out = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, str(script), str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = _wait_for_depth_two(out, process)
        children = [e["pid"] for e in before if e["type"] == "sandbox.start"]
        assert len(children) == 5
        assert all(_alive(pid) for pid in children)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()  # reaped and its pipes closed, even when an assertion above failed
        for pipe in (process.stdout, process.stderr):
            pipe.close()
    assert process.returncode == 0, stderr
    assert stdout.split()[0] == "cancelled", stdout
    assert stdout.split()[2] == "0", stdout  # no child was running when run() returned
    events = events_of(transcript_of(out))
    assert_ends(events, "cancelled")
    # Every run of the tree wrote its run.end, and each says it was cancelled.
    starts = {e["span"] for e in events if e["type"] == "run.start"}
    ends = {e["span"]: e["status"] for e in events if e["type"] == "run.end"}
    assert len(starts) == 5
    assert set(ends) == starts
    assert set(ends.values()) == {"cancelled"}
    # No sandbox child outlives the run.
    assert not [pid for pid in children if _alive(pid)]
