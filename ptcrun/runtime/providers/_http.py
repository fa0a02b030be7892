"""What the HTTP providers share: the retry policy, its messages, and the per-run client.

Both HTTP providers turn one attempt's failure into :class:`AttemptFailed`, and
:func:`call_with_retries` decides what happens next, so they fail the same way with the same
messages: which server answered what, after how many attempts, and which constructor setting
would change the outcome. Each retry is also told, as it happens, to whoever wraps the request in
:func:`reporting_retries` (the runtime writes it to the transcript as ``llm.retry``).
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Generic, Literal, TypeVar

import attrs
import trio

from ...errors import ConfigError, ProviderError
from ._ratelimit import observe_failure, throttled

__all__ = [
    "MAX_BACKOFF",
    "AttemptFailed",
    "PerRunClient",
    "Retry",
    "call_with_retries",
    "check_retry_settings",
    "is_retryable_status",
    "reporting_retries",
    "retry_after_seconds",
    "status_summary",
    "token_count",
]

T = TypeVar("T")

#: The longest wait between attempts when the server gives no ``retry-after``, in seconds.
MAX_BACKOFF = 30.0


class AttemptFailed(Exception):
    """One HTTP attempt failed; raised by a provider's attempt, read by :func:`call_with_retries`.

    Attributes:
        summary: what went wrong, short: ``"529 overloaded"``, ``"no reply within 2 s"``.
        status: the HTTP status, when there was a response.
        retryable: whether another attempt may succeed.
        retry_after: seconds the server asked us to wait, when it did.
        fix: what the user should change or do, as a sentence.
        setting: the constructor setting that bears on it besides ``max_retries``
            (``"timeout=2"``).
        request_id: the server's id for the attempt, when it sent one.
    """

    def __init__(
        self,
        summary: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        fix: str = "",
        setting: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.fix = fix
        self.setting = setting
        self.request_id = request_id


@attrs.frozen
class Retry:
    """One failed attempt that :func:`call_with_retries` is about to retry.

    Attributes:
        attempt: the attempt that failed, from 1.
        reason: what went wrong, short (``AttemptFailed.summary``).
        wait: seconds until the next attempt.
        status: the HTTP status, when there was a response.
        request_id: the server's id for the failed attempt, when it sent one.
    """

    attempt: int
    reason: str
    wait: float
    status: int | None
    request_id: str | None


_on_retry: contextvars.ContextVar[Callable[[Retry], object] | None] = contextvars.ContextVar(
    "ptcrun retry reporter", default=None
)


@contextlib.contextmanager
def reporting_retries(report: Callable[[Retry], object]) -> Iterator[None]:
    """Call ``report`` with each :class:`Retry` of the requests sent inside the block.

    A context variable carries ``report`` down to the retry loop, so providers need no
    parameter for it and a request sent with no reporter around it retries silently. The
    reporter runs on the event loop before the wait; keep it quick.
    """
    token = _on_retry.set(report)
    try:
        yield
    finally:
        _on_retry.reset(token)


def check_retry_settings(
    cls_name: str, *, max_retries: int, timeout: float, backoff: float, max_retry_wait: float
) -> None:
    """Refuse settings the retry loop cannot use, naming the argument as the user spells it."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(
            f"{cls_name}(max_retries=...) must be a whole number >= 0; got {max_retries!r}."
        )
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"{cls_name}(timeout=...) must be seconds > 0; got {timeout!r}.")
    if not (isinstance(backoff, (int, float)) and 0 <= backoff < math.inf):
        raise ConfigError(f"{cls_name}(backoff=...) must be seconds >= 0; got {backoff!r}.")
    if not (isinstance(max_retry_wait, (int, float)) and max_retry_wait >= 0):
        raise ConfigError(
            f"{cls_name}(max_retry_wait=...) must be seconds >= 0 (math.inf for no cap); "
            f"got {max_retry_wait!r}."
        )


def is_retryable_status(status: int) -> bool:
    """Rate limits (429), overload (529), server errors (5xx), timeouts (408) and lock
    conflicts (409) pass; other 4xx mean the request itself is wrong."""
    return status in (408, 409, 429) or status >= 500


def status_summary(status: int, phrase: str) -> str:
    """``"429 rate limited"``, ``"529 overloaded"``, ``"503 service unavailable"``: the status
    and what it means, in lower case. A 429 always reads "rate limited", whatever the server
    calls it, so the message says what happened."""
    if status == 429:
        return "429 rate limited"
    phrase = phrase.strip().lower()
    return f"{status} {phrase}" if phrase else str(status)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asks the client to wait: ``retry-after-ms``, else ``retry-after``
    as seconds or as an HTTP date. ``None`` when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return max(value, 0.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)
    return max(value, 0.0) if math.isfinite(value) else None


