"""Signals mid fan-out: SIGTERM, SIGHUP and SIGINT end a run as a clock does.

``timeout`` and ``docker stop`` send SIGTERM, a closing terminal SIGHUP, Ctrl-C SIGINT. Each must
stop the calls in flight and the sandbox child, write ``run.end`` with status ``cancelled`` and
the signal's name, keep every call that finished, and exit with 128 + the signal's number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

from ptcrun import Runtime, ScriptedProvider
from ptcrun.cli import EXIT_CODES

from .conftest import assert_ends, block, events_of, finished_calls, transcript_of

FAN_OUT = 'counts = pmap(lambda c: tool.worker(c, "Count."), data)\ndone(counts)'

# The worker answers "fast" chunks at once and keeps "slow" ones waiting far past the test.
SLOW_WORKER = '''
import trio

async def respond(request):
    if "fast" in request.messages[0].content:
        return "1"
    await trio.sleep(120)
    return "2"
'''


def start_run(folder: Path) -> tuple[subprocess.Popen[str], Path]:
    """Start ``ptcrun run`` on two fast and two slow chunks, in a process of its own."""
    (folder / "corpus.log").write_text("fast 1\nfast 2\nslow 3\nslow 4\n")
    (folder / "planner.json").write_text(json.dumps([block(FAN_OUT)]))
    (folder / "worker.py").write_text(SLOW_WORKER)
    out = folder / "runs"
    argv = [
        "run", str(folder / "corpus.log"), "--goal", "Count.", "--chunk-lines", "1",
        "--planner", f"scripted:{folder / 'planner.json'}", "--worker", f"scripted:{folder / 'worker.py'}",
        "--out", str(out),
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return process, out


def wait_for_fan_out(out: Path, process: subprocess.Popen[str]) -> list[dict]:
    """Wait until the fast calls have ended and the slow ones are in flight."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        found = list(out.glob("*/transcript.jsonl"))
        if found:
            lines = found[0].read_text().splitlines()
            events = [json.loads(line) for line in lines if line.endswith("}")]
            starts = [e for e in events if e["type"] == "call.start"]
            if len(starts) == 4 and len(finished_calls(events)) == 2:
                return events
        time.sleep(0.05)
    raise AssertionError("the fan-out did not start in time")


@pytest.mark.parametrize(
    ("signum", "exit_name"),
    [(signal.SIGTERM, "terminated"), (signal.SIGHUP, "hangup"), (signal.SIGINT, "interrupted")],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_a_signal_mid_fan_out_ends_the_cli_run_as_cancelled(tmp_path, signum, exit_name):
    process, out = start_run(tmp_path)
    try:
        before = wait_for_fan_out(out, process)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == EXIT_CODES[exit_name] == 128 + signum
    name = signal.Signals(signum).name
    assert f"by {name}" in stderr, stderr
    assert "transcript" in stdout
    events = events_of(transcript_of(out))
    last = assert_ends(events, "cancelled")
    assert name in last["error"]["message"]
    # The two calls that finished before the signal are in the transcript, with their values.
    done = [e for e in finished_calls(events).values() if e["ok"]]
    assert [e["value"] for e in done] == ["1", "1"]
    assert set(finished_calls(before)) <= set(finished_calls(events))
    # The sandbox child is gone.
    (start,) = [e for e in events if e["type"] == "sandbox.start"]
    status = Path(f"/proc/{start['pid']}/status")
    assert not status.exists() or "zombie" in status.read_text()


def _signalling_runtime(tmp_path: Path, signum: int) -> Runtime:
    def slow(x: int) -> int:
        """Send the signal to this process on the third item, then wait long."""
        if x == 2:
            os.kill(os.getpid(), signum)
        if x >= 2:
            time.sleep(0.2)  # a sync tool's thread is abandoned on cancel; keep it short
        return x

    return Runtime(
        planner=ScriptedProvider([block("done(pmap(lambda i: tool.slow(i), range(4)))")]),
        tools=[slow],
        transcript_dir=tmp_path,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_run_turns_sigterm_and_sighup_into_a_cancelled_result_and_restores_handlers(tmp_path, signum):
    marker = []

    def handler(*_):
        marker.append(1)

    previous = signal.signal(signum, handler)
    try:
        result = _signalling_runtime(tmp_path, signum).run("Anything.", ["a chunk"])
        assert signal.getsignal(signum) is handler  # put back once the run is over
    finally:
        signal.signal(signum, previous)
    assert result.status == "cancelled"
    assert result.signal == signum
    assert f"stopped by {signal.Signals(signum).name}" in str(result.error)
    assert marker == []  # the run took the signal; the handler it replaced did not see it
    last = assert_ends(events_of(transcript_of(tmp_path)), "cancelled")
    assert signal.Signals(signum).name in last["error"]["message"]


def test_run_in_another_thread_leaves_signal_handlers_alone(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def probe(x: int) -> int:
        """Report the SIGTERM handler in place while the run goes."""
        seen.append(signal.getsignal(signal.SIGTERM))
        return x

    rt = Runtime(planner=ScriptedProvider([block("done(tool.probe(1))")]), tools=[probe], transcript_dir=tmp_path)
    results = []
    thread = threading.Thread(target=lambda: results.append(rt.run("Anything.", ["a chunk"])))
    thread.start()
    thread.join(30)
    assert results[0].status == "done"
    assert seen == [before]


async def test_arun_leaves_sigterm_to_the_application_which_may_cancel_the_run(tmp_path):
    rt = _signalling_runtime(tmp_path, signal.SIGTERM)
    with trio.open_signal_receiver(signal.SIGTERM) as received:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def watch() -> None:
                async for _ in received:
                    scope.cancel()
                    return

            nursery.start_soon(watch)
            with scope:
                await rt.arun("Anything.", ["a chunk"])
            nursery.cancel_scope.cancel()
    assert scope.cancelled_caught
    assert_ends(events_of(transcript_of(tmp_path)), "cancelled")
