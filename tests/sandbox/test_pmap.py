"""pmap and pcalls, run in a real sandbox child with host tools."""

from __future__ import annotations

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun.sandbox import Sandbox

from .conftest import InFlight, limits, make_tool


def slow_tool(tracker: InFlight, name: str = "slow"):
    async def slow(x: int) -> int:
        return await tracker(x)

    return make_tool(slow, name)


async def test_pmap_keeps_input_order():
    # Later items finish first, so completion order is the reverse of input order.
    tracker = InFlight(delay=lambda x: 0.02 * (10 - x))
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits()) as sandbox:
        result = await sandbox.execute("done(pmap(lambda i: tool.slow(i), range(10)))")
    assert result.status == "done", result
    assert result.answer == list(range(10))
    assert tracker.finished != sorted(tracker.finished)


async def test_pmap_items_overlap_in_time():
    tracker = InFlight(delay=0.2)
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(max_concurrency=8)) as sandbox:
        result = await sandbox.execute("done(pmap(lambda i: tool.slow(i), range(8)))")
    assert result.answer == list(range(8))
    assert tracker.peak == 8


async def test_pmap_never_exceeds_the_run_concurrency_limit():
    tracker = InFlight(delay=0.02)
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(max_concurrency=4)) as sandbox:
        result = await sandbox.execute("done(pmap(lambda i: tool.slow(i), range(40), concurrency=20))")
    assert result.answer == list(range(40))
    assert tracker.peak == 4


async def test_pmap_concurrency_argument_lowers_the_bound():
    tracker = InFlight(delay=0.02)
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(max_concurrency=16)) as sandbox:
        result = await sandbox.execute("done(pmap(lambda i: tool.slow(i), range(30), concurrency=3))")
    assert result.answer == list(range(30))
    assert tracker.peak == 3


async def test_nested_pmap_shares_one_limit_without_deadlock():
    tracker = InFlight(delay=0.01)
    program = """
def inner(i):
    return pmap(lambda j: tool.slow(i * 10 + j), range(5))
done(pmap(inner, range(6)))
"""
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(max_concurrency=2)) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done", result
    assert result.answer == [[i * 10 + j for j in range(5)] for i in range(6)]
    assert tracker.peak <= 2


async def test_nested_pmap_runs_inline_when_threads_run_out():
    tracker = InFlight(delay=0.0)
    program = """
def inner(i):
    return sum(pmap(lambda j: tool.slow(j), range(4)))
done(pmap(inner, range(12), concurrency=12))
"""
    sandbox_limits = limits(max_concurrency=12, sandbox_threads=6)
    async with Sandbox(tools=[slow_tool(tracker)], limits=sandbox_limits) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done", result
    assert result.answer == [6] * 12
    assert result.threads_peak <= 6


async def test_pmap_timeout_cancels_host_calls():
    tracker = InFlight(delay=lambda x: 0.01 if x < 2 else 30)
    program = """
results = pmap(lambda i: tool.slow(i), range(6), timeout=0.5)
print([isinstance(r, Failure) for r in results])
print(results[3])
done([r.kind if isinstance(r, Failure) else r for r in results])
"""
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits()) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(program)
        assert result.status == "done", result
        assert result.answer[:2] == [0, 1]
        assert result.answer[2:] == ["TimeLimitExceeded"] * 4
        assert (
            "pmap clock expired after 0.5 s (the pmap's timeout= argument); 2 of 6 items done. "
            "Raise that timeout= argument." in result.output
        )
        # the slow calls were cancelled on the host, not left running
        await trio.sleep(0.1)
        assert sorted(tracker.cancelled) == [2, 3, 4, 5]
        assert sorted(tracker.finished) == [0, 1]


async def test_pmap_timeout_setting_is_named_when_it_fires():
    # Each item makes two 0.3 s calls: no call clock (0.4 s) fires, the pmap clock (0.5 s) does.
    tracker = InFlight(delay=0.3)
    sandbox_limits = limits(call_timeout=0.4, pmap_timeout=0.5, turn_timeout=5)
    program = "r = pmap(lambda i: [tool.slow(i), tool.slow(i)], range(2))\nprint(r[0])"
    async with Sandbox(tools=[slow_tool(tracker)], limits=sandbox_limits) as sandbox:
        result = await sandbox.execute(program)
    assert "pmap clock expired after 0.5 s (Limits.pmap_timeout); 0 of 2 items done. Raise pmap_timeout." in result.output


async def test_call_timeout_becomes_an_error_value_naming_its_clock():
    tracker = InFlight(delay=lambda x: 5 if x == 1 else 0.01)
    program = "r = pmap(lambda i: tool.slow(i), range(3))\nprint(repr(r[1]))\ndone([not isinstance(x, Failure) for x in r])"
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(call_timeout=0.3)) as sandbox:
        result = await sandbox.execute(program)
    assert result.answer == [True, False, True]
    assert "TimeLimitExceeded: call clock expired after 0.3 s (Limits.call_timeout)" in result.output


