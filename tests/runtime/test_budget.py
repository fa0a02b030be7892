import math

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun.errors import BudgetExceeded
from ptcrun.runtime._budget import (
    INPUT_ESTIMATE_MARGIN,
    INPUT_OVERHEAD_TOKENS,
    Ledger,
    Usage,
    worst_case_tokens,
)


def test_reservation_refused_before_send():
    ledger = Ledger(1_000)
    held = ledger.reserve(700, what="planner turn 1")
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(400, what="worker call")
    exc = info.value
    assert str(exc) == (
        "worker call needs 400 tokens; 300 of Limits.max_tokens=1,000 remain. "
        "Raise max_tokens, or send less text."
    )
    assert (exc.setting, exc.limit, exc.observed) == ("Limits.max_tokens", 1_000, 400)
    # The refused request took nothing: the ledger is as it was.
    assert (ledger.used, ledger.reserved, ledger.remaining) == (0, 700, 300)
    held.release()
    assert ledger.remaining == 1_000


def test_reservation_may_take_exactly_what_remains():
    ledger = Ledger(100)
    ledger.reserve(60, what="a")
    ledger.reserve(40, what="b")
    assert ledger.remaining == 0
    with pytest.raises(BudgetExceeded):
        ledger.reserve(1, what="c")


@pytest.mark.parametrize("tokens", [0, -5, 1.5, True, "10"])
def test_reserve_rejects_non_positive_or_non_integer_tokens(tokens):
    ledger = Ledger(100)
    with pytest.raises(ValueError, match="positive whole number of tokens"):
        ledger.reserve(tokens, what="x")
    assert ledger.reserved == 0


@pytest.mark.parametrize("max_tokens", [0, -1, 10.0, math.inf, True])
def test_ledger_needs_a_positive_whole_max_tokens(max_tokens):
    with pytest.raises(ValueError, match="max_tokens must be a positive whole number"):
        Ledger(max_tokens)


def test_settle_refunds_the_unused_part():
    ledger = Ledger(10_000)
    r = ledger.reserve(3_000, what="worker call")
    assert (ledger.used, ledger.reserved, ledger.remaining) == (0, 3_000, 7_000)
    r.settle(input_tokens=1_200, output_tokens=300, role="worker", cost=0.002)
    assert (ledger.used, ledger.reserved, ledger.remaining) == (1_500, 0, 8_500)
    assert r.state == "settled"
    assert ledger.usage == Usage(
        worker_input_tokens=1_200, worker_output_tokens=300, cost=0.002, calls=1, worker_calls=1
    )


def test_settle_charges_real_usage_above_the_reservation():
    ledger = Ledger(1_000)
    r = ledger.reserve(100, what="worker call")
    r.settle(input_tokens=150, output_tokens=20, role="worker")
    assert ledger.used == 170
    assert ledger.remaining == 830


def test_remaining_never_goes_below_zero_after_an_overshoot():
    ledger = Ledger(100)
    ledger.reserve(100, what="planner turn 1").settle(
        input_tokens=90, output_tokens=30, role="planner"
    )
    assert ledger.used == 120
    assert ledger.remaining == 0
    assert ledger.snapshot()["tokens_left"] == 0


def test_release_gives_every_token_back():
    ledger = Ledger(500)
    r = ledger.reserve(500, what="worker call")
    r.release()
    assert (ledger.used, ledger.reserved, ledger.remaining) == (0, 0, 500)
    assert ledger.usage == Usage(cost=0.0)
    assert r.state == "released"


@pytest.mark.parametrize(
    ("first", "second"),
    [("settle", "settle"), ("settle", "release"), ("release", "settle"), ("release", "release")],
)
def test_a_reservation_closes_exactly_once(first, second):
    ledger = Ledger(1_000)
    r = ledger.reserve(100, what="worker call")

    def close(how):
        if how == "settle":
            r.settle(input_tokens=10, output_tokens=10, role="worker")
        else:
            r.release()

    close(first)
    before = (ledger.used, ledger.reserved, ledger.usage)
    with pytest.raises(RuntimeError) as info:
        close(second)
    past = "settled" if first == "settle" else "released"
    assert str(info.value) == (
        f"the reservation for worker call was already {past}; "
        "settle or release a reservation exactly once."
    )
    assert (ledger.used, ledger.reserved, ledger.usage) == before


