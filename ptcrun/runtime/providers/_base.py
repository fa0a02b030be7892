"""The provider contract: a request in, text and real token usage out.

Everything the runtime knows about an LLM goes through :class:`Provider`: one async method,
``complete(Request) -> Reply``, plus the three facts the budget needs before sending (a name for
logs, the context window, the price). The HTTP providers share the retry policy and the
per-run client kept here, so they fail the same way with the same messages.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Generic, Literal, Protocol, TypeVar, runtime_checkable

import attrs
import trio

from ...errors import ConfigError, ProviderError

__all__ = ["Message", "Price", "Provider", "Reply", "Request"]

T = TypeVar("T")


@attrs.frozen
class Message:
    """One turn of a conversation."""

    role: Literal["user", "assistant"] = attrs.field(
        validator=attrs.validators.in_(("user", "assistant"))
    )
    content: str


def _message_tuple(messages: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(messages)


@attrs.frozen
class Request:
    """What to ask a model.

    ``max_tokens`` caps the reply; the budget reserves it before the request is sent.
    ``cache_system`` asks the provider to cache the system prompt (worth it when the same long
    prompt is sent many times, as the planner's is); providers without caching ignore it, as
    they ignore ``purpose``, which only labels logs and transcripts.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_message_tuple)
    system: str = ""
    max_tokens: int = 1024
    purpose: Literal["planner", "worker"] = "worker"
    cache_system: bool = False
    temperature: float | None = None


@attrs.frozen
class Reply:
    """A model's answer and what it cost in tokens.

    ``input_tokens`` is the whole input the model read, cached or not: it is what the budget
    charges. ``cache_read_tokens`` and ``cache_write_tokens`` say how much of it was read from
    or written to the provider's prompt cache; they only change the price.
    """

    text: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str = ""
    #: Why the model stopped, as the provider says it ("end_turn", "max_tokens", "stop", ...).
    stop_reason: str | None = None


@attrs.frozen
class Price:
    """What a model costs, in USD per million tokens.

    Cache prices left as ``None`` are charged at the plain input price.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def cost(self, reply: Reply) -> float:
        """The reply's cost in USD."""
        read = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        write = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        uncached = max(reply.input_tokens - reply.cache_read_tokens - reply.cache_write_tokens, 0)
        return (
            uncached * self.input_per_mtok
            + reply.cache_read_tokens * read
            + reply.cache_write_tokens * write
            + reply.output_tokens * self.output_per_mtok
        ) / 1_000_000


@runtime_checkable
class Provider(Protocol):
    """An LLM the runtime can call: one async method that takes messages and returns text.

    ``complete`` must be cancellable (the run's clocks cancel it) and must either return a
    ``Reply`` with the real usage or raise ``ProviderError``; retries happen inside it.

    Attributes:
        name: a short label for logs and errors, e.g. ``"anthropic:claude-haiku-4-5"``.
        context_window: tokens the model accepts, input and output together.
        price: what it costs, or ``None`` when unknown (costs are then not reported).
    """

    name: str
    context_window: int
    price: Price | None

    async def complete(self, request: Request) -> Reply: ...


# ---------------------------------------------------------------------------------------------
# Shared by the HTTP providers.

#: The longest wait between attempts when the server gives no ``retry-after``, in seconds.
MAX_BACKOFF = 30.0


class AttemptFailed(Exception):
    """One HTTP attempt failed; raised by a provider's attempt, read by :func:`call_with_retries`.

    Attributes:
        summary: what went wrong, short: ``"529 overloaded"``, ``"no reply within 2 s"``.
        status: the HTTP status, when there was a response.
        retryable: whether another attempt may succeed.
        retry_after: seconds the server asked us to wait, when it did.
        fix: for a failure that is not retried, what the user should change.
        setting: the constructor setting that bears on it besides ``max_retries``
            (``"timeout=2"``).
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
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.fix = fix
        self.setting = setting


def check_retry_settings(
    cls_name: str, *, max_retries: int, timeout: float, backoff: float
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


def is_retryable_status(status: int) -> bool:
    """Rate limits (429), overload (529), server errors (5xx), timeouts (408) and lock
    conflicts (409) pass; other 4xx mean the request itself is wrong."""
    return status in (408, 409, 429) or status >= 500


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


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    provider: str,
    what: str,
    cls_name: str,
    max_retries: int,
    backoff: float,
    rng: random.Random,
) -> T:
    """Run ``attempt`` until it returns, retrying retryable ``AttemptFailed`` up to
    ``max_retries`` more times.

    Between attempts it waits what the server asked (``retry-after``), or else
    ``backoff * 2**(n-1)`` seconds (at most ``MAX_BACKOFF``), scaled by a random factor in
    [0.5, 1] so that many workers throttled together do not come back together. The wait is a
    ``trio.sleep``: the run's clocks can cancel it.

    Raises:
        ProviderError: at once for a failure that is not retryable, with its fix; after the
            last attempt otherwise, naming the attempts and the settings that raise them.
    """
    for n in range(1, max_retries + 2):
        try:
            return await attempt()
        except AttemptFailed as failure:
            if not failure.retryable:
                fix = f" {failure.fix}" if failure.fix else ""
                raise ProviderError(
                    f"{what} failed: {failure.summary}.{fix}",
                    provider=provider,
                    status=failure.status,
                ) from failure
            if n > max_retries:
                settings = ", ".join(filter(None, [failure.setting, f"max_retries={max_retries}"]))
                raise ProviderError(
                    f"{what} failed after {n} attempt{'s' if n > 1 else ''}: "
                    f"{failure.summary} ({cls_name}({settings})).",
                    provider=provider,
                    status=failure.status,
                ) from failure
            if failure.retry_after is not None:
                delay = failure.retry_after
            else:
                delay = min(backoff * 2 ** (n - 1), MAX_BACKOFF) * (0.5 + rng.random() / 2)
        await trio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


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
