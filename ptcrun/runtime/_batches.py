"""``pmap(..., batch=True)`` on the host: a fan-out's worker requests through the provider's
batch engine.

The child runs the pmap's function once per item with tool calls recorded, not sent, and sends
the worker requests here in parts (``add``), then asks for the batch to run (``run``) and reads
the results back in parts (``take``). This module checks each request as ``tool.worker`` would,
reserves the worst case of all of them from the ledger in one reservation before anything is
submitted, cuts them into batches within the API's limits (100,000 requests and 256 MB each),
submits them, asks how they stand with a growing interval, reads their results, maps each back
to its item by ``custom_id``, checks each answer against its schema, and settles the
reservation with the usage the provider reported, at the batch price (half the list price).

A request that errored, expired or was cancelled by the provider becomes an error value in its
slot (a ``ProviderError``), and so does a reply that does not match its schema: a batched
request gets no repair request. When the pmap's clock, the turn's or the run's, or a signal
cancels the pmap, every batch still running is cancelled at the provider, ``batch.end`` says
``canceled``, and the reservation stays charged in full (the provider may bill what it processed
before the cancel), as for a cancelled live request.

Why only one shape: the items of a batch are answered within minutes to hours, all together, so
an item's function cannot wait for its answer and then do more; the program makes each batched
step a pmap of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from .. import errors
from .._json import JSON
from .._limits import Limits
from ..transcript._schema import BatchEnd, BatchResult, BatchStart
from ._budget import Ledger, worst_case_tokens
from ._counts import WorkerCounts
from ._llm import Emit
from ._worker import check_worker_arguments, read_answer, worker_prompt, worker_request
from .providers._base import Message, Provider, Request
from .providers._batches import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, AnthropicBatches, batch_price

__all__ = ["BatchEngine"]

#: Bytes of results sent to the child in one ``take`` reply, at most (well under its frame limit).
_TAKE_BYTES = 32 << 20
#: Seconds given to cancelling the batches of a cancelled pmap at the provider.
_CANCEL_SECONDS = 10.0
_PARAMS = ("text", "instruction", "schema", "max_tokens")


@attrs.define
class _Request:
    index: int
    request: Request | None = None
    validator: Any = None
    tokens: int = 0
    #: The slot's result: ``[index, ok, value, error]`` once known.
    entry: list[Any] | None = None
    size: int = 64
    #: ``(text, instruction, schema)``, to count the request from its parts.
    parts: tuple[str, str, Any] = ("", "", None)


@attrs.define
class _Spent:
    input: int = 0
    output: int = 0
    cost: float = 0.0
    calls: int = 0


@attrs.define
class _Collected:
    requests: dict[int, _Request] = attrs.field(factory=dict)
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
    ) -> None:
        self._provider = provider
        self._ledger = ledger
        self._limits = limits
        self._emit = emit
        self._pmap_span = pmap_span
        self._counts = counts
        self._collected: dict[int, _Collected] = {}
        self._batch_ids = 0

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
        made = engine()
        if not isinstance(made, AnthropicBatches):
            raise errors.ToolError(f"the worker {self._provider.name} has no batch engine", tool="worker")
        return made

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
        built = [self._build(entry) for entry in requests]
        for item in built:
            if item.index in collected.requests:
                raise errors.ToolError(f"item {item.index} sent two batch requests", tool="worker")
            collected.requests[item.index] = item
        # Counting long texts takes time: off the event loop, for the whole part at once.
        todo = [r for r in built if r.request is not None]
        tokens = await trio.to_thread.run_sync(self._count, todo)
        for item, count in zip(todo, tokens, strict=True):
            item.tokens = count
        return None

    def _count(self, requests: Sequence[_Request]) -> list[int]:
        out = []
        for item in requests:
            out.append(self._counts.request(*item.parts))
        return out

    def _build(self, entry: Any) -> _Request:
        """A checked worker request from ``[index, args, kwargs]``, or its slot's error."""
        if (
            not isinstance(entry, list) or len(entry) != 3 or type(entry[0]) is not int
            or not isinstance(entry[1], list) or not isinstance(entry[2], dict)
        ):
            raise errors.ToolError("a batch request is not [index, args, kwargs]", tool="worker")
        index, args, kwargs = entry
        if not 0 <= index < self._limits.max_pmap_items:
            raise errors.ToolError(f"a batch request names item {index}, out of range", tool="worker")
        item = _Request(index)
        try:
            bound = _bind(args, kwargs)
            text, instruction = bound["text"], bound["instruction"]
            schema, max_tokens = bound.get("schema"), bound.get("max_tokens")
            if not isinstance(text, str) or not isinstance(instruction, str):
                raise errors.ToolArgumentError(
                    "tool 'worker' takes text and instruction as str", tool="worker"
                )
            if schema is not None and not isinstance(schema, dict):
                raise errors.ToolArgumentError("tool 'worker' takes schema as a dict", tool="worker")
            if max_tokens is not None and type(max_tokens) is not int:
                raise errors.ToolArgumentError("tool 'worker' takes max_tokens as an int", tool="worker")
            max_tokens, item.validator = check_worker_arguments(schema, max_tokens, self._limits)
        except errors.ToolArgumentError as exc:
            item.entry = [index, False, None, errors.to_payload(exc)]
            return item
        messages = (Message("user", worker_prompt(text, instruction, schema)),)
        item.request = worker_request(messages, max_tokens)
        item.parts = (text, instruction, schema)
        return item

    # -- running ------------------------------------------------------------------------------

    async def _run(self, collected: _Collected, pmap: int) -> JSON:
        engine = self._engine()
        provider = self._provider
        todo: list[_Request] = []
        for item in collected.requests.values():
            if item.request is None:
                continue
            if item.tokens + item.request.max_tokens > provider.context_window:
                problem = errors.ToolError(
                    f"worker call needs about {item.tokens:,} input tokens plus {item.request.max_tokens:,} "
                    f"output tokens, more than the {provider.context_window:,}-token context window of "
                    f"{provider.name}. Send less text per call (split the chunk), or lower max_tokens.",
                    tool="worker",
                )
                item.entry = [item.index, False, None, errors.to_payload(problem)]
                continue
            todo.append(item)
        if todo:
            await self._send(engine, todo, pmap)
        entries = [item.entry for item in collected.requests.values() if item.entry]
        entries.sort(key=lambda e: e[0])
        collected.entries = entries
        collected.sizes = [collected.requests[e[0]].size for e in entries]
        return {"count": len(entries)}

    async def _send(self, engine: AnthropicBatches, todo: list[_Request], pmap: int) -> None:
        provider = self._provider
        price = batch_price(provider.price)
        needed = [worst_case_tokens(item.tokens, item.request.max_tokens) for item in todo]  # type: ignore[union-attr]
        groups = _groups(engine, todo, needed)
        reservation = self._ledger.reserve(sum(needed), what=f"a batch of {len(todo):,} worker requests")
        pmap_span = self._pmap_span(pmap)
        submitted: list[tuple[str, str, list[_Request]]] = []  # (span, id, requests)
        by_id: dict[str, _Request] = {}
        started = time.monotonic()
        polls: dict[str, int] = {}
        totals = _Spent()
        with reservation:
            try:
                for entries, items, reserved, size in groups:
                    self._batch_ids += 1
                    span = f"{pmap_span}.b{self._batch_ids}"
                    reservation.mark_sent()
                    batch_id = await engine.create(entries)
                    submitted.append((span, batch_id, items))
                    for entry, item in zip(entries, items, strict=True):
                        by_id[f"{batch_id}:{entry['custom_id']}"] = item
                    self._emit(BatchStart(
                        span=span, parent=pmap_span, pmap=pmap, batch_id=batch_id, provider=provider.name,
                        requests=len(items), first_item=items[0].index, last_item=items[-1].index,
                        reserved_tokens=reserved, bytes=size,
                    ))
                delay = getattr(provider, "batch_poll", 5.0)
                most = getattr(provider, "batch_poll_max", 60.0)
                waiting = {batch_id for _, batch_id, _ in submitted}
                while waiting:
                    await trio.sleep(delay)
                    delay = min(delay * 1.5, most)
                    for batch_id in sorted(waiting):
                        state = await engine.retrieve(batch_id)
                        polls[batch_id] = polls.get(batch_id, 0) + 1
                        if state.ended:
                            waiting.discard(batch_id)
                for span, batch_id, items in submitted:
                    await self._read(engine, span, batch_id, items, by_id, price, totals, polls, started)
            except BaseException as exc:
                await self._cancel(engine, submitted, polls, started, exc)
                raise
            reservation.settle(
                input_tokens=totals.input, output_tokens=totals.output, role="worker",
                cost=None if price is None else totals.cost, calls=totals.calls,
            )

    async def _read(
        self,
        engine: AnthropicBatches,
        span: str,
        batch_id: str,
        items: list[_Request],
        by_id: dict[str, _Request],
        price: Any,
        totals: _Spent,
        polls: dict[str, int],
        started: float,
    ) -> None:
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        used = _Spent()
        async for result in engine.results(batch_id):
            item = by_id.get(f"{batch_id}:{result.custom_id}")
            if item is None or item.entry is not None:
                continue  # not one of ours, or a second line for the same request
            counts[result.kind] += 1
            if result.kind == "succeeded" and result.reply is not None:
                reply = result.reply
                cost = None if price is None else price.cost(reply)
                used.input += reply.input_tokens
                used.output += reply.output_tokens
                used.cost += cost or 0.0
                used.calls += 1
                value, problem = read_answer(reply.text, item.validator)
                if problem is None:
                    item.entry = [item.index, True, value, None]
                else:
                    failed = errors.ToolError(
                        f"tool 'worker' answered with JSON that does not match the schema: {problem} "
                        "(a batched request gets no repair request)",
                        tool="worker",
                    )
                    item.entry = [item.index, False, None, errors.to_payload(failed)]
                item.size = 64 + 6 * len(reply.text)
                self._emit(BatchResult(
                    span=span, parent=span.rsplit(".", 1)[0], item=item.index, status="succeeded",
                    text=reply.text, input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                    cost=cost, error=item.entry[3],
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
            self._emit(BatchResult(span=span, parent=span.rsplit(".", 1)[0], item=item.index,
                                   status=result.kind, error=payload))
        for item in items:
            if item.entry is None:
                payload = errors.to_payload(errors.ProviderError(
                    f"{self._provider.name}: batch {batch_id} sent no result for this request.",
                    provider=self._provider.name,
                ))
                item.entry = [item.index, False, None, payload]
                self._emit(BatchResult(span=span, parent=span.rsplit(".", 1)[0], item=item.index,
                                       status="missing", error=payload))
        totals.input += used.input
        totals.output += used.output
        totals.cost += used.cost
        totals.calls += used.calls
        self._emit(BatchEnd(
            span=span, parent=span.rsplit(".", 1)[0], status="ended", succeeded=counts["succeeded"],
            errored=counts["errored"], canceled=counts["canceled"], expired=counts["expired"],
            input_tokens=used.input, output_tokens=used.output, cost=None if price is None else used.cost,
            polls=polls.get(batch_id, 0), seconds=time.monotonic() - started,
        ))

    async def _cancel(
        self,
        engine: AnthropicBatches,
        submitted: list[tuple[str, str, list[_Request]]],
        polls: dict[str, int],
        started: float,
        exc: BaseException,
    ) -> None:
        """Cancel at the provider every batch submitted, and end each in the transcript."""
        ended: set[str] = set()
        refused: dict[str, str] = {}
        with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_SECONDS):
            for _, batch_id, _ in submitted:
                try:
                    await engine.cancel(batch_id)
                except errors.ProviderError as err:
                    # It may have ended meanwhile, or be running still: batch.end says which
                    # cancel failed and why, never that it was cancelled.
                    refused[batch_id] = str(err)
                    continue
                ended.add(batch_id)
        stops = (trio.Cancelled, KeyboardInterrupt)
        cancelled = isinstance(exc, stops) or (
            isinstance(exc, BaseExceptionGroup) and exc.subgroup(stops) is not None
        )
        for span, batch_id, items in submitted:
            if batch_id in ended:
                told = "cancelled at the provider"
            elif batch_id in refused:
                told = f"not confirmed cancelled: the provider refused the cancel ({refused[batch_id]})"
            else:
                told = "not confirmed cancelled: the cancel did not finish in time"
            why = {"type": "Cancelled",
                   "message": f"the pmap was cancelled (a clock or a cancel); batch {batch_id} was {told}"}
            self._emit(BatchEnd(
                span=span, parent=span.rsplit(".", 1)[0], status="canceled" if cancelled else "error",
                canceled=len(items), polls=polls.get(batch_id, 0), seconds=time.monotonic() - started,
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


def _bind(args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``tool.worker``'s arguments by name, as its signature binds them."""
    if len(args) > len(_PARAMS):
        raise errors.ToolArgumentError(
            f"tool 'worker' takes at most {len(_PARAMS)} positional arguments; got {len(args)}", tool="worker"
        )
    bound = dict(zip(_PARAMS, args, strict=False))
    for name, value in kwargs.items():
        if name not in _PARAMS:
            raise errors.ToolArgumentError(
                f"tool 'worker' got an unexpected argument {name!r}", tool="worker"
            )
        if name in bound:
            raise errors.ToolArgumentError(f"tool 'worker' got {name!r} twice", tool="worker")
        bound[name] = value
    for name in ("text", "instruction"):
        if name not in bound:
            raise errors.ToolArgumentError(f"tool 'worker' is missing the argument {name!r}", tool="worker")
    return bound


def _groups(
    engine: AnthropicBatches, todo: list[_Request], needed: list[int]
) -> list[tuple[list[dict[str, Any]], list[_Request], int, int]]:
    """The requests cut into batches within the API's limits: ``(entries, requests, tokens
    reserved, bytes)`` each. Each entry's ``custom_id`` is ``i<item index>``."""
    groups: list[tuple[list[dict[str, Any]], list[_Request], int, int]] = []
    entries: list[dict[str, Any]] = []
    items: list[_Request] = []
    reserved = size = 0
    for item, tokens in zip(todo, needed, strict=True):
        assert item.request is not None
        custom_id, params = f"i{item.index}", engine.params(item.request)
        entry = {"custom_id": custom_id, "params": params}
        entry_size = engine.entry_bytes(custom_id, params)
        if entries and (len(entries) >= MAX_BATCH_REQUESTS or size + entry_size > MAX_BATCH_BYTES - 1024):
            groups.append((entries, items, reserved, size))
            entries, items, reserved, size = [], [], 0, 0
        entries.append(entry)
        items.append(item)
        reserved += tokens
        size += entry_size
    if entries:
        groups.append((entries, items, reserved, size))
    return groups

