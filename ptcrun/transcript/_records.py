"""The records a transcript is read into: turns, tool calls, LLM requests, pmaps, items, spans.

Each is a frozen attrs class built by :mod:`._reading` from a span's start and end events. Times
are Unix seconds; a span that never ended (a killed or interrupted run) has ``ended`` and
``seconds`` set to ``None`` and the status ``"unfinished"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "CallRecord",
    "ItemRecord",
    "LLMRecord",
    "PmapRecord",
    "SpanRecord",
    "TurnRecord",
    "seconds_between",
    "span_turn",
]


def span_turn(span: str | None) -> int:
    """The turn number a span id belongs to (``"t3.c7"`` → 3); 0 for the run itself."""
    if not span or not span.startswith("t"):
        return 0
    head = span.split(".", 1)[0][1:]
    return int(head) if head.isdigit() else 0


def seconds_between(started: float, ended: float | None) -> float | None:
    return None if ended is None else max(ended - started, 0.0)


@attrs.frozen
class LLMRecord:
    """One LLM request: a planner turn's reply, or one attempt of a worker call.

    Attributes:
        span, parent: its span id and its parent's (the turn, or the tool call).
        role: ``"planner"`` or ``"worker"``.
        provider: the provider's name.
        system: the system prompt sent.
        messages: the messages sent, as ``{"role", "content"}`` dicts, uncut.
        text: the reply text, or ``None`` when the request did not complete.
        status: ``"ok"``, ``"error"``, ``"cancelled"`` or ``"unfinished"``.
        error: the error payload (``{"type", "message", ...}``) when it failed.
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens: the usage reported.
        cost: USD, when the provider's prices are known.
        started, ended: Unix seconds (``ended`` is ``None`` when unfinished).
        seconds: how long the request took, retries and their waits included.
        retries: the provider's retries of this request, as ``{"attempt", "reason", "wait",
            "status", "request_id", "ts"}`` dicts (the ``llm.retry`` events), in order.
        max_tokens: the output limit the request was sent with.
        cached: where a reply that cost nothing came from (``"run"``, ``"disk"``,
            ``"resume"``), or ``None`` when the provider answered.
    """

    span: str
    parent: str | None
    role: str
    provider: str
    system: str
    messages: tuple[Mapping[str, str], ...]
    text: str | None
    status: str
    error: Mapping[str, Any] | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: float | None
    model: str | None
    stop_reason: str | None
    started: float
    ended: float | None
    seconds: float | None
    retries: tuple[Mapping[str, Any], ...] = ()
    max_tokens: int | None = None
    cached: str | None = None

    @property
    def prompt(self) -> str:
        """The last message sent (for a worker, the request built from its instruction and text)."""
        return self.messages[-1]["content"] if self.messages else ""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@attrs.frozen
class CallRecord:
    """One tool call a program made (``tool.worker`` included).

    Attributes:
        span: ``"t<turn>.c<id>"``.
        turn: the turn whose program made it.
        id: the call's number in the sandbox.
        tool: the tool's name.
        args, kwargs: the arguments as the program passed them.
        status: ``"ok"``, ``"error"``, ``"cancelled"`` or ``"unfinished"``.
        value: what the tool returned, when ``ok``.
        error: ``{"type", "message", ...}`` when it failed.
        pmap: the span of the pmap whose item made the call, or ``None``.
        item: the index of that item.
        slot: the pmap thread (0-based) that ran the item.
        llm: the worker's LLM requests (two when the first reply needed a repair).
        started, ended, seconds: timing; a call starts once it holds a concurrency slot, so
            its time is running time, not time spent waiting for a slot.
    """

    span: str
    turn: int
    id: int
    tool: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    status: str
    value: Any
    error: Mapping[str, Any] | None
    pmap: str | None
    item: int | None
    slot: int | None
    llm: tuple[LLMRecord, ...]
    started: float
    ended: float | None
    seconds: float | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def cached(self) -> str | None:
        """Where the worker's replies came from when none was sent to the provider (``"run"``,
        ``"disk"``, ``"resume"``); ``None`` when one was sent, and for other tools."""
        if not self.llm or any(r.cached is None for r in self.llm):
            return None
        return self.llm[-1].cached

    @property
    def retries(self) -> int:
        """How many times the provider retried the worker's requests (0 for other tools)."""
        return sum(len(r.retries) for r in self.llm)

    @property
    def prompt(self) -> str | None:
        """The worker's first request, as sent; ``None`` for other tools."""
        return self.llm[0].prompt if self.llm else None

    @property
    def reply(self) -> str | None:
        """The worker's last reply text; ``None`` for other tools."""
        return self.llm[-1].text if self.llm else None

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.llm)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.llm)


