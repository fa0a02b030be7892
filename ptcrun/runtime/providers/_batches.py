"""Anthropic's Message Batches API: many requests submitted at once, answered within a day, at
half the list price.

:class:`AnthropicBatches` is the provider's side of a batched fan-out: submit requests (cut into
batches within the API's limits), ask how a batch is doing, read its results, cancel it. It
speaks through the official SDK's ``client.messages.batches`` and the provider's retry policy
(a 429 or 5xx on create, retrieve or cancel is retried like any request). The runtime's side
(budget, polling, transcript, slots) is :mod:`ptcrun.runtime._batches`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ...errors import ProviderError
from ._base import Message, Price, Reply, Request
from ._http import call_with_retries

if TYPE_CHECKING:
    from ._anthropic import AnthropicProvider

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "AnthropicBatches",
    "BatchBody",
    "BatchResult",
    "BatchState",
    "Entry",
    "batch_price",
]

#: The API's limits on one batch: requests, and bytes of the request body.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256_000_000
#: What a batch is charged, as a share of the list price.
BATCH_DISCOUNT = 0.5

Kind = Literal["succeeded", "errored", "canceled", "expired"]
#: A batch entry's JSON in two parts, the request's own and the part its fan-out shares.
Entry = tuple[bytes, bytes]


#: What a batch create's body holds around its entries: ``{"requests":[...]}``.
_BODY_OPEN, _BODY_CLOSE = b'{"requests":[', b"]}"
#: Bytes of body handed to the HTTP layer at a time.
_CHUNK_BYTES = 1 << 20


@attrs.frozen
class BatchBody:
    """A batch create's request body, kept as its entries (:meth:`AnthropicBatches.entry`).

    It is posted as a stream of them with its length, never joined into one object: a body of
    100,000 requests is tens of megabytes, and joined it would be held twice (the entries and
    the body), then a third time by the HTTP layer, which copies what it is given to send.
    """

    entries: Sequence[Entry]

    @property
    def size(self) -> int:
        """Its length in bytes."""
        commas = max(len(self.entries) - 1, 0)
        return len(_BODY_OPEN) + sum(len(h) + len(t) for h, t in self.entries) + commas + len(_BODY_CLOSE)

    async def stream(self) -> AsyncIterator[bytes]:
        """The body in chunks of about a megabyte."""
        chunk = [_BODY_OPEN]
        size = 0
        for n, (head, tail) in enumerate(self.entries):
            if n:
                chunk.append(b",")
            chunk += (head, tail)
            size += len(head) + len(tail)
            if size >= _CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
        chunk.append(_BODY_CLOSE)
        yield b"".join(chunk)


def batch_price(price: Price | None) -> Price | None:
    """The price of a request sent in a batch: half of each list price (cache prices too)."""
    if price is None:
        return None

    def half(value: float | None) -> float | None:
        return None if value is None else value * BATCH_DISCOUNT

    return Price(
        price.input_per_mtok * BATCH_DISCOUNT,
        price.output_per_mtok * BATCH_DISCOUNT,
        cache_read_per_mtok=half(price.cache_read_per_mtok),
        cache_write_per_mtok=half(price.cache_write_per_mtok),
    )


@attrs.frozen
class BatchState:
    """How a batch stands: ``in_progress``, ``canceling`` or ``ended``, and its counts."""

    status: str
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int

    @property
    def ended(self) -> bool:
        return self.status == "ended"


@attrs.frozen
class BatchResult:
    """One request's result: its ``custom_id``, how it ended, and its reply or error."""

    custom_id: str
    kind: Kind
    reply: Reply | None = None
    error: str | None = None


