"""Budget slices: a sub-run spends from a share of its caller's ledger, never more."""

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun.errors import BudgetExceeded
from ptcrun.runtime._budget import Ledger


def test_a_slice_is_reserved_in_the_caller_and_is_the_sub_run_limit():
    ledger = Ledger(10_000)
    with ledger.open_slice(4_000, what="sub-run") as sub:
        assert sub.max_tokens == 4_000
        assert ledger.reserved == 4_000
        assert ledger.remaining == 6_000
        with sub.reserve(1_000, what="worker call") as r:
            r.mark_sent()
            r.settle(input_tokens=300, output_tokens=200, role="worker", cost=0.5)
        assert sub.remaining == 3_500
        assert ledger.used == 0  # charged to the caller when the slice closes
    assert ledger.reserved == 0
    assert ledger.used == 500
    assert ledger.usage.worker_input_tokens == 300
    assert ledger.usage.worker_calls == 1
    assert ledger.usage.cost == 0.5


def test_a_sub_run_cannot_spend_more_than_its_slice():
    ledger = Ledger(10_000)
    with ledger.open_slice(2_000, what="sub-run") as sub:
        sub.reserve(1_500, what="planner turn 1")
        with pytest.raises(BudgetExceeded) as info:
            sub.reserve(600, what="worker call")
    assert info.value.limit == 2_000
    assert "worker call needs 600 tokens" in str(info.value)


def test_a_slice_that_does_not_fit_is_refused_before_anything_runs():
    ledger = Ledger(1_000)
    with pytest.raises(BudgetExceeded):
        ledger.open_slice(1_001, what="tool.agent's sub-run")
    assert ledger.reserved == 0


def test_a_request_still_in_flight_when_the_slice_closes_is_charged_in_full():
    ledger = Ledger(10_000)
    sliced = ledger.open_slice(3_000, what="sub-run")
    straggler = sliced.ledger.reserve(800, what="worker call")
    straggler.mark_sent()
    sliced.close()
    assert ledger.used == 800
    assert ledger.usage.unsettled_tokens == 800
    # Settling it later changes nothing: it was charged, and its slice is gone.
    straggler.settle(input_tokens=10, output_tokens=10, role="worker")
    assert ledger.used == 800
    with pytest.raises(BudgetExceeded) as info:
        sliced.ledger.reserve(1, what="worker call")
    assert "sub-run has ended" in str(info.value)


def test_a_slice_closes_once():
    ledger = Ledger(100)
    sliced = ledger.open_slice(10, what="sub-run")
    sliced.close()
    with pytest.raises(RuntimeError, match="already closed"):
        sliced.close()


def test_an_unknown_cost_in_a_slice_makes_the_run_cost_unknown():
    ledger = Ledger(10_000)
    with ledger.open_slice(1_000, what="sub-run") as sub:
        sub.reserve(10, what="w").settle(input_tokens=1, output_tokens=1, role="planner", cost=None)
    assert ledger.usage.cost is None


# -- a property over random trees of sub-runs ------------------------------------------------


@st.composite
def spends(draw):
    reserve = draw(st.integers(1, 2_000))
    real = draw(st.integers(0, reserve))
    return {
        "reserve": reserve,
        "real": real,
        "outcome": draw(st.sampled_from(["settle", "release", "cancel_after_send", "straggle"])),
        "wait": draw(st.integers(0, 4)),
        "flight": draw(st.integers(0, 4)),
    }


def trees(depth=0):
    node = st.fixed_dictionaries({
        "slice": st.integers(1, 8_000),
        "wait": st.integers(0, 4),
        "spends": st.lists(spends(), max_size=6),
    })
    if depth >= 3:
        return node.map(lambda n: {**n, "children": []})
    return st.builds(
        lambda n, kids: {**n, "children": kids},
        node,
        st.lists(st.deferred(lambda: trees(depth + 1)), max_size=4),
    )


@settings(deadline=None)
@given(max_tokens=st.integers(1, 20_000), roots=st.lists(trees(), min_size=1, max_size=5))
def test_slices_are_never_overspent_however_sub_runs_nest_and_overlap(max_tokens, roots):
    """Sub-runs open slices at random times, spend through reservations that settle, are
    released, are cancelled in flight or are still in flight when the sub-run ends, and start
    sub-runs of their own. Every ledger of the tree keeps ``used + reserved <= max_tokens`` at
    every step, and the run is charged exactly what the requests that ran cost."""
    run = Ledger(max_tokens)
    ledgers = [run]
    expected = 0

    def check():
        for ledger in ledgers:
            assert ledger.reserved >= 0
            if ledger._closed_for is None:
                assert ledger.used + ledger.reserved + ledger.held <= ledger.max_tokens
            assert ledger.used <= ledger.max_tokens

    async def spend(ledger, s):
        nonlocal expected
        await trio.sleep(s["wait"])
        try:
            r = ledger.reserve(s["reserve"], what="request")
        except BudgetExceeded:
            check()
            return
        check()
        with trio.CancelScope() as scope, r:
            r.mark_sent()
            if s["outcome"] == "cancel_after_send":
                scope.cancel()
            await trio.sleep(s["flight"])
            if s["outcome"] == "release":
                r.release()
            elif s["outcome"] == "settle":
                r.settle(input_tokens=0, output_tokens=s["real"], role="worker")
        check()
        expected += {"settle": s["real"], "release": 0, "cancel_after_send": s["reserve"]}[s["outcome"]]

    async def sub_run(caller, node):
        nonlocal expected
        await trio.sleep(node["wait"])
        try:
            sliced = caller.open_slice(node["slice"], what="sub-run")
        except BudgetExceeded:
            check()
            return
        ledgers.append(sliced.ledger)
        check()
        stragglers = []
        with sliced as ledger:
            async with trio.open_nursery() as nursery:
                for s in node["spends"]:
                    if s["outcome"] == "straggle":
                        # Reserved and sent, never closed before the sub-run ends.
                        try:
                            r = ledger.reserve(s["reserve"], what="straggler")
                        except BudgetExceeded:
                            continue
                        r.mark_sent()
                        stragglers.append(r)
                        expected += s["reserve"]
                    else:
                        nursery.start_soon(spend, ledger, s)
                for child in node["children"]:
                    nursery.start_soon(sub_run, ledger, child)
        check()
        for r in stragglers:  # they end after their slice closed: nothing more is charged
            r.settle(input_tokens=0, output_tokens=0, role="worker")
        check()

    async def main():
        async with trio.open_nursery() as nursery:
            for root in roots:
                nursery.start_soon(sub_run, run, root)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check()
    assert run.reserved == 0
    assert run.used == expected
    assert run.used <= max_tokens
