"""Attacks on the boundary itself: stderr floods, stale threads, huge messages, hostile frames,
a host that dies. Each must end with a result, never a hung or crashed host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import trio

from ptcrun.sandbox import Sandbox

from .conftest import limits


async def test_a_flood_on_the_childs_stderr_cannot_block_it():
    # Each generator's finally raises at garbage collection; Python prints "Exception ignored"
    # for each, to stderr: far more than a pipe holds.
    program = """
def gen():
    try:
        yield 1
    finally:
        1 / 0
for i in range(3000):
    g = gen()
    next(g)
    g = None
print('finished')
"""
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(program)
    assert result.status == "ok", result.error
    assert result.output == "finished\n"


async def test_items_of_a_timed_out_pmap_cannot_reach_the_next_program():
    program = """
def spin(i):
    n = 0
    for k in range(3_000_000):
        n += k
    print('late output from item', i)
    return n
r = pmap(spin, range(3), timeout=0.2)
print('after the pmap')
"""
    async with Sandbox(limits=limits(sandbox_cpu_seconds=10)) as sandbox:
        with trio.fail_after(15):
            first = await sandbox.execute(program)
            second = await sandbox.execute("print('next program')")
    assert "after the pmap" in first.output
    assert "late output" not in first.output
    assert first.restarted
    assert second.output == "next program\n"
    assert "still computing" in second.note


async def test_an_answer_too_big_to_cross_is_an_error_not_a_crash():
    async with Sandbox(limits=limits()) as sandbox:
        big = await sandbox.execute("kept = 1\ndone('x' * 9_000_000)")
        after = await sandbox.execute("done(kept)")
    assert big.status == "error"
    assert "too big" in big.error.message
    assert not big.restarted
    assert after.answer == 1


async def test_tool_arguments_too_big_to_cross_are_a_catchable_error():
    def echo(text: str) -> int:
        return len(text)

    program = "try:\n    tool.echo('y' * 9_000_000)\nexcept ValueError as e:\n    done(str(e))"
    async with Sandbox(tools=[echo], limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done"
    assert "cannot leave the sandbox in one message" in result.answer


async def test_hostile_frames_from_the_child_end_in_a_result_not_a_host_crash():
    # With the language layer off the program can write raw frames on the child's own pipe.
    forge = """
import json, struct, sys
fd = int(sys.argv[2])
body = json.dumps({"op": "cancel", "ids": 5}).encode()
import os
os.write(fd, struct.pack(">I", len(body)) + body)
import time
time.sleep(5)
"""
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(forge)
            after = await sandbox.execute("print('fresh child')")
    assert result.error.kind == "SandboxError"
    assert "broke the protocol" in result.error.message
    assert after.output == "fresh child\n"


def test_the_child_does_not_outlive_a_killed_host(tmp_path):
    host = textwrap.dedent(
        """
        import sys, trio
        from ptcrun.sandbox import Sandbox

        async def slow() -> int:
            await trio.sleep(60)
            return 1

        async def main():
            async with Sandbox(tools=[slow]) as sandbox:
                print(sandbox._process.pid, flush=True)
                await sandbox.execute("tool.slow()")

        trio.run(main)
        """
    )
    with subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True) as process:
        child_pid = int(process.stdout.readline())
        time.sleep(0.5)  # the child is now waiting on the host's reply
        process.send_signal(signal.SIGKILL)
        process.wait()
    for _ in range(50):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child_pid, signal.SIGKILL)
        raise AssertionError("the sandbox child outlived its host")
