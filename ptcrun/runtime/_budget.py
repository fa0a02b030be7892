"""The token budget: one ledger for the planner and every worker of a run.

The problem: a run may spend at most ``Limits.max_tokens``, yet an LLM request's cost is known
only after its reply, and dozens of worker requests are in flight at once. Checking after the
reply (as some systems do) lets a burst of parallel calls overshoot the limit by their whole
size. So every request first *reserves* its worst case (estimated input plus the maximum output
it may write, see :func:`worst_case_tokens`). A request that cannot be reserved is never sent and
fails with :class:`~ptcrun.errors.BudgetExceeded`. After the reply, the reservation is *settled*
with the real usage and the unused part goes back to the pool::

    with ledger.reserve(worst_case_tokens(prompt_tokens, max_output), what="worker call") as r:
        r.mark_sent()
        reply = await provider.complete(...)
        r.settle(input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                 role="worker", cost=reply.cost)

Reservations in flight count as spent, so ``used + reserved <= max_tokens`` always holds at the
moment of a reservation, and ``used <= max_tokens`` holds for the whole run as long as no
request uses more than it reserved.

The planner must keep the tokens of its next turn, or a wide fan-out that spends the budget also
ends the run before the planner can read what failed. So while a program runs, the runtime
*holds back* that turn's worst case (:meth:`Ledger.holding_back`): a worker reservation that
would eat into it is refused like one that does not fit, with a message that says so::

    with ledger.holding_back(next_turn_tokens, for_what="the planner's next turn"):
        await sandbox.execute(program)      # its workers cannot spend next_turn_tokens

A sub-run (``tool.agent``) gets a *slice*: its tokens are reserved in its caller's ledger like
one request's worst case, and the sub-run spends them through a ledger of its own whose limit
is the slice (:meth:`Ledger.open_slice`). When the sub-run ends, the slice is closed: what the
sub-run spent is charged to the caller, by role, and the rest goes back. A slice is a
reservation, so the caller's invariant holds however many slices are open, and the sub-run's
own ledger keeps it within its slice::

    with ledger.open_slice(20_000, what="tool.agent sub-run") as sub:
        await run_sub_run(ledger=sub)       # sub.max_tokens == 20_000
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from types import TracebackType
from typing import Literal, Self

from .._result import Usage
from ..errors import BudgetExceeded

__all__ = [
    "INPUT_ESTIMATE_MARGIN",
    "INPUT_OVERHEAD_TOKENS",
    "Ledger",
    "Reservation",
    "Slice",
    "Usage",
    "input_room",
    "worst_case_tokens",
]

Role = Literal["planner", "worker"]

#: Input token counts come from tiktoken's cl100k_base, which is not every provider's tokenizer:
#: other tokenizers count the same text differently, and for some texts by tens of percent more.
#: Reserving a quarter more keeps real usage within the reservation for ordinary prose and code.
INPUT_ESTIMATE_MARGIN = 1.25
#: Tokens a provider adds around the text it is given (roles, message framing) per request.
INPUT_OVERHEAD_TOKENS = 32


def worst_case_tokens(input_tokens: int, max_output_tokens: int) -> int:
    """Return the tokens to reserve for one request: its input with a safety margin, plus output.

    Args:
        input_tokens: the prompt's length as counted locally (cl100k_base).
        max_output_tokens: the most the reply may write; the request must cap its output there.
    """
    return math.ceil(input_tokens * INPUT_ESTIMATE_MARGIN) + INPUT_OVERHEAD_TOKENS + max_output_tokens


def input_room(free_tokens: int, max_output_tokens: int) -> int:
    """The most input tokens a request may have for its worst case to fit ``free_tokens``.

    The inverse of :func:`worst_case_tokens`; negative when not even an empty input fits.
    """
    return math.floor((free_tokens - INPUT_OVERHEAD_TOKENS - max_output_tokens) / INPUT_ESTIMATE_MARGIN)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0; got {value!r}.")
    return value


class Ledger:
    """One token ledger for the planner and every worker of a run.

    It belongs to one trio run and is not thread-safe: use it from trio tasks only. Its methods
    never await, so a check and the change it allows cannot be interleaved with another task's.
    """

    def __init__(self, max_tokens: int) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive whole number; got {max_tokens!r}.")
        self.max_tokens = max_tokens
        self._used = 0
        self._reserved = 0
        self._by_role = {
            "planner": [0, 0, 0],  # input tokens, output tokens, calls
            "worker": [0, 0, 0],
        }
        self._unsettled = 0
        self._cost = 0.0
        self._cost_known = True
        self._held = 0
        self._held_for = ""
        #: Set when this ledger is a slice that was closed: it takes no more reservations.
        self._closed_for: str | None = None

    def __repr__(self) -> str:
        held = f", held={self._held}" if self._held else ""
        return f"Ledger(max_tokens={self.max_tokens}, used={self._used}, reserved={self._reserved}{held})"

    @property
    def used(self) -> int:
        """Tokens charged: settled requests and requests charged in full."""
        return self._used

    @property
    def reserved(self) -> int:
        """Tokens held by reservations in flight."""
        return self._reserved

    @property
    def held(self) -> int:
        """Tokens held back from new reservations (:meth:`holding_back`); 0 outside a hold."""
        return self._held

    @property
    def remaining(self) -> int:
        """Tokens a new reservation may take: ``max_tokens - used - reserved - held``, never
        below 0."""
        return max(0, self.max_tokens - self._used - self._reserved - self._held)

    @contextlib.contextmanager
    def holding_back(self, tokens: int, *, for_what: str) -> Iterator[None]:
        """Keep ``tokens`` of the budget from every reservation made inside the block.

        The hold is a floor, not a reservation: nothing is charged, and the tokens are free
        again when the block exits (however it exits). Holds do not nest: a hold replaces the
        one before it for the block's duration.

        Args:
            tokens: what to keep, a whole number >= 0 (0 holds nothing back).
            for_what: whom the tokens are kept for, as a refusal names it
                (``"the planner's next turn"``).

        Raises:
            ValueError: ``tokens`` is not a whole number >= 0.
        """
        _check_count("tokens held back", tokens)
        before = self._held, self._held_for
        self._held, self._held_for = tokens, for_what
        try:
            yield
        finally:
            self._held, self._held_for = before

    def reserve(self, tokens: int, *, what: str) -> Reservation:
        """Reserve a request's worst case, or refuse it before anything is sent.

        Args:
            tokens: the most the request can cost, input plus output (:func:`worst_case_tokens`).
            what: the request as a message names it (``"worker call"``, ``"planner turn 3"``).

        Raises:
            BudgetExceeded: ``tokens`` is more than :attr:`remaining`. Nothing is charged. When
                only the tokens held back stand in the way, the message says whom they are
                kept for.
            ValueError: ``tokens`` is not a positive whole number.
        """
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
            raise ValueError(f"a reservation must be a positive whole number of tokens; got {tokens!r}.")
        if self._closed_for is not None:
            raise BudgetExceeded(
                f"{what} needs {tokens:,} tokens, but {self._closed_for} has ended and its slice of "
                f"{self.max_tokens:,} tokens was given back.",
                setting="Limits.max_tokens",
                limit=self.max_tokens,
                observed=tokens,
            )
        if self._used + self._reserved + self._held + tokens > self.max_tokens:
            if self._held:
                raise self._refused_by_hold(what, tokens)
            raise BudgetExceeded.for_request(
                what=what, needed=tokens, remaining=self.remaining, limit=self.max_tokens
            )
        self._reserved += tokens
        return Reservation(self, tokens, what)

    def open_slice(self, tokens: int, *, what: str) -> Slice:
        """Reserve ``tokens`` for a sub-run and return its own ledger of that limit.

        Close the slice (use it as a context manager) when the sub-run has ended: what it
        spent is then charged here and the rest is freed.

        Raises:
            BudgetExceeded: ``tokens`` is more than :attr:`remaining`; nothing is reserved.
            ValueError: ``tokens`` is not a positive whole number.
        """
        return Slice(self.reserve(tokens, what=what))

    def _refused_by_hold(self, what: str, needed: int) -> BudgetExceeded:
        unspent = max(0, self.max_tokens - self._used - self._reserved)
        held = min(self._held, unspent)
        return BudgetExceeded(
            f"{what} needs {needed:,} tokens; {unspent:,} of Limits.max_tokens={self.max_tokens:,} "
            f"remain, and {held:,} of them are held back for {self._held_for}, so {unspent - held:,} "
            f"may be spent. Raise max_tokens, or send less text.",
            setting="Limits.max_tokens",
            limit=self.max_tokens,
            observed=needed,
        )

    @property
    def usage(self) -> Usage:
        """What has been charged so far, by role (reservations in flight are not included)."""
        planner, worker = self._by_role["planner"], self._by_role["worker"]
        return Usage(
            planner_input_tokens=planner[0],
            planner_output_tokens=planner[1],
            worker_input_tokens=worker[0],
            worker_output_tokens=worker[1],
            unsettled_tokens=self._unsettled,
            cost=self._cost if self._cost_known else None,
            calls=planner[2] + worker[2],
            planner_calls=planner[2],
            worker_calls=worker[2],
        )

    def snapshot(self) -> dict[str, int | float | None]:
        """The budget as a program sees it in ``budget.remaining``: a JSON-able dict."""
        return {
            "tokens_left": self.remaining,
            "tokens_used": self._used,
            "tokens_reserved": self._reserved,
            "max_tokens": self.max_tokens,
            "cost": self._cost if self._cost_known else None,
        }


class Reservation:
    """Tokens held for one LLM request until it is settled, released or charged.

    Made by :meth:`Ledger.reserve`. Close it exactly once with :meth:`settle` (the reply came
    back with its usage) or :meth:`release` (no usage: the request was never sent, or the
    provider rejected it). A second close raises ``RuntimeError``.

    As a context manager it closes itself if the block exits while it is still open, by an
    exception, by cancellation, or by a plain return. It is charged conservatively: when
    :meth:`mark_sent` was called, the request may have reached the provider and a cancelled
    HTTP request can still be billed, so the whole reservation is charged (as
    ``Usage.unsettled_tokens``); when it was not, the tokens are released.
    """

    __slots__ = ("_ledger", "_sent", "_state", "tokens", "what")

    def __init__(self, ledger: Ledger, tokens: int, what: str) -> None:
        self._ledger = ledger
        self.tokens = tokens
        self.what = what
        self._sent = False
        self._state: Literal["open", "settled", "released", "charged"] = "open"

    def __repr__(self) -> str:
        return (
            f"Reservation(what={self.what!r}, tokens={self.tokens}, state={self._state!r}, "
            f"sent={self._sent})"
        )

    @property
    def state(self) -> Literal["open", "settled", "released", "charged"]:
        """``open`` until closed; then how it was closed (``charged``: in full, unsettled)."""
        return self._state

    @property
    def sent(self) -> bool:
        """Whether :meth:`mark_sent` was called."""
        return self._sent

    def _close(self, state: Literal["settled", "released", "charged"]) -> None:
        if self._state != "open":
            raise RuntimeError(
                f"the reservation for {self.what} was already {self._state}; settle or release a "
                f"reservation exactly once."
            )
        self._state = state
        if self._ledger._closed_for is None:
            self._ledger._reserved -= self.tokens

    def mark_sent(self) -> None:
        """Record that the request is about to leave: from now on it may be billed."""
        if self._state != "open":
            raise RuntimeError(f"the reservation for {self.what} is already {self._state}.")
        self._sent = True

    def settle(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        role: Role,
        cost: float | None = None,
        calls: int = 1,
    ) -> None:
        """Replace the reservation with the request's real usage; the unused part is freed.

        ``calls`` is how many requests the reservation stood for (a batch's, reserved and
        settled as one); they count in ``Usage.calls``.

        Real usage above the reservation (the provider counted more input than estimated) is
        charged anyway: the ledger records what was spent. ``used <= max_tokens`` is guaranteed
        only while every request stays within its reservation, which the runtime ensures by
        capping output at the reserved maximum and reserving input with a margin.

        Args:
            cost: the request's price in USD, or None when no price is known.

        Raises:
            RuntimeError: the reservation was already closed.
            ValueError: a negative count, an unknown role or a negative cost.
        """
        _check_count("input_tokens", input_tokens)
        _check_count("output_tokens", output_tokens)
        _check_count("calls", calls)
        if role not in ("planner", "worker"):
            raise ValueError(f"role must be 'planner' or 'worker'; got {role!r}.")
        if cost is not None and not cost >= 0:
            raise ValueError(f"cost must be >= 0 USD or None; got {cost!r}.")
        self._close("settled")
        ledger = self._ledger
        if ledger._closed_for is not None:
            return  # its slice was closed with this request charged in full
        ledger._used += input_tokens + output_tokens
        counts = ledger._by_role[role]
        counts[0] += input_tokens
        counts[1] += output_tokens
        counts[2] += calls
        if cost is None:
            ledger._cost_known = False
        else:
            ledger._cost += cost

    def release(self) -> None:
        """Give the tokens back: the request was never sent, or failed before any usage.

        Raises:
            RuntimeError: the reservation was already closed.
        """
        self._close("released")

    def _charge_in_full(self) -> None:
        self._close("charged")
        if self._ledger._closed_for is not None:
            return
        self._ledger._used += self.tokens
        self._ledger._unsettled += self.tokens

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "open":
            return
        if self._sent:
            self._charge_in_full()
        else:
            self.release()


class Slice:
    """A sub-run's share of its caller's budget: a reservation there, a ledger of its own here.

    Made by :meth:`Ledger.open_slice`. :attr:`ledger` has ``max_tokens`` equal to the slice, so
    the sub-run's own reservations can never take more than the slice. :meth:`close` charges
    the caller with what the sub-run spent (its settled usage by role, its unsettled tokens,
    its cost) and frees the rest; a reservation still open in the slice then is charged in
    full, as a request cancelled in flight is. After the close the slice's ledger refuses
    every reservation, so a straggler cannot spend what was given back.
    """

    __slots__ = ("_reservation", "ledger")

    def __init__(self, reservation: Reservation) -> None:
        self._reservation = reservation
        self.ledger = Ledger(reservation.tokens)

    def __repr__(self) -> str:
        return f"Slice(what={self._reservation.what!r}, {self.ledger!r})"

    @property
    def closed(self) -> bool:
        return self._reservation.state != "open"

    def close(self) -> None:
        """Charge the caller's ledger with what the slice spent; free the rest.

        Raises:
            RuntimeError: the slice was already closed.
        """
        sub = self.ledger
        if self.closed:
            raise RuntimeError(f"the slice for {self._reservation.what} was already closed.")
        self._reservation._close("settled")
        sub._closed_for = self._reservation.what
        caller = self._reservation._ledger
        in_flight, sub._reserved = sub._reserved, 0
        sub._used += in_flight
        sub._unsettled += in_flight
        caller._used += sub._used
        caller._unsettled += sub._unsettled
        for role, counts in sub._by_role.items():
            mine = caller._by_role[role]
            for i, n in enumerate(counts):
                mine[i] += n
        if sub._cost_known:
            caller._cost += sub._cost
        else:
            caller._cost_known = False

    def __enter__(self) -> Ledger:
        return self.ledger

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.closed:
            self.close()
