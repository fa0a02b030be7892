"""The batches of a ``pmap(..., batch=True)`` at the provider: reserve, submit (or read a batch a
resumed run left unread), poll, read, settle, and cancel on a clock.

:class:`~._batches.BatchEngine` decides which requests must be sent (the cache answers the
rest); this sends them. All of a pmap's requests are reserved in one reservation before anything
is submitted, cut into batches within the API's limits, and their bodies streamed from the
requests' encoded entries; each batch is asked how it stands with a growing interval, its results
read as a stream into their slots, and the reservation settled with the usage the provider
reported, at the batch price. Requests of a resumed run's batch that did not succeed there
(expired, cancelled, errored: a resume never replays an error) are submitted anew, within the
same reservation. A cancel (a clock, a signal) cancels every batch at the provider
and leaves the reservation charged in full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import trio

from .. import errors
from ..transcript._schema import BatchEnd, BatchResult, BatchStart
from ._batch_requests import BatchRequest
from ._budget import Ledger, worst_case_tokens
from ._llm import Emit
from ._worker import read_answer
from .providers._base import Price, Provider, Reply
from .providers._batches import (
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    AnthropicBatches,
    BatchBody,
    batch_price,
)

__all__ = ["BatchSender", "fill_slot"]

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
    #: Its ``batch.end`` is written (a cancel must not write a second).
    ended: bool = False


def fill_slot(item: BatchRequest, text: str) -> None:
    """Fill ``item``'s slot from a reply's text: its answer, or why it does not match its schema."""
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


class BatchSender:
    """Sends the requests of a run's batched pmaps through the provider's batch engine.

    Args:
        provider: the worker.
        api: its Message Batches API.
        ledger, emit: the run's budget and transcript.
        unread: batches the run being resumed submitted and never read, by id: each request's
            ``custom_id`` and key there (each is read once, then dropped from it).
    """

    def __init__(
        self,
        *,
        provider: Provider,
        api: AnthropicBatches,
        ledger: Ledger,
        emit: Emit,
        unread: dict[str, dict[str, str]],
    ) -> None:
        self._provider = provider
        self._api = api
        self._ledger = ledger
        self._emit = emit
        self._unread = unread
        self._batch_ids = 0

    async def send(
        self, todo: list[BatchRequest], pmap: int, pmap_span: str, keep: Callable[[str, Reply], None]
    ) -> None:
        """Send ``todo`` through batches (or read them from a resumed run's unread batches), fill
        their slots, and give each reply to ``keep(key, reply)``."""
        engine = self._api
        provider = self._provider
        price = batch_price(provider.price)
        found, todo = await self._unread_batches(engine, todo)
        count = len(todo) + sum(len(items) for items in found.values())
        needed = _worst_case(todo) + sum(_worst_case(items.values()) for items in found.values())
        started = time.monotonic()
        try:
            reservation = self._ledger.reserve(needed, what=f"a batch of {count:,} worker requests")
        except BaseException as exc:
            # The resumed run's batches run at the provider already: this run cannot pay for
            # them, so they are cancelled there rather than left to run on and be billed.
            running = [self._open(pmap_span, batch_id, items, resumed=True)
                       for batch_id, items in found.items()]
            for batch in running:
                self._emit_start(batch, pmap, pmap_span, 0, resumed=True)
            await self._cancel(engine, running, started, exc)
            raise
        sent: list[_Batch] = []
        totals = _Spent()
        with reservation:
            try:
                for batch_id, adopted in found.items():
                    reservation.mark_sent()  # it runs at the provider already
                    batch = self._open(pmap_span, batch_id, adopted, resumed=True)
                    sent.append(batch)
                    self._emit_start(batch, pmap, pmap_span, 0, resumed=True)
                await self._submit(engine, todo, pmap, pmap_span, sent, reservation.mark_sent)
                await self._wait(engine, sent)
                again: list[BatchRequest] = []
                for batch in sent:
                    again += await self._read(engine, batch, price, totals, started, keep)
                if again:  # requests a resumed run's batches did not answer: sent once more
                    again.sort(key=lambda item: item.index)
                    fresh = await self._submit(engine, again, pmap, pmap_span, sent, reservation.mark_sent)
                    await self._wait(engine, fresh)
                    for batch in fresh:
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

    async def _submit(
        self,
        engine: AnthropicBatches,
        todo: list[BatchRequest],
        pmap: int,
        pmap_span: str,
        sent: list[_Batch],
        mark_sent: Callable[[], None],
    ) -> list[_Batch]:
        """Submit ``todo`` in batches within the API's limits; each is added to ``sent`` as soon
        as the provider holds it (a cancel must reach it), and the new ones are returned."""
        new: list[_Batch] = []
        for items, body, size in _bodies(engine, todo):
            mark_sent()
            batch_id = await engine.create(body)
            del body  # the largest object of a batch: let go before the next is built
            batch = self._open(pmap_span, batch_id, {f"i{item.index}": item for item in items})
            sent.append(batch)
            new.append(batch)
            self._emit_start(batch, pmap, pmap_span, size)
        return new

    def _open(
        self, pmap_span: str, batch_id: str, requests: dict[str, BatchRequest], *, resumed: bool = False
    ) -> _Batch:
        self._batch_ids += 1
        reserved = _worst_case(requests.values())
        if not resumed:  # a resumed run's request keeps its entry, to be sent again if it fails there
            for item in requests.values():
                item.body = None  # submitted: its entry's bytes are at the provider
        return _Batch(f"{pmap_span}.b{self._batch_ids}", batch_id, requests, reserved, resumed=resumed)

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
    ) -> list[BatchRequest]:
        """Read an ended batch's results into their slots, as the provider streams them; the
        requests of a resumed run's batch that did not succeed there are returned, to be sent."""
        span, batch_id, parent = batch.span, batch.batch_id, batch.span.rsplit(".", 1)[0]
        named = batch.resumed
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        used = _Spent()
        waiting = batch.requests  # emptied as results arrive
        again: list[BatchRequest] = []
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
                fill_slot(item, reply.text)
                item.body = None
                assert item.entry is not None
                self._emit(BatchResult(
                    span=span, parent=parent, item=item.index, status="succeeded", text=reply.text,
                    input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, cost=cost,
                    error=item.entry[3], key=item.key if named else None, stop_reason=reply.stop_reason,
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
            again.append(item)
        for item in waiting.values():
            payload = errors.to_payload(errors.ProviderError(
                f"{self._provider.name}: batch {batch_id} sent no result for this request.",
                provider=self._provider.name,
            ))
            item.entry = [item.index, False, None, payload]
            self._emit(BatchResult(span=span, parent=parent, item=item.index, status="missing",
                                   error=payload, key=item.key if named else None))
            again.append(item)
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
        batch.ended = True
        return again if batch.resumed else []

    async def _cancel(
        self, engine: AnthropicBatches, sent: list[_Batch], started: float, exc: BaseException
    ) -> None:
        """Cancel at the provider every batch submitted and not yet read, and end each in the
        transcript."""
        sent = [batch for batch in sent if not batch.ended]
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
                error=why if cancelled else _and_told(errors.to_payload(exc), f"batch {batch_id} was {told}"),
            ))


def _and_told(payload: dict[str, Any], told: str) -> dict[str, Any]:
    """An error payload whose message also says what became of the batch at the provider."""
    return {**payload, "message": f"{str(payload.get('message', '')).rstrip('.')}; {told}"}


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