def test_mark_sent_after_close_is_refused():
    r = Ledger(100).reserve(10, what="worker call")
    r.release()
    with pytest.raises(RuntimeError, match="already released"):
        r.mark_sent()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": -1, "output_tokens": 0, "role": "worker"}, "input_tokens must be"),
        ({"input_tokens": 0, "output_tokens": 2.5, "role": "worker"}, "output_tokens must be"),
        ({"input_tokens": 1, "output_tokens": 1, "role": "judge"}, "role must be"),
        ({"input_tokens": 1, "output_tokens": 1, "role": "worker", "cost": -0.1}, "cost must be"),
    ],
)
def test_settle_rejects_bad_usage_and_leaves_the_reservation_open(kwargs, message):
    ledger = Ledger(100)
    r = ledger.reserve(50, what="worker call")
    with pytest.raises(ValueError, match=message):
        r.settle(**kwargs)
    assert r.state == "open"
    assert ledger.reserved == 50


def test_usage_is_split_by_role():
    ledger = Ledger(100_000)
    ledger.reserve(5_000, what="planner turn 1").settle(
        input_tokens=2_000, output_tokens=500, role="planner", cost=0.01
    )
    for _ in range(3):
        ledger.reserve(1_000, what="worker call").settle(
            input_tokens=400, output_tokens=100, role="worker", cost=0.001
        )
    usage = ledger.usage
    assert (usage.planner_tokens, usage.worker_tokens, usage.total_tokens) == (2_500, 1_500, 4_000)
    assert (usage.calls, usage.planner_calls, usage.worker_calls) == (4, 1, 3)
    assert usage.cost == pytest.approx(0.013)
    assert usage.total_tokens == ledger.used


def test_cost_is_unknown_once_one_call_has_no_price():
    ledger = Ledger(10_000)
    ledger.reserve(100, what="a").settle(input_tokens=1, output_tokens=1, role="worker", cost=0.5)
    assert ledger.usage.cost == 0.5
    ledger.reserve(100, what="b").settle(input_tokens=1, output_tokens=1, role="worker")
    assert ledger.usage.cost is None
    assert ledger.snapshot()["cost"] is None


def test_snapshot_reports_what_a_program_sees():
    ledger = Ledger(10_000)
    ledger.reserve(1_000, what="planner turn 1").settle(
        input_tokens=600, output_tokens=100, role="planner", cost=0.25
    )
    ledger.reserve(2_000, what="worker call")
    assert ledger.snapshot() == {
        "tokens_left": 7_300,
        "tokens_used": 700,
        "tokens_reserved": 2_000,
        "max_tokens": 10_000,
        "cost": 0.25,
    }


def test_usage_defaults_and_totals():
    assert Usage().total_tokens == 0
    assert Usage().cost is None
    u = Usage(planner_input_tokens=1, planner_output_tokens=2, worker_input_tokens=3,
              worker_output_tokens=4, unsettled_tokens=5)
    assert (u.planner_tokens, u.worker_tokens, u.total_tokens) == (3, 7, 15)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        u.calls = 3


def test_worst_case_adds_a_margin_to_the_input_and_the_whole_output():
    assert worst_case_tokens(1_000, 500) == (
        math.ceil(1_000 * INPUT_ESTIMATE_MARGIN) + INPUT_OVERHEAD_TOKENS + 500
    )
    assert worst_case_tokens(1_000, 500) > 1_500
    assert worst_case_tokens(0, 1) == INPUT_OVERHEAD_TOKENS + 1


# --- the context manager -------------------------------------------------------------------------


def test_context_manager_settled_inside_keeps_the_settlement():
    ledger = Ledger(1_000)
    with ledger.reserve(400, what="worker call") as r:
        r.mark_sent()
        r.settle(input_tokens=100, output_tokens=50, role="worker")
    assert (ledger.used, ledger.reserved) == (150, 0)
    assert r.state == "settled"


def test_context_manager_releases_when_an_error_comes_before_send():
    ledger = Ledger(1_000)
    with pytest.raises(KeyError), ledger.reserve(400, what="worker call") as r:
        raise KeyError("prompt template")
    assert (ledger.used, ledger.reserved, r.state) == (0, 0, "released")


def test_context_manager_charges_in_full_when_an_error_comes_after_send():
    ledger = Ledger(1_000)
    # The error has to leave through the reservation's exit, so both statements stay inside.
    with pytest.raises(ConnectionError), ledger.reserve(400, what="worker call") as r:  # noqa: PT012
        r.mark_sent()
        raise ConnectionError("reset by peer")
    assert (ledger.used, ledger.reserved, r.state) == (400, 0, "charged")
    assert ledger.usage.unsettled_tokens == 400
    assert ledger.usage.calls == 0