@attrs.frozen
class ItemRecord:
    """One item of a pmap: which thread ran it, when, and whether it failed.

    ``status`` is ``"ok"``, ``"error"``, ``"cancelled"`` or ``"unfinished"``; ``error`` is the
    failure's error payload (``{"type", "message", ...}``).
    """

    index: int
    slot: int | None
    status: str
    error: Mapping[str, Any] | None
    started: float
    ended: float | None
    seconds: float | None


@attrs.frozen
class PmapRecord:
    """One ``pmap`` or ``pcalls``.

    Attributes:
        span: ``"t<turn>.m<id>"``.
        parent: the program's span, or the item's span for a pmap nested in an item.
        total: how many items it got.
        concurrency: how many threads ran its items.
        done, failed: items that finished well or badly (``None`` when unfinished).
        timed_out: its clock expired.
        status: ``"ok"``, ``"failed"`` (some items failed), ``"timeout"`` or ``"unfinished"``.
        items: the items that started, by index.
        calls: the tool calls its items made directly (nested pmaps keep their own).
    """

    span: str
    turn: int
    parent: str | None
    total: int
    concurrency: int
    done: int | None
    failed: int | None
    timed_out: bool
    status: str
    items: tuple[ItemRecord, ...]
    calls: tuple[CallRecord, ...]
    started: float
    ended: float | None
    seconds: float | None


@attrs.frozen
class TurnRecord:
    """One planner turn as the transcript tells it.

    Attributes:
        number: 1-based.
        status: the turn's ending (``"ok"``, ``"done"``, ``"failed"``, ``"error"``,
            ``"no_code"``, ``"invalid_answer"``, ``"budget_exceeded"``, ``"timeout"``), or
            ``"unfinished"``.
        reply: the planner's reply text, or ``None`` when no reply came.
        program: the code that ran, or ``None``.
        output: everything the program printed, uncut.
        error: the program's error payload: ``{"type", "message"}``, with ``fields``, ``line``
            and ``source_line`` when known.
        answer: the value given to ``done``/``fail``.
        note: a note about the run of the program (e.g. it ran in a fresh sandbox).
        restarted: the program hit a limit and the sandbox was restarted after it.
        planner: the planner's LLM request.
        calls, pmaps: the tool calls and pmaps of its program.
        seconds: the turn's wall time; ``program_seconds`` the program's alone.
        tokens_used: the run's token total when the turn ended.
    """

    number: int
    status: str
    reply: str | None
    program: str | None
    output: str
    error: Mapping[str, Any] | None
    answer: Any
    note: str | None
    restarted: bool
    planner: LLMRecord | None
    calls: tuple[CallRecord, ...]
    pmaps: tuple[PmapRecord, ...]
    started: float
    ended: float | None
    seconds: float | None
    program_seconds: float | None
    tokens_used: int | None

    @property
    def planner_input_tokens(self) -> int:
        return self.planner.input_tokens if self.planner else 0

    @property
    def planner_output_tokens(self) -> int:
        return self.planner.output_tokens if self.planner else 0

    @property
    def worker_input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def worker_output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)

    @property
    def tokens(self) -> int:
        """Tokens spent in this turn: the planner's reply plus every worker request."""
        return (
            self.planner_input_tokens + self.planner_output_tokens
            + self.worker_input_tokens + self.worker_output_tokens
        )


@attrs.frozen
class SpanRecord:
    """A node of the span tree: run → turn → planner / program → pmap → item → call → LLM."""

    span: str
    parent: str | None
    kind: str
    status: str
    started: float
    ended: float | None
    fields: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def seconds(self) -> float | None:
        return seconds_between(self.started, self.ended)
