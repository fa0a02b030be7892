"""One budgeted LLM request: check the window, reserve the worst case, send, settle.

Planner turns and worker calls both go through :func:`budgeted_complete`, so the ledger sees
every request the same way: a request that cannot reserve its worst case (estimated input plus
``max_tokens`` of output) is never sent.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Literal

import attrs
import trio

from .. import errors
from ..corpus._tokens import count_tokens
from ..transcript._schema import Event, LLMEnd, LLMRetry, LLMStart
from ._budget import Ledger, worst_case_tokens
from ._cache import ReplyCache, Source
from .providers._base import Provider, Reply, Request, call_provider
from .providers._http import Retry, reporting_retries
from .providers._ratelimit import Throttle, steering

__all__ = ["budgeted_complete", "request_tokens", "reuse_reply"]

_THREAD_COUNT_CHARS = 8_000

Emit = Callable[[Event], object]


@functools.lru_cache(maxsize=32)
def _system_tokens(system: str) -> int:
    # System prompts are static templates: count each once per process.
    return count_tokens(system)


def request_tokens(request: Request) -> int:
    """The request's input size as counted locally (system prompt plus every message)."""
    return _system_tokens(request.system) + sum(count_tokens(m.content) for m in request.messages)


async def budgeted_complete(
    provider: Provider,
    request: Request,
    *,
    ledger: Ledger,
    role: Literal["planner", "worker"],
    what: str,
    emit: Emit,
    span: str,
    parent: str | None,
    cache: ReplyCache | None = None,
    throttle: Throttle | None = None,
    input_tokens: int | None = None,
) -> Reply:
    """Send ``request`` to ``provider`` under the run's token budget; return the reply.

    With ``throttle``, the request's attempts wait for its slots (rate limits steer how many
    are in flight). ``input_tokens``, when the caller has counted the request already (from
    counts of its parts), saves counting it again; it must be at least what
    :func:`request_tokens` would count, since the reservation rests on it.

    With ``cache``, a request it can answer (an identical one of this run, the cache file, a
    resumed run) is not sent: its reply costs nothing and ``llm.end`` says where it came from.

    Raises:
        BudgetExceeded: the worst case does not fit what is left; nothing was sent.
        ToolError: (workers) the request cannot fit the model's context window.
        ProviderError: the provider failed after its retries, or broke its contract (raised
            another exception, returned something that is not a Reply): every provider
            failure arrives as this class, through ``call_provider``.
    """
    if cache is None:
        return await _send(provider, request, ledger=ledger, role=role, what=what, emit=emit, span=span,
                           parent=parent, throttle=throttle, input_tokens=input_tokens)
    async with cache.claim(provider, request) as claim:
        if claim.hit is not None:
            assert claim.source is not None
            return reuse_reply(provider, request, claim.hit, claim.source, role=role, emit=emit, span=span,
                          parent=parent)
        reply = await _send(provider, request, ledger=ledger, role=role, what=what, emit=emit, span=span,
                            parent=parent, throttle=throttle, input_tokens=input_tokens)
        claim.keep(reply)
    return reply


def reuse_reply(
    provider: Provider,
    request: Request,
    reply: Reply,
    source: Source,
    *,
    role: Literal["planner", "worker"],
    emit: Emit,
    span: str,
    parent: str | None,
) -> Reply:
    """Answer with ``reply`` at no cost; the transcript records the request, marked ``cached``."""
    emit(LLMStart(
        span=span,
        parent=parent,
        role=role,
        provider=provider.name,
        system=request.system,
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        max_tokens=request.max_tokens,
        reserved_tokens=0,
    ))
    emit(LLMEnd(
        span=span,
        parent=parent,
        role=role,
        status="ok",
        text=reply.text,
        cost=None if provider.price is None else 0.0,
        model=reply.model,
        stop_reason=reply.stop_reason,
        seconds=0.0,
        cached=source,
    ))
    return attrs.evolve(reply, input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0)


async def _send(
    provider: Provider,
    request: Request,
    *,
    ledger: Ledger,
    role: Literal["planner", "worker"],
    what: str,
    emit: Emit,
    span: str,
    parent: str | None,
    throttle: Throttle | None = None,
    input_tokens: int | None = None,
) -> Reply:
    if input_tokens is None:
        input_tokens = await _count(request)
    needed = worst_case_tokens(input_tokens, request.max_tokens)
    if input_tokens + request.max_tokens > provider.context_window:
        message = (
            f"{what} needs about {input_tokens:,} input tokens plus {request.max_tokens:,} output "
            f"tokens, more than the {provider.context_window:,}-token context window of "
            f"{provider.name}. Send less text per call (split the chunk), or lower max_tokens."
        )
        if role == "worker":
            raise errors.ToolError(message, tool="worker")
        raise errors.ConfigError(message)
    reservation = ledger.reserve(needed, what=what)
    started = time.monotonic()
    emit(LLMStart(
        span=span,
        parent=parent,
        role=role,
        provider=provider.name,
        system=request.system,
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        max_tokens=request.max_tokens,
        reserved_tokens=needed,
    ))
    def report(retry: Retry) -> None:
        emit(LLMRetry(span=span, parent=parent, role=role, attempt=retry.attempt, reason=retry.reason,
                      wait=retry.wait, status=retry.status, request_id=retry.request_id))

    with reservation:
        reservation.mark_sent()
        try:
            with reporting_retries(report), steering(throttle):
                reply = await call_provider(provider, request)
        except errors.ProviderError as exc:
            # The provider refused or failed after its retries: nothing was billed. A server
            # that answered 2xx with a body we could not read did bill, and a request
            # cancelled in flight may have been billed: those keep the full charge.
            if exc.status is None or not 200 <= exc.status < 300:
                reservation.release()
            emit(LLMEnd(
                span=span,
                parent=parent,
                role=role,
                status="error",
                error=errors.to_payload(exc),
                seconds=time.monotonic() - started,
            ))
            raise
        except BaseException as exc:
            emit(LLMEnd(
                span=span,
                parent=parent,
                role=role,
                status="cancelled" if _is_cancel(exc) else "error",
                error=errors.to_payload(exc),
                seconds=time.monotonic() - started,
            ))
            raise
        cost = provider.price.cost(reply) if provider.price is not None else None
        reservation.settle(
            input_tokens=reply.input_tokens,  # the whole input, cached parts included
            output_tokens=reply.output_tokens,
            role=role,
            cost=cost,
        )
    emit(LLMEnd(
        span=span,
        parent=parent,
        role=role,
        status="ok",
        text=reply.text,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cache_read_tokens=reply.cache_read_tokens,
        cache_write_tokens=reply.cache_write_tokens,
        cost=cost,
        model=reply.model,
        stop_reason=reply.stop_reason,
        seconds=time.monotonic() - started,
    ))
    return reply


async def _count(request: Request) -> int:
    """The request's input as the ledger counts it, when its caller has not counted it."""
    if sum(len(m.content) for m in request.messages) > _THREAD_COUNT_CHARS:
        # Counting a 4,000-token chunk takes milliseconds; off the event loop, a wide fan-out
        # counts on both cores and keeps the loop answering the sandbox meanwhile.
        return await trio.to_thread.run_sync(request_tokens, request)
    return request_tokens(request)


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, (trio.Cancelled, KeyboardInterrupt))
