"""``pmap(..., batch=True)`` on the host: a fan-out's worker requests through the provider's
batch engine.

The child runs the pmap's function once per item with tool calls recorded, not sent, and sends
the worker requests here in parts (``add``), then asks for the batch to run (``run``) and reads
the results back in parts (``take``). This module checks each request as ``tool.worker`` would
(:mod:`._batch_requests`), answers from the result cache what it can, reserves the worst case
of the rest from the ledger in one reservation before anything is submitted, cuts them into
batches within the API's limits (100,000 requests and 256 MB each), submits them, asks how they
stand with a growing interval, reads their results, maps each back to its item by
``custom_id``, checks each answer against its schema, and settles the reservation with the usage
the provider reported, at the batch price (half the list price).

The result cache answers a batched request as it answers a live one: a request identical to
one answered earlier in the run, kept in the cache file, or recorded by the run being resumed is
answered from there, at no cost, and recorded as a cached ``llm.start``/``llm.end`` pair under
the pmap (span ``tN.mK.iI.llm1``); identical requests within the batch are sent once, and one
that another request of the run has in flight waits for it. When every request is answered so,
no batch is submitted. Replies the batch brings fill the cache.

A resumed run also finds the batches the earlier run submitted but never read (their
``batch.start`` records each request's key): requests found there are read from that batch,
not submitted and paid again.

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

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import trio

from .. import errors
from .._json import JSON
from .._limits import Limits
from ..transcript._schema import BatchEnd, BatchResult, BatchStart
from ._batch_requests import BatchRequest, build_request
from ._budget import Ledger, worst_case_tokens
from ._cache import ReplyCache, Source, request_key
from ._counts import WorkerCounts
from ._llm import Emit, reuse_reply
from ._worker import read_answer
from .providers._base import Price, Provider, Reply, Request
from .providers._batches import (
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    AnthropicBatches,
    BatchBody,
    batch_price,
)

__all__ = ["BatchEngine"]

#: Bytes of results sent to the child in one ``take`` reply, at most (well under its frame limit).
_TAKE_BYTES = 32 << 20
#: Seconds given to cancelling the batches of a cancelled pmap at the provider.
_CANCEL_SECONDS = 10.0
#: Bytes of the body around its entries, and between two entries.
_BODY_BYTES = 1024


@attrs.define
class _Spent:
    input: int = 0
    output: int = 0
    cost: float = 0.0
    calls: int = 0


@attrs.define
class _Collected:
    requests: dict[int, BatchRequest] = attrs.field(factory=dict)
    ran: bool = False
    entries: list[list[Any]] = attrs.field(factory=list)
    sizes: list[int] = attrs.field(factory=list)


@attrs.define
class _Batch:
    """A batch at the provider while this run waits for it: its requests by ``custom_id``."""

    span: str
    batch_id: str
    requests: dict[str, BatchRequest]
    reserved: int
    polls: int = 0
    #: Submitted by the run this one resumed: its ``custom_id``\ s are not ``i<item>`` of this
    #: run, so each ``batch.result`` names its key (else ``batch.start``'s keys tell it).
    resumed: bool = False


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
        self._batch_ids = 0
        self._api: AnthropicBatches | None = None

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
                    await self._send([first[key] for key in claim.owned], pmap, claim.keep)
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
        self._fill(item, reply.text)

    def _fill(self, item: BatchRequest, text: str) -> None:
        value, problem = read_answer(text, item.validator)
        if problem is None:
            item.entry = [item.index, True, value, None]
        else:
            failed = errors.ToolError(
                f"tool 'worker' answered with JSON that does not match the schema: {problem} "
                "(a batched request gets no repair request)",
                tool="worker",
            )
            item.entry = [item.index, False, None, errors.to_payload(failed)]
        item.size = 64 + 6 * len(text)

    async def _send(self, todo: list[BatchRequest], pmap: int, keep: Callable[[str, Reply], None]) -> None:
        """Send ``todo`` through batches (or read them from a resumed run's unread batches), fill
        their slots, and give each reply to ``keep(key, reply)``."""
        engine = self._engine()
        provider = self._provider
        price = batch_price(provider.price)
        found, todo = await self._unread_batches(engine, todo)
        count = len(todo) + sum(len(items) for items in found.values())
        needed = _worst_case(todo) + sum(_worst_case(items.values()) for items in found.values())
        reservation = self._ledger.reserve(needed, what=f"a batch of {count:,} worker requests")
        pmap_span = self._pmap_span(pmap)
        sent: list[_Batch] = []
        started = time.monotonic()
        totals = _Spent()
        with reservation:
            try:
                for batch_id, adopted in found.items():
                    reservation.mark_sent()  # it runs at the provider already
                    batch = self._open(pmap_span, batch_id, adopted)
                    batch.resumed = True
                    sent.append(batch)
                    self._emit_start(batch, pmap, pmap_span, 0, resumed=True)
                for items, body, size in _bodies(engine, todo):
                    reservation.mark_sent()
                    batch_id = await engine.create(body)
                    del body  # the largest object of a batch: let go before the next is built
                    batch = self._open(pmap_span, batch_id, {f"i{item.index}": item for item in items})
                    sent.append(batch)
                    self._emit_start(batch, pmap, pmap_span, size)
                await self._wait(engine, sent)
                for batch in sent:
                    await self._read(engine, batch, price, totals, started, keep)
            except BaseException as exc:
                await self._cancel(engine, sent, started, exc)
                raise
            reservation.settle(
                input_tokens=totals.input, output_tokens=totals.output, role="worker",
                cost=None if price is None else totals.cost, calls=totals.calls,
            )

    async def _unread_batches(
        self, engine: AnthropicBatches, todo: list[BatchRequest]
    ) -> tuple[dict[str, dict[str, BatchRequest]], list[BatchRequest]]:
        """The requests of ``todo`` that a resumed run's unread batches hold, by batch and
        ``custom_id`` there, and the rest. A batch the provider no longer knows is left out."""
        if not self._unread:
            return {}, todo
        where = {key: (batch_id, custom_id)
                 for batch_id, keys in self._unread.items() for custom_id, key in keys.items()}
        found: dict[str, dict[str, BatchRequest]] = {}
        rest: list[BatchRequest] = []
        for item in todo:
            place = where.pop(item.key, None)
            if place is None:
                rest.append(item)
            else:
                found.setdefault(place[0], {})[place[1]] = item
        for batch_id in list(found):
            del self._unread[batch_id]  # read once
            try:
                await engine.retrieve(batch_id)
            except errors.ProviderError:
                rest.extend(found.pop(batch_id).values())  # gone (or another key's): submit anew
        rest.sort(key=lambda item: item.index)
        return found, rest

    def _open(self, pmap_span: str, batch_id: str, requests: dict[str, BatchRequest]) -> _Batch:
        self._batch_ids += 1
        reserved = _worst_case(requests.values())
        for item in requests.values():
            item.body = None  # submitted: its entry's bytes are at the provider
        return _Batch(f"{pmap_span}.b{self._batch_ids}", batch_id, requests, reserved)

    def _emit_start(
        self, batch: _Batch, pmap: int, pmap_span: str, size: int, *, resumed: bool = False
    ) -> None:
        indexes = [item.index for item in batch.requests.values()]
        self._emit(BatchStart(
            span=batch.span, parent=pmap_span, pmap=pmap, batch_id=batch.batch_id,
            provider=self._provider.name, requests=len(indexes), first_item=min(indexes),
            last_item=max(indexes), reserved_tokens=batch.reserved, bytes=size,
            keys={custom_id: item.key for custom_id, item in batch.requests.items()}, resumed=resumed,
        ))

    async def _wait(self, engine: AnthropicBatches, sent: list[_Batch]) -> None:
        """Ask how each batch stands, with a growing interval, until every one has ended."""
        provider = self._provider
        delay = getattr(provider, "batch_poll", 5.0)
        most = getattr(provider, "batch_poll_max", 60.0)
        waiting = {batch.batch_id: batch for batch in sent}
        while waiting:
            await trio.sleep(delay)
            delay = min(delay * 1.5, most)
            for batch_id in sorted(waiting):
                state = await engine.retrieve(batch_id)
                waiting[batch_id].polls += 1
                if state.ended:
                    del waiting[batch_id]

    async def _read(
        self,
        engine: AnthropicBatches,
        batch: _Batch,
        price: Price | None,
        totals: _Spent,
        started: float,
        keep: Callable[[str, Reply], None],
    ) -> None:
        """Read an ended batch's results into their slots, as the provider streams them."""
        span, batch_id, parent = batch.span, batch.batch_id, batch.span.rsplit(".", 1)[0]
        named = batch.resumed
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        used = _Spent()
        waiting = batch.requests  # emptied as results arrive
        async for result in engine.results(batch_id):
            item = waiting.pop(result.custom_id, None)
            if item is None:
                continue  # not one of ours, or a second line for the same request
            counts[result.kind] += 1
            if result.kind == "succeeded" and result.reply is not None:
                reply = result.reply
                cost = None if price is None else price.cost(reply)
                used.input += reply.input_tokens
                used.output += reply.output_tokens
                used.cost += cost or 0.0
                used.calls += 1
                keep(item.key, reply)
                self._fill(item, reply.text)
                assert item.entry is not None
                self._emit(BatchResult(
                    span=span, parent=parent, item=item.index, status="succeeded", text=reply.text,
                    input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, cost=cost,
                    error=item.entry[3], key=item.key if named else None,
                ))
                continue
            why = {
                "errored": f"the batch engine answered with an error: {result.error}",
                "canceled": "the batch was cancelled before this request ran",
                "expired": "the batch expired (24 hours) before this request ran",
            }.get(result.kind, result.kind)
            payload = errors.to_payload(errors.ProviderError(
                f"{self._provider.name}: batch {batch_id}: {why}.", provider=self._provider.name
            ))
            item.entry = [item.index, False, None, payload]
            item.size = 256 + len(why)
            self._emit(BatchResult(span=span, parent=parent, item=item.index, status=result.kind,
                                   error=payload, key=item.key if named else None))
        for item in waiting.values():
            payload = errors.to_payload(errors.ProviderError(
                f"{self._provider.name}: batch {batch_id} sent no result for this request.",
                provider=self._provider.name,
            ))
            item.entry = [item.index, False, None, payload]
            self._emit(BatchResult(span=span, parent=parent, item=item.index, status="missing",
                                   error=payload, key=item.key if named else None))
        waiting.clear()
        totals.input += used.input
        totals.output += used.output
        totals.cost += used.cost
        totals.calls += used.calls
        self._emit(BatchEnd(
            span=span, parent=parent, status="ended", succeeded=counts["succeeded"],
            errored=counts["errored"], canceled=counts["canceled"], expired=counts["expired"],
            input_tokens=used.input, output_tokens=used.output, cost=None if price is None else used.cost,
            polls=batch.polls, seconds=time.monotonic() - started,
        ))

    async def _cancel(
        self, engine: AnthropicBatches, sent: list[_Batch], started: float, exc: BaseException
    ) -> None:
        """Cancel at the provider every batch submitted, and end each in the transcript."""
        ended: set[str] = set()
        refused: dict[str, str] = {}
        with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_SECONDS):
            for batch in sent:
                try:
                    await engine.cancel(batch.batch_id)
                except errors.ProviderError as err:
                    # It may have ended meanwhile, or be running still: batch.end says which
                    # cancel failed and why, never that it was cancelled.
                    refused[batch.batch_id] = str(err)
                    continue
                ended.add(batch.batch_id)
        stops = (trio.Cancelled, KeyboardInterrupt)
        cancelled = isinstance(exc, stops) or (
            isinstance(exc, BaseExceptionGroup) and exc.subgroup(stops) is not None
        )
        for batch in sent:
            batch_id = batch.batch_id
            if batch_id in ended:
                told = "cancelled at the provider"
            elif batch_id in refused:
                told = f"not confirmed cancelled: the provider refused the cancel ({refused[batch_id]})"
            else:
                told = "not confirmed cancelled: the cancel did not finish in time"
            why = {"type": "Cancelled",
                   "message": f"the pmap was cancelled (a clock or a cancel); batch {batch_id} was {told}"}
            self._emit(BatchEnd(
                span=batch.span, parent=batch.span.rsplit(".", 1)[0],
                status="canceled" if cancelled else "error",
                canceled=len(batch.requests), polls=batch.polls, seconds=time.monotonic() - started,
                error=why if cancelled else errors.to_payload(exc),
            ))

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


def _worst_case(items: Iterable[BatchRequest]) -> int:
    """The tokens ``items`` may spend at most: each one's input and whole output allowance."""
    return sum(worst_case_tokens(item.tokens, item.max_tokens) for item in items)


def _bodies(
    engine: AnthropicBatches, todo: list[BatchRequest]
) -> Iterator[tuple[list[BatchRequest], BatchBody, int]]:
    """The requests cut into batches within the API's limits, each with its request body (made
    of the requests' own entries, not a copy) and its size."""
    items: list[BatchRequest] = []
    size = _BODY_BYTES
    for item in todo:
        assert item.body is not None
        entry_size = len(item.body[0]) + len(item.body[1]) + 1
        if items and (len(items) >= MAX_BATCH_REQUESTS or size + entry_size > MAX_BATCH_BYTES):
            body = BatchBody([i.body for i in items if i.body is not None])
            yield items, body, body.size
            del body
            items, size = [], _BODY_BYTES
        items.append(item)
        size += entry_size
    if items:
        body = BatchBody([i.body for i in items if i.body is not None])
        yield items, body, body.size
