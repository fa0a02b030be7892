"""The provider contract: a request in, text and real token usage out.

Everything the runtime knows about an LLM goes through :class:`Provider`: one async method,
``complete(Request) -> Reply``, plus the three facts the budget needs before sending (a name for
logs, the context window, the price). The runtime calls every provider through
:func:`call_provider`, the one place that holds a provider to that contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, Protocol, runtime_checkable

import attrs

from ...errors import ProviderError

__all__ = ["Message", "Price", "Provider", "Reply", "Request", "call_provider"]


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
    prompt is sent many times, as the planner's is); providers without caching ignore it.
    ``purpose`` labels logs, transcripts and messages (which clock bounds the request).
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
# The boundary every request crosses.

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


async def call_provider(provider: Provider, request: Request) -> Reply:
    """Ask ``provider`` to complete ``request``; every way it can fail ends in ``ProviderError``.

    A provider may be ours, the user's, or a script, and it talks to servers that answer
    truncated JSON, HTML pages or strings where numbers belong. The runtime sends every
    planner and worker request through here, so whatever goes wrong reaches it as one class:

    - a ``ProviderError`` passes as it is;
    - any other ``Exception`` (a body the SDK could not parse, a scripted ``respond()`` that
      raised, a bug) becomes a ``ProviderError`` that names the provider and the exception,
      keeps it as ``__cause__``, and carries the HTTP status and request id when the
      exception (or one it was raised from) has them;
    - a returned value that is not a ``Reply`` with text and whole token counts becomes a
      ``ProviderError`` too, before the budget reads it.

    ``trio.Cancelled``, ``KeyboardInterrupt`` and every other ``BaseException`` pass untouched:
    they are the caller stopping the request, not the provider failing.

    Raises:
        ProviderError: the provider failed or broke its contract.
    """
    name = _provider_name(provider)
    try:
        reply = await provider.complete(request)
    except ProviderError:
        raise
    except Exception as exc:
        status, request_id = _response_facts(exc)
        detail = _describe(exc)
        if status is not None:
            detail += f" (HTTP {status})"
        message = (
            f"{name} failed: {detail}. The provider raised it instead of replying; fix the "
            "provider (a scripted provider's respond()) or the server it calls."
        )
        if request_id:
            message += f" Request id {request_id}."
        raise ProviderError(message, provider=name, status=status, request_id=request_id) from exc
    problem = _reply_problem(reply)
    if problem is not None:
        raise ProviderError(
            f"{name} returned {problem}; complete() must return a Reply with text and whole "
            "token counts. Fix the provider.",
            provider=name,
        )
    return reply


def _provider_name(provider: object) -> str:
    """The provider's ``name``, or its class name when it has no usable one."""
    name = getattr(provider, "name", None)
    return name if isinstance(name, str) and name else type(provider).__name__


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception may break its own __str__
        text = ""
    kind = type(exc).__name__
    return f"{kind}: {text[:300]}" if text else kind


def _response_facts(exc: BaseException) -> tuple[int | None, str | None]:
    """``(HTTP status, request id)`` from ``exc`` or the exceptions it was raised from.

    SDK errors carry ``status_code`` and ``request_id``; httpx's carry a ``response`` with
    headers. Any attribute may be missing or may raise (httpx raises on an unset request),
    so each read is guarded.
    """
    status: int | None = None
    request_id: str | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and (status is None or request_id is None):
        seen.add(id(current))
        response = _attribute(current, "response")
        if status is None:
            for code in (_attribute(current, "status_code"), _attribute(response, "status_code")):
                if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                    status = code
                    break
        if request_id is None:
            found = _attribute(current, "request_id")
            headers = _attribute(response, "headers")
            if not isinstance(found, str) and isinstance(headers, Mapping):
                try:
                    found = headers.get("request-id") or headers.get("x-request-id")
                except Exception:
                    found = None
            if isinstance(found, str) and found:
                request_id = found[:200]
        current = current.__cause__ or current.__context__
    return status, request_id


def _attribute(obj: object, name: str) -> object:
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _reply_problem(reply: object) -> str | None:
    """What makes ``reply`` unusable as a ``Reply``, or ``None``."""
    if not isinstance(reply, Reply):
        return f"a {type(reply).__name__}, not a Reply"
    if not isinstance(reply.text, str):
        return f"a Reply whose text is a {type(reply.text).__name__}, not a str"
    for field in _TOKEN_FIELDS:
        value = getattr(reply, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"a Reply whose {field} is {value!r:.40}, not a whole number >= 0"
    if not isinstance(reply.model, str):
        return f"a Reply whose model is a {type(reply.model).__name__}, not a str"
    if reply.stop_reason is not None and not isinstance(reply.stop_reason, str):
        return f"a Reply whose stop_reason is a {type(reply.stop_reason).__name__}, not a str"
    return None
