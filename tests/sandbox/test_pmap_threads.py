"""The child's threads follow max_concurrency: no setting silently lowers another."""

from __future__ import annotations

import attrs
import trio

from ptcrun import Limits
from ptcrun.sandbox import Sandbox

from .conftest import InFlight, limits, make_tool


def test_sandbox_threads_left_out_follow_max_concurrency():
    assert Limits().sandbox_thread_count == 64
    assert Limits(max_concurrency=100).sandbox_thread_count == 102
    # attrs.evolve copies every field: a derived value must follow the new max_concurrency.
    assert attrs.evolve(Limits(), max_concurrency=200).sandbox_thread_count == 202
    assert Limits(max_concurrency=100, sandbox_threads=10).sandbox_thread_count == 10
    assert Limits(max_concurrency=2**63 - 1).sandbox_thread_count == 2**63 - 1


async def test_a_pmap_reaches_max_concurrency_above_the_old_64_threads():
    tracker = InFlight(delay=0.3)

    async def slow(x: int) -> int:
        return await tracker(x)

    async with Sandbox(tools=[make_tool(slow, "slow")], limits=limits(max_concurrency=80)) as sandbox:
        with trio.fail_after(30):
            result = await sandbox.execute("done(len(pmap(lambda i: tool.slow(i), range(80))))")
    assert result.status == "done", result
    assert tracker.peak == 80
