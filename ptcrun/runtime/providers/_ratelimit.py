"""Rate limits steer how many requests a provider has in flight.

A 10,000-call fan-out at ``max_concurrency`` would otherwise keep sending at full width into a
provider that answers 429: each request retries on its own, and the provider sees a storm. A
:class:`Throttle` sits between the run's limiter and the provider and keeps an allowed width,
*additive increase, multiplicative decrease* as TCP does:

- a 429 or 529, or a reply whose rate-limit headers say less than a tenth of a limit remains
  (``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining}``,
  ``x-ratelimit-{limit,remaining}-{requests,tokens}``), halves the width, at most once per round:
  a signal from a request sent before the last cut says nothing about the new width, so it is
  not counted again;
- every other successful reply adds ``1 / width``, so the width grows by one per round of
  replies, back to ``max_concurrency``, but not before the wait a ``retry-after`` asked for has
  passed.

The width is never below 1 nor above the ceiling, and each change (its new value, the old one
and why) is reported, for the transcript's ``concurrency.change``. Providers report their
replies' headers with :func:`observe_reply`, and the retry loop each failed attempt with
:func:`observe_failure`; the throttle is put around requests with :func:`steering`, and each
attempt of :func:`~._http.call_with_retries` holds one of its slots, so a request waiting to
retry holds none.

A provider's limits are its account's, not one role's: the planner, the workers and every
sub-run's planner and workers that call the same API with the same key spend the same limits.
So a run tree keeps one throttle per account (:class:`Throttles`, keyed by
:func:`account_of`): a 429 answered to the planner narrows the workers' width too, and the
planner's requests take a slot of it like any other.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping

import attrs
import trio

__all__ = [
    "Change",
    "Throttle",
    "Throttles",
    "account_fingerprint",
    "account_of",
    "observe_failure",
    "observe_reply",
    "steering",
    "throttled",
]

#: Below this share of a limit left, a reply counts as a rate-limit signal.
LOW_SHARE = 0.1

_HEADER_PAIRS = tuple(
    (f"anthropic-ratelimit-{kind}-limit", f"anthropic-ratelimit-{kind}-remaining", kind)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
) + tuple(
    (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", kind) for kind in ("requests", "tokens")
)


@attrs.frozen
class Change:
    """The allowed width changed: from ``previous`` to ``allowed`` (of ``ceiling``), because of
    ``reason`` (``"429 rate limited"``, ``"3 of 50 requests left"``, ``"recovered"``)."""

    previous: int
    allowed: int
    ceiling: int
    reason: str


@attrs.define
class _Ticket:
    throttle: Throttle
    round: int


class Throttle:
    """The allowed number of requests in flight to one provider, steered by its rate limits.

    Args:
        ceiling: the most it ever allows (the run's ``max_concurrency``).
        on_change: called with each :class:`Change`, on the event loop; keep it quick.
    """

    def __init__(self, ceiling: int, *, on_change: Callable[[Change], object] | None = None) -> None:
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise ValueError(f"a throttle's ceiling must be a whole number >= 1; got {ceiling!r}")
        self.ceiling = ceiling
        self._width = float(ceiling)
        self._limiter = trio.CapacityLimiter(min(ceiling, 2**31))
        self._round = 0
        self._hold_until = -math.inf
        self._on_change = on_change
        #: The smallest width it came down to, and how many cuts it made.
        self.lowest = ceiling
        self.cuts = 0

    @property
    def allowed(self) -> int:
        """Requests allowed in flight now."""
        return int(self._width)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the allowed slots while sending one attempt."""
        async with self._limiter:
            token = _ticket.set(_Ticket(self, self._round))
            try:
                yield
            finally:
                _ticket.reset(token)

    def observe_reply(self, round: int, headers: Mapping[str, str]) -> None:
        """Steer by a successful reply's rate-limit headers: cut when a limit is nearly spent,
        else grow."""
        low = _low_limit(headers)
        if low is not None:
            self._cut(round, low)
        else:
            self._grow()

    def observe_failure(self, round: int, status: int | None, retry_after: float | None) -> None:
        """Steer by a failed attempt: a 429 or 529 cuts, and its ``retry-after`` holds growth."""
        if status not in (429, 529):
            return
        if retry_after is not None:
            self._hold_until = max(self._hold_until, trio.current_time() + retry_after)
        self._cut(round, "429 rate limited" if status == 429 else "529 overloaded")

    def _cut(self, round: int, reason: str) -> None:
        if round != self._round:
            return  # sent before the last cut: its news is already counted
        self._round += 1
        self.cuts += 1
        self._set(max(1.0, math.floor(self._width / 2)), reason)

    def _grow(self) -> None:
        if self._width >= self.ceiling or trio.current_time() < self._hold_until:
            return
        self._set(min(float(self.ceiling), self._width + 1 / self._width), "recovered")

    def _set(self, width: float, reason: str) -> None:
        before = int(self._width)
        self._width = width
        after = int(width)
        if after == before:
            return
        self.lowest = min(self.lowest, after)
        self._limiter.total_tokens = after
        if self._on_change is not None:
            self._on_change(Change(previous=before, allowed=after, ceiling=self.ceiling, reason=reason))


def account_fingerprint(*parts: str | None) -> str:
    """A short digest of what names an account (its API's URL and key), so that providers can
    say whether they share limits without keeping the key itself where it would be printed."""
    digest = hashlib.sha256()
    for part in parts:
        data = (part or "").encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def account_of(provider: object) -> Hashable:
    """What ``provider``'s rate limits belong to: its ``rate_limit_account`` (the HTTP providers
    give a fingerprint of their class, base URL and API key), or the provider object itself."""
    account = getattr(provider, "rate_limit_account", None)
    return account if isinstance(account, str) and account else id(provider)


class Throttles:
    """One :class:`Throttle` per account, for a run and all its sub-runs.

    Args:
        ceiling: each throttle's ceiling (the run's ``max_concurrency``).
        on_change: called with each :class:`Change` of a throttle and the names of the providers
            of its account (``"anthropic:claude-haiku-4-5, anthropic:claude-sonnet-4-5"``).
    """

    def __init__(self, ceiling: int, *, on_change: Callable[[str, Change], object] | None = None) -> None:
        self.ceiling = ceiling
        self._on_change = on_change
        self._throttles: dict[Hashable, Throttle] = {}
        self._names: dict[Hashable, list[str]] = {}
        # Providers known by id are kept alive, so that their id is not reused by another.
        self._held: list[object] = []

    def of(self, provider: object) -> Throttle:
        """The throttle of ``provider``'s account (made on first use)."""
        account = account_of(provider)
        name = getattr(provider, "name", None)
        label = name if isinstance(name, str) else type(provider).__name__
        names = self._names.setdefault(account, [])
        if label not in names:
            names.append(label)  # a change names every provider of the account
        throttle = self._throttles.get(account)
        if throttle is None:
            report = self._on_change
            throttle = Throttle(
                self.ceiling,
                on_change=None if report is None else lambda change: report(", ".join(names), change),
            )
            self._throttles[account] = throttle
            if isinstance(account, int):
                self._held.append(provider)
        return throttle


_throttle: contextvars.ContextVar[Throttle | None] = contextvars.ContextVar("ptcrun throttle", default=None)
_ticket: contextvars.ContextVar[_Ticket | None] = contextvars.ContextVar(
    "ptcrun throttle ticket", default=None
)


@contextlib.contextmanager
def steering(throttle: Throttle | None) -> Iterator[None]:
    """Send the requests made inside the block through ``throttle`` (``None``: none)."""
    token = _throttle.set(throttle)
    try:
        yield
    finally:
        _throttle.reset(token)


def throttled() -> contextlib.AbstractAsyncContextManager[None]:
    """One slot of the throttle the current request is steered by, or nothing to wait for."""
    throttle = _throttle.get()
    return contextlib.nullcontext() if throttle is None else throttle.slot()


def observe_reply(headers: Mapping[str, str]) -> None:
    """Tell the throttle of the current attempt (if any) that it succeeded, with these headers.

    Providers call it; failures are told by :func:`~._http.call_with_retries`, which sees
    every provider's ``AttemptFailed``."""
    ticket = _ticket.get()
    if ticket is not None:
        ticket.throttle.observe_reply(ticket.round, headers)


def observe_failure(status: int | None, retry_after: float | None) -> None:
    """Tell the throttle of the current attempt (if any) that it failed with ``status``."""
    ticket = _ticket.get()
    if ticket is not None:
        ticket.throttle.observe_failure(ticket.round, status, retry_after)


def _low_limit(headers: Mapping[str, str]) -> str | None:
    """``"3 of 50 requests left"`` when a limit is nearly spent, else ``None``."""
    for limit_name, remaining_name, kind in _HEADER_PAIRS:
        limit, remaining = headers.get(limit_name), headers.get(remaining_name)
        if limit is None or remaining is None:
            continue
        try:
            whole, left = float(limit), float(remaining)
        except ValueError:
            continue
        if whole > 0 and math.isfinite(left) and left < LOW_SHARE * whole:
            return f"{left:,.0f} of {whole:,.0f} {kind} left"
    return None
