"""``pmap(..., batch=True)`` on the host: a fan-out's worker requests through the provider's
batch engine.

The child runs the pmap's function once per item with tool calls recorded, not sent, and sends
the worker requests here in parts (``add``), then asks for the batch to run (``run``) and reads
the results back in parts (``take``). This module checks each request as ``tool.worker`` would
(:mod:`._batch_requests`), answers from the result cache what it can, and has the rest sent
(:mod:`._batch_send`): the worst case of all of them reserved from the ledger in one
reservation before anything is submitted, cut into batches within the API's limits (100,000
requests and 256 MB each), submitted, asked how they stand with a growing interval, their results
read and mapped back to their items by ``custom_id``, each answer checked against its schema,
and the reservation settled with the usage the provider reported, at the batch price (half the
list price).

The result cache answers a batched request as it answers a live one: a request identical to
one answered earlier in the run, kept in the cache file, or recorded by the run being resumed is
answered from there, at no cost, and recorded as a cached ``llm.start``/``llm.end`` pair under
the pmap (span ``tN.mK.iI.llm1``); identical requests within the batch are sent once, and one
that another request of the run has in flight waits for it. When every request is answered so,
no batch is submitted. Replies the batch brings fill the cache.

A resumed run also finds the batches the earlier run submitted but never read (their
``batch.start`` records each request's key): requests found there are read from that batch,
not submitted and paid again; those that did not succeed there (expired, cancelled, errored) are
submitted anew, as a resume sends again any error it finds.

A request that errored, expired or was cancelled by the provider becomes an error value in its
slot (a ``ProviderError``), and so does a reply that does not match its schema: a batched
request gets no repair request. When the pmap's clock, the turn's or the run's, or a signal
cancels the pmap, every batch still running is cancelled at the provider, ``batch.end`` says
``canceled``, and the reservation stays charged in full (the provider may bill what it processed
before the cancel), as for a cancelled live request.

Memory: each request is kept as its batch entry, encoded once when it arrives; a batch's request
body is those entries, streamed to the provider and let go once it is submitted; results are
read as a stream, each into its slot, and the child takes them in parts.

Why only one shape: the items of a batch are answered within minutes to hours, all together, so
an item's function cannot wait for its answer and then do more; the program makes each batched
step a pmap of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from .. import errors
from .._json import JSON
from .._limits import Limits
from ._batch_requests import BatchRequest, build_request
from ._batch_send import BatchSender, fill_slot
from ._budget import Ledger
from ._cache import ReplyCache, Source, request_key
from ._counts import WorkerCounts
from ._llm import Emit, reuse_reply
from .providers._base import Provider, Reply, Request
from .providers._batches import AnthropicBatches

__all__ = ["BatchEngine"]

#: Bytes of results sent to the child in one ``take`` reply, at most (well under its frame limit).
_TAKE_BYTES = 32 << 20


@attrs.define
class _Collected:
    requests: dict[int, BatchRequest] = attrs.field(factory=dict)
    ran: bool = False
    entries: list[list[Any]] = attrs.field(factory=list)
    sizes: list[int] = attrs.field(factory=list)


class BatchEngine:
    """Serves the ``pmap(..., batch=True)`` calls of one run (``CallServer``'s ``batches``).

    Args:
        provider: the worker; it must have a batch engine (``AnthropicProvider``'s).
        ledger, limits, emit: the run's budget, limits and transcript.
        pmap_span: the span of pmap ``K`` of the running program (``tN.mK``).
        counts: counts worker requests from their parts.
        cache: the run's result cache for worker requests (one of its own when not given).
        unread: batches the run being resumed submitted and never read, by id: each request's
            ``custom_id`` and key there.
    """

    def __init__(
        self,
        *,
        provider: Provider,
        ledger: Ledger,
        limits: Limits,
        emit: Emit,
        pmap_span: Any,
        counts: WorkerCounts,
        cache: ReplyCache | None = None,
        unread: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._provider = provider
        self._ledger = ledger
        self._limits = limits
        self._emit = emit
        self._pmap_span = pmap_span
        self._counts = counts
        self._cache = cache if cache is not None else ReplyCache()
        self._unread = {batch_id: dict(keys) for batch_id, keys in (unread or {}).items()}
        self._collected: dict[int, _Collected] = {}
        self._api: AnthropicBatches | None = None
        self._send: BatchSender | None = None

    async def __call__(self, kwargs: Mapping[str, Any], pmap: int | None) -> JSON:
        op = kwargs.get("op")
        key = kwargs.get("batch")
        if type(key) is not int:
            raise errors.ToolError("a batch step names no batch", tool="worker")
        if op == "add":
            if kwargs.get("first") is True:
                # A child replaced mid-batch may have left requests under the same number.
                self._collected.pop(key, None)
            return await self._add(key, kwargs.get("requests"))
        if op == "run":
            collected = self._collected.get(key)
            if collected is None or collected.ran:
                raise errors.ToolError("there is no batch to run", tool="worker")
            collected.ran = True
            try:
                return await self._run(collected, pmap if pmap is not None else key)
            except BaseException:
                self._collected.pop(key, None)
                raise
        if op == "take":
            return self._take(key, kwargs.get("start"))
        raise errors.ToolError(f"batch step {op!r} is not known", tool="worker")

    # -- collecting ---------------------------------------------------------------------------

    def _engine(self) -> AnthropicBatches:
        engine = getattr(self._provider, "_batch_engine", None)
        if not callable(engine):
            raise errors.ToolError(
                f"pmap(batch=True) sends worker requests to Anthropic's Message Batches API, and this "
                f"run's worker {self._provider.name} has none. Drop batch=True, or run with an "
                f"anthropic: worker.",
                tool="worker",
            )
        if self._api is None:
            made = engine()
            if not isinstance(made, AnthropicBatches):
                raise errors.ToolError(f"the worker {self._provider.name} has no batch engine", tool="worker")
            self._api = made  # one, so that its entries share what their fan-outs share
        return self._api

    def _sender(self) -> BatchSender:
        if self._send is None:
            self._send = BatchSender(provider=self._provider, api=self._engine(), ledger=self._ledger,
                                     emit=self._emit, unread=self._unread)
        return self._send

    async def _add(self, key: int, requests: Any) -> JSON:
        self._engine()  # no batch engine: say so before the child sends the rest
        if not isinstance(requests, list):
            raise errors.ToolError("a batch step sent no requests", tool="worker")
        collected = self._collected.setdefault(key, _Collected())
        if collected.ran:
            raise errors.ToolError("that batch already ran", tool="worker")
        if len(collected.requests) + len(requests) > self._limits.max_pmap_items:
            raise errors.SandboxLimitExceeded(
                f"a batched pmap sent more than {self._limits.max_pmap_items:,} requests "
                "(Limits.max_pmap_items).",
                setting="Limits.max_pmap_items",
                limit=self._limits.max_pmap_items,
            )
        built = [build_request(entry, self._limits) for entry in requests]
        for item, _ in built:
            if item.index in collected.requests:
                raise errors.ToolError(f"item {item.index} sent two batch requests", tool="worker")
            collected.requests[item.index] = item
        # Counting, keying and encoding long texts takes time: off the event loop, for the
        # whole part at once.
        todo = [(item, prepared) for item, prepared in built if prepared is not None]
        del built, requests
        await trio.to_thread.run_sync(self._prepare, todo, self._engine())
        return None

    def _prepare(
        self,
        todo: Sequence[tuple[BatchRequest, tuple[Request, tuple[str, str, Any]]]],
        engine: AnthropicBatches,
    ) -> None:
        """Count, key and encode each request; only its entry's bytes are kept."""
        for item, (request, parts) in todo:
            item.tokens = self._counts.request(*parts)
            item.key = request_key(self._provider, request)
            item.body = engine.entry(f"i{item.index}", request)

    # -- running ------------------------------------------------------------------------------

    async def _run(self, collected: _Collected, pmap: int) -> JSON:
        provider = self._provider
        todo: list[BatchRequest] = []
        for item in collected.requests.values():
            if item.body is None:
                continue
            if item.tokens + item.max_tokens > provider.context_window:
                problem = errors.ToolError(
                    f"worker call needs about {item.tokens:,} input tokens plus {item.max_tokens:,} "
                    f"output tokens, more than the {provider.context_window:,}-token context window of "
                    f"{provider.name}. Send less text per call (split the chunk), or lower max_tokens.",
                    tool="worker",
                )
                item.entry = [item.index, False, None, errors.to_payload(problem)]
                item.body = None
                continue
            todo.append(item)
        if todo:
            await self._answer(todo, pmap)
        entries = [item.entry for item in collected.requests.values() if item.entry]
        entries.sort(key=lambda e: e[0])
        collected.sizes = [collected.requests[e[0]].size for e in entries]
        collected.entries = entries
        collected.requests.clear()
        return {"count": len(entries)}

    async def _answer(self, todo: list[BatchRequest], pmap: int) -> None:
        """Fill the slots of ``todo``: from the cache what it holds, the rest through batches.

        Each distinct request is sent once; its copies get its answer, or its error. Requests
        another part of the run has in flight are claimed again once it ends (if it failed,
        this batch sends them)."""
        pending = todo
        while pending:
            # Each distinct request's first item, and the copies of those that have any.
            first: dict[str, BatchRequest] = {}
            copies: dict[str, list[BatchRequest]] = {}
            for item in pending:
                if item.key in first:
                    copies.setdefault(item.key, []).append(item)
                else:
                    first[item.key] = item
            async with self._cache.claim_batch(self._provider, first) as claim:
                for key, (reply, source) in claim.hits.items():
                    self._reuse(first[key], reply, source, pmap)
                    for item in copies.get(key, ()):
                        self._cache.count_hit(source)
                        self._reuse(item, reply, source, pmap)
                if claim.owned:
                    owners = [first[key] for key in claim.owned]
                    await self._sender().send(owners, pmap, self._pmap_span(pmap), claim.keep)
                    for key in claim.owned:
                        owner, answer = first[key], claim.replies.get(key)
                        for item in copies.get(key, ()):
                            if answer is not None:
                                self._cache.count_hit("run")
                                self._reuse(item, answer, "run", pmap)
                            else:  # the batch answered this request with an error: so are its copies
                                item.entry = [item.index, *owner.entry[1:]] if owner.entry else None
                                item.size, item.body = owner.size, None
            for event in {id(e): e for e in claim.waiting.values()}.values():
                await event.wait()
            pending = [item for key in claim.waiting for item in (first[key], *copies.get(key, ()))]

    def _reuse(self, item: BatchRequest, reply: Reply, source: Source, pmap: int) -> None:
        """Fill ``item``'s slot with a reply that cost nothing, recorded as a live call's is."""
        assert item.body is not None
        span = f"{self._pmap_span(pmap)}.i{item.index}"
        request = AnthropicBatches.request_of(item.body)
        reuse_reply(self._provider, request, reply, source, role="worker", emit=self._emit,
                    span=f"{span}.llm1", parent=self._pmap_span(pmap))
        item.body = None
        fill_slot(item, reply.text)

    # -- reading back -------------------------------------------------------------------------

    def _take(self, key: int, start: Any) -> JSON:
        collected = self._collected.get(key)
        if collected is None or not collected.ran or type(start) is not int or start < 0:
            raise errors.ToolError("there are no batch results to take", tool="worker")
        entries, sizes = collected.entries, collected.sizes
        end, size = start, 0
        while end < len(entries) and (end == start or size + sizes[end] <= _TAKE_BYTES):
            size += sizes[end]
            end += 1
        if end >= len(entries):
            del self._collected[key]
        taken: list[JSON] = list(entries[start:end])
        return taken