def token_count(value: object, field: str) -> int:
    """A token count from a reply's usage, which must be a whole number >= 0.

    Raises:
        ValueError: saying which field held what, e.g. ``usage.prompt_tokens is 'many'``.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} is {value!r:.40}, not a whole number of tokens")
    return value


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    provider: str,
    what: str,
    cls_name: str,
    max_retries: int,
    backoff: float,
    max_retry_wait: float,
    purpose: Literal["planner", "worker"],
    rng: random.Random,
) -> T:
    """Run ``attempt`` until it returns, retrying retryable ``AttemptFailed`` up to
    ``max_retries`` more times.

    Between attempts it waits what the server asked (``retry-after``), or else
    ``backoff * 2**(n-1)`` seconds (at most ``MAX_BACKOFF`` and ``max_retry_wait``), scaled
    by a random factor in [0.5, 1] so that many workers throttled together do not come back
    together. The wait is a ``trio.sleep``: the run's clocks can cancel it.

    It gives up at once, rather than wait for nothing, when the server asks for more than
    ``max_retry_wait`` seconds, or when the wait would outlast the deadline of the cancel
    scopes around the call (a run's clock): then the message names what the server said,
    not the clock that would have fired in the middle of the wait. ``purpose`` says which
    clock that is likely to be.

    Raises:
        ProviderError: at once for a failure that is not retryable, with its fix; after the
            last attempt otherwise, naming the attempts and the settings that raise them.
    """
    for n in range(1, max_retries + 2):
        try:
            # Each attempt holds a slot of the throttle steering the request, if any; a request
            # waiting to retry holds none.
            async with throttled():
                try:
                    return await attempt()
                except AttemptFailed as failure:
                    observe_failure(failure.status, failure.retry_after)
                    raise
        except AttemptFailed as failure:
            attempts = f" after {n} attempt{'s' if n > 1 else ''}"
            after = attempts if n > 1 else ""
            if not failure.retryable:
                raise _failed(failure, provider, f"{what} failed{after}: {failure.summary}") from failure
            if n > max_retries:
                settings = ", ".join(filter(None, [failure.setting, f"max_retries={max_retries}"]))
                head = f"{what} failed{attempts}: {failure.summary} ({cls_name}({settings}))"
                raise _failed(failure, provider, head) from failure
            if failure.retry_after is not None:
                delay = failure.retry_after
                if delay > max_retry_wait:
                    head = (
                        f"{what} failed{after}: {failure.summary}: the server asked to wait "
                        f"{delay:g} s, more than max_retry_wait={max_retry_wait:g} s"
                    )
                    fix = f"Try again later, or raise {cls_name}(max_retry_wait=...)."
                    raise _failed(failure, provider, head, fix=fix) from failure
                asked = f"the server asked to wait {delay:g} s"
            else:
                delay = min(backoff * 2 ** (n - 1), MAX_BACKOFF, max_retry_wait)
                delay *= 0.5 + rng.random() / 2
                asked = f"the next attempt would wait {_seconds(delay)} s"
            left = trio.current_effective_deadline() - trio.current_time()
            if delay >= left:
                clock = "turn" if purpose == "planner" else "call"
                head = (
                    f"{what} failed{after}: {failure.summary}; {asked}, but the request's "
                    f"deadline is {_seconds(max(left, 0.0))} s away (Limits.{clock}_timeout)"
                )
                fix = f"Try again later, or raise {clock}_timeout."
                raise _failed(failure, provider, head, fix=fix) from failure
            report = _on_retry.get()
            if report is not None:
                report(Retry(attempt=n, reason=failure.summary, wait=delay, status=failure.status,
                             request_id=failure.request_id))
        await trio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def _seconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _failed(failure: AttemptFailed, provider: str, head: str, *, fix: str | None = None) -> ProviderError:
    """The ``ProviderError`` a failure ends in: ``head``, the fix, and the request id."""
    fix = failure.fix if fix is None else fix
    message = f"{head}." + (f" {fix}" if fix else "")
    if failure.request_id:
        message += f" Request id {failure.request_id}."
    return ProviderError(message, provider=provider, status=failure.status, request_id=failure.request_id)


C = TypeVar("C")


class PerRunClient(Generic[C]):
    """One HTTP client per trio run, closed when that run ends.

    A pooled HTTP client is bound to the event loop that opened its connections, but a
    provider is built before ``trio.run`` and may serve several runs. So each run gets its
    own client, opened on first use and closed by a system task when the run's main task
    finishes (trio cancels system tasks then), which leaves no socket for the garbage
    collector to complain about.
    """

    def __init__(self, open: Callable[[], C], close: Callable[[C], Awaitable[object]]) -> None:
        self._open = open
        self._close = close
        self._var: trio.lowlevel.RunVar[C] = trio.lowlevel.RunVar("ptcrun provider client")

    def get(self) -> C:
        """The current run's client, opened on first use."""
        try:
            return self._var.get()
        except LookupError:
            pass
        client = self._open()
        self._var.set(client)
        trio.lowlevel.spawn_system_task(self._close_at_exit, client, name="ptcrun client closer")
        return client

    async def _close_at_exit(self, client: C) -> None:
        try:
            await trio.sleep_forever()
        finally:
            # Closing drops idle sockets; it should be instant, but never hold the run's exit
            # hostage to a peer that will not answer.
            with trio.move_on_after(5) as scope:
                scope.shield = True
                try:
                    await self._close(client)
                except Exception:
                    pass  # nothing useful to do with a failed close at exit