async def test_failed_items_are_falsy_error_values_in_their_slots():
    def check(x: int) -> int:
        if x % 3 == 0:
            raise ValueError(f"bad item {x}")
        return x

    program = """
r = pmap(lambda i: tool.check(i), range(7))
print(repr(r[3]))
done([(bool(x), x.index if not x else x) for x in r])
"""
    async with Sandbox(tools=[check], limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done", result
    assert result.answer == [[False, 0], [True, 1], [True, 2], [False, 3], [True, 4], [True, 5], [False, 6]]
    assert "Failure(item 3: ToolError: tool 'check' failed: ValueError: bad item 3)" in result.output


async def test_fail_fast_cancels_the_rest_and_carries_partial_results():
    tracker = InFlight(delay=lambda x: 0.01 if x < 3 else 20)

    async def boom(x: int) -> int:
        await trio.sleep(0.2)
        raise RuntimeError("boom")

    program = """
def item(i):
    if i == 5:
        return tool.boom(i)
    return tool.slow(i)
try:
    pmap(item, range(8), fail_fast=True)
except PmapError as e:
    done({"message": str(e), "results": e.results, "failed": e.failure.index})
"""
    async with Sandbox(tools=[slow_tool(tracker), boom], limits=limits()) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(program)
        await trio.sleep(0.1)
    assert result.status == "done", result
    assert result.answer["failed"] == 5
    assert result.answer["results"][:3] == [0, 1, 2]
    assert result.answer["results"][3:] == [None] * 5
    assert result.answer["message"].startswith("item 5 failed: ToolError: tool 'boom' failed: RuntimeError: boom")
    assert sorted(tracker.cancelled) == [3, 4, 6, 7]


async def test_pmap_of_empty_input_is_an_empty_list():
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute("done([pmap(len, []), pcalls()])")
    assert result.answer == [[], []]


async def test_pmap_returns_the_python_objects_the_function_returned():
    program = """
from collections import Counter
r = pmap(lambda s: (s, set(s), Counter(s)), ["ab", "bb"])
done([isinstance(r[0], tuple), isinstance(r[1][1], set), r[1][2].most_common(1)])
"""
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done", result
    assert result.answer == [True, True, [["b", 2]]]


async def test_pmap_handles_ten_thousand_items():
    async with Sandbox(data=[f"line {i}" for i in range(10_000)], limits=limits()) as sandbox:
        result = await sandbox.execute("r = pmap(len, data)\ndone([len(r), sum(r)])")
    assert result.status == "done", result
    assert result.answer == [10_000, sum(len(f"line {i}") for i in range(10_000))]


async def test_pmap_over_the_item_cap_names_the_setting():
    async with Sandbox(limits=limits(max_pmap_items=50)) as sandbox:
        result = await sandbox.execute("pmap(abs, range(51))")
    assert result.error is not None
    assert result.error.kind == "SandboxLimitExceeded"
    assert "Limits.max_pmap_items" in result.error.message


async def test_pcalls_runs_different_calls_concurrently():
    tracker = InFlight(delay=0.2)

    def upper(s: str) -> str:
        return s.upper()

    program = "done(pcalls(lambda: tool.slow(1), lambda: tool.slow(2), lambda: tool.upper('x')))"
    async with Sandbox(tools=[slow_tool(tracker), upper], limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.answer == [1, 2, "X"]
    assert tracker.peak == 2


async def test_pmap_events_describe_the_fan_out():
    events = []
    tracker = InFlight(delay=0.01)
    async with Sandbox(tools=[slow_tool(tracker)], limits=limits(), on_event=events.append) as sandbox:
        await sandbox.execute("pmap(lambda i: tool.slow(i), range(3), concurrency=2)")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sandbox.start"
    start = next(e for e in events if e["type"] == "pmap.start")
    assert start["total"] == 3 and start["concurrency"] == 2
    ends = [e for e in events if e["type"] == "item.end"]
    assert sorted(e["item"] for e in ends) == [0, 1, 2]
    assert {e["slot"] for e in ends} <= {0, 1}
    calls = [e for e in events if e["type"] == "call.end"]
    assert sorted(e["value"] for e in calls) == [0, 1, 2]
    assert all(e["pmap"] == start["pmap"] for e in calls)
    assert kinds[-1] == "pmap.end"


@settings(max_examples=25)
@given(
    count=st.integers(min_value=0, max_value=30),
    limit=st.integers(min_value=1, max_value=6),
    concurrency=st.integers(min_value=1, max_value=10),
    failing=st.sets(st.integers(min_value=0, max_value=29)),
)
def test_pmap_property_order_bound_and_failures(count, limit, concurrency, failing):
    tracker = InFlight(delay=lambda x: 0.001 * (x % 4))

    async def item(x: int) -> int:
        value = await tracker(x)
        if x in failing:
            raise ValueError(f"item {x}")
        return value

    async def main():
        async with Sandbox(tools=[make_tool(item, "item")], limits=limits(max_concurrency=limit)) as sandbox:
            return await sandbox.execute(
                f"r = pmap(lambda i: tool.item(i), range({count}), concurrency={concurrency})\n"
                "done([None if isinstance(x, Failure) else x for x in r])"
            )

    result = trio.run(main)
    assert result.status == "done", result
    assert result.answer == [None if i in failing else i for i in range(count)]
    assert tracker.peak <= min(limit, concurrency)