class AnthropicBatches:
    """The Message Batches API of one :class:`~._anthropic.AnthropicProvider`.

    It reaches into the provider's private client, parameters and error handling: the two are
    one provider, written in two modules.
    """

    def __init__(self, provider: AnthropicProvider) -> None:
        self._provider = provider
        self._tails: dict[bytes, bytes] = {}

    def entry(self, custom_id: str, request: Request) -> Entry:
        """One batch entry, ``{"custom_id", "params"}``, as the JSON the request body holds, in
        two parts: what is the request's own (its ``custom_id`` and messages) and the rest
        (model, output limit, system prompt), which is the same for every request of a fan-out
        and is kept once, shared by all of them.

        Entries are encoded one at a time into a :class:`BatchBody`, so a batch of 100,000
        requests is never held as 100,000 dicts and again as the SDK's copy."""
        params = self._provider._params(request, batch=True)
        messages = params.pop("messages")
        # '{"custom_id": .., "params": {"messages": [..]' + ', "model": .., "system": ..}' + '}'
        head = _json({"custom_id": custom_id, "params": {"messages": messages}})[:-2]
        tail = b", " + _json(params)[1:] + b"}"
        return head, self._tails.setdefault(tail, tail)

    @staticmethod
    def request_of(entry: Entry) -> Request:
        """The request an :meth:`entry` was encoded from (for the transcript, when the cache
        answers it instead: an entry is all a batch keeps of its requests)."""
        params = json.loads(b"".join(entry))["params"]
        blocks: Any = params.get("system") or ""
        cached = isinstance(blocks, list)
        system = "".join(block["text"] for block in blocks) if cached else str(blocks)
        return Request(
            messages=tuple(Message(m["role"], m["content"]) for m in params["messages"]),
            system=system,
            max_tokens=params["max_tokens"],
            purpose="worker",
            cache_system=cached,
            temperature=params.get("temperature"),
        )

    async def create(self, body: BatchBody) -> str:
        """Submit one batch; return its id."""
        headers = {"Content-Type": "application/json", "Content-Length": str(body.size)}

        async def attempt() -> Any:
            from anthropic.types.messages import MessageBatch

            client = self._provider._client()
            # The body goes as it is, streamed: the SDK's create() would copy every entry to
            # check and encode it, holding the batch twice more while it is posted. With its
            # length given, it is sent as one plain body, not in chunked encoding.
            return await self._provider._sdk_call(lambda: client.post(
                "/v1/messages/batches", cast_to=MessageBatch, content=body.stream(),
                options={"headers": headers},
            ))

        batch = await self._retrying(attempt, "batch create")
        batch_id = getattr(batch, "id", None)
        if not isinstance(batch_id, str) or not batch_id:
            raise ProviderError(
                f"{self._provider.name}: the batch create reply has no id. Check that base_url serves "
                "the Anthropic Message Batches API.",
                provider=self._provider.name,
            )
        return batch_id

    async def retrieve(self, batch_id: str) -> BatchState:
        """How batch ``batch_id`` stands now."""

        async def attempt() -> Any:
            client = self._provider._client()
            return await self._provider._sdk_call(lambda: client.messages.batches.retrieve(batch_id))

        batch = await self._retrying(attempt, "batch retrieve")
        counts = getattr(batch, "request_counts", None)

        def count(name: str) -> int:
            value = getattr(counts, name, 0)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        status = getattr(batch, "processing_status", None)
        return BatchState(
            status=status if isinstance(status, str) else "unknown",
            processing=count("processing"),
            succeeded=count("succeeded"),
            errored=count("errored"),
            canceled=count("canceled"),
            expired=count("expired"),
        )

    async def cancel(self, batch_id: str) -> None:
        """Ask the API to cancel batch ``batch_id``; requests not yet processed end ``canceled``."""

        async def attempt() -> Any:
            client = self._provider._client()
            return await self._provider._sdk_call(lambda: client.messages.batches.cancel(batch_id))

        await self._retrying(attempt, "batch cancel")

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """The results of an ended batch, in the order the API streams them (not input order)."""
        from ._anthropic import to_reply

        client = self._provider._client()
        stream: Any = await self._provider._sdk_call(lambda: client.messages.batches.results(batch_id))
        async for line in stream:
            custom_id = getattr(line, "custom_id", None)
            result = getattr(line, "result", None)
            kind = getattr(result, "type", None)
            if not isinstance(custom_id, str) or kind not in ("succeeded", "errored", "canceled", "expired"):
                continue  # a line this version does not know; its slot is reported as missing
            if kind == "succeeded":
                try:
                    reply = to_reply(getattr(result, "message", None))
                except ValueError as exc:
                    yield BatchResult(custom_id, "errored", error=f"the reply is not a message: {exc}")
                    continue
                yield BatchResult(custom_id, "succeeded", reply=reply)
            elif kind == "errored":
                yield BatchResult(custom_id, "errored", error=_error_text(result))
            else:
                yield BatchResult(custom_id, kind)

    async def _retrying(self, attempt: Any, what: str) -> Any:
        provider = self._provider
        return await call_with_retries(
            attempt,
            provider=provider.name,
            what=f"anthropic {what}",
            cls_name="AnthropicProvider",
            max_retries=provider.max_retries,
            backoff=provider.backoff,
            max_retry_wait=provider.max_retry_wait,
            purpose="worker",
            rng=provider._rng,
        )


def _json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON; text that UTF-8 cannot hold (a lone surrogate a program made)
    is written as JSON escapes, as the SDK writes it."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")


def _error_text(result: object) -> str:
    """``"invalid_request_error: prompt is too long"`` from an errored result."""
    outer = getattr(result, "error", None)
    inner = getattr(outer, "error", None)
    kind = getattr(inner, "type", None) or getattr(outer, "type", None) or "error"
    message = getattr(inner, "message", None) or ""
    return f"{kind}: {message}" if message else str(kind)