def test_context_manager_keeps_an_explicit_release_after_send():
    ledger = Ledger(1_000)
    with ledger.reserve(400, what="worker call") as r:
        r.mark_sent()
        r.release()  # e.g. the provider answered 400 Bad Request: nothing billed
    assert (ledger.used, ledger.reserved, r.state) == (0, 0, "released")


async def test_cancelled_before_send_is_released(autojump_clock):
    ledger = Ledger(1_000)
    with trio.move_on_after(1) as scope, ledger.reserve(400, what="worker call") as r:
        await trio.sleep(10)  # e.g. waiting for a CapacityLimiter token
        r.mark_sent()
    assert scope.cancelled_caught
    assert (ledger.used, ledger.reserved, r.state, r.sent) == (0, 0, "released", False)


async def test_cancelled_after_send_is_charged_in_full(autojump_clock):
    ledger = Ledger(1_000)
    with trio.move_on_after(1) as scope, ledger.reserve(400, what="worker call") as r:
        r.mark_sent()
        await trio.sleep(10)  # the HTTP request in flight
        r.settle(input_tokens=1, output_tokens=1, role="worker")
    assert scope.cancelled_caught
    assert (ledger.used, ledger.reserved, r.state) == (400, 0, "charged")
    with pytest.raises(RuntimeError, match="already charged"):
        r.settle(input_tokens=1, output_tokens=1, role="worker")


# --- the property: the limit holds under any concurrent workload ---------------------------------

OUTCOMES = ("settle", "release", "error_before_send", "error_after_send",
            "cancel_before_send", "cancel_after_send")


@st.composite
def requests(draw):
    reserve = draw(st.integers(1, 3_000))
    real = draw(st.integers(0, reserve))
    return {
        "reserve": reserve,
        "input": draw(st.integers(0, real)) if real else 0,
        "real": real,
        "outcome": draw(st.sampled_from(OUTCOMES)),
        "wait": draw(st.integers(0, 5)),       # steps before reserving
        "flight": draw(st.integers(0, 5)),     # steps the request is in flight
        "role": draw(st.sampled_from(["planner", "worker"])),
    }


class _Boom(Exception):
    pass


@settings(deadline=None)
@given(
    max_tokens=st.integers(1, 20_000),
    workload=st.lists(requests(), min_size=1, max_size=40),
    concurrency=st.integers(1, 16),
)
def test_used_never_exceeds_max_tokens_under_concurrent_requests(max_tokens, workload, concurrency):
    """Real usage is drawn <= its reservation, as the runtime guarantees by capping output."""
    ledger = Ledger(max_tokens)
    sent: set[int] = set()
    refused: set[int] = set()
    expected_charge: dict[int, int] = {}

    def check():
        assert ledger.reserved >= 0
        assert ledger.used + ledger.reserved <= max_tokens
        assert ledger.used <= max_tokens

    async def one(i, req, limiter):
        async with limiter:
            await trio.sleep(req["wait"])
            try:
                r = ledger.reserve(req["reserve"], what=f"request {i}")
            except BudgetExceeded:
                refused.add(i)
                check()
                return
            check()
            outcome = req["outcome"]
            with trio.CancelScope() as scope:
                try:
                    with r:
                        if outcome == "cancel_before_send":
                            scope.cancel()
                            await trio.sleep(1)
                        if outcome == "error_before_send":
                            raise _Boom
                        r.mark_sent()
                        sent.add(i)
                        if outcome == "cancel_after_send":
                            scope.cancel()
                        await trio.sleep(req["flight"])
                        check()
                        if outcome == "error_after_send":
                            raise _Boom
                        if outcome == "release":
                            r.release()
                        else:
                            r.settle(input_tokens=req["input"],
                                     output_tokens=req["real"] - req["input"],
                                     role=req["role"])
                except _Boom:
                    pass
            check()
            expected_charge[i] = {
                "settle": req["real"],
                "error_after_send": req["reserve"],
                "cancel_after_send": req["reserve"],
            }.get(outcome, 0)
            assert r.state != "open"

    async def main():
        limiter = trio.CapacityLimiter(concurrency)
        async with trio.open_nursery() as nursery:
            for i, req in enumerate(workload):
                nursery.start_soon(one, i, req, limiter)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    check()
    assert not (refused & sent), "a refused request was sent"
    assert refused | set(expected_charge) == set(range(len(workload)))
    assert ledger.reserved == 0
    assert ledger.used == sum(expected_charge.values())
    assert ledger.usage.total_tokens == ledger.used
    settled = sum(1 for i in expected_charge if workload[i]["outcome"] == "settle")
    assert ledger.usage.calls == settled
