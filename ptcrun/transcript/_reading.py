"""Pair a transcript's start and end events by span, and build the records from them.

Events of one span share its id: ``call.start`` and ``call.end`` of ``t2.c7``, say. A span with
a start and no end never finished (the run was killed or interrupted); its record says
``"unfinished"`` rather than guess. The reader works on the schema's event objects
(:mod:`._schema`), so every field it reads has the type the schema gives it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .._result import Usage
from ._records import (
    CallRecord,
    ItemRecord,
    LLMRecord,
    PmapRecord,
    SpanRecord,
    TurnRecord,
    seconds_between,
    span_turn,
)
from ._schema import (
    BatchEnd,
    CallEnd,
    CallStart,
    Event,
    ItemEnd,
    ItemStart,
    LLMEnd,
    LLMRetry,
    LLMStart,
    PmapEnd,
    PmapStart,
    ProgramEnd,
    ProgramOutput,
    ProgramStart,
    RunEnd,
    RunStart,
    SandboxStart,
    TurnEnd,
    TurnStart,
)

__all__ = ["Reader"]

_E = TypeVar("_E", bound=Event)

#: ``llm.end``'s ``cached`` values that count as the result cache's (a resume's are ``replayed``).
_CACHED = ("run", "disk")


class Reader:
    """Pairs start and end events by span, then builds the records."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.starts: dict[str, Event] = {}
        self.ends: dict[str, Event] = {}
        self.outputs: dict[str, list[str]] = {}
        self.retries: dict[str, list[dict[str, Any]]] = {}
        self.order: list[str] = []
        for event in events:
            span = event.span
            if isinstance(event, ProgramOutput):
                self.outputs.setdefault(span, []).append(event.text)
            elif isinstance(event, LLMRetry):
                self.retries.setdefault(span, []).append({
                    "attempt": event.attempt, "reason": event.reason, "wait": event.wait,
                    "status": event.status, "request_id": event.request_id, "ts": event.ts,
                })
            elif event.type.endswith(".start"):
                if span not in self.starts:
                    self.order.append(span)
                self.starts[span] = event
            elif event.type.endswith(".end"):
                self.ends[span] = event

    def _spans(self, kind: type[_E]) -> list[tuple[str, _E]]:
        """The spans started by a ``kind`` event, in order, with that event."""
        out = []
        for span in self.order:
            start = self.starts[span]
            if isinstance(start, kind):
                out.append((span, start))
        return out

    def _end(self, span: str, kind: type[_E]) -> _E | None:
        end = self.ends.get(span)
        return end if isinstance(end, kind) else None

    def fields(self) -> dict[str, Any]:
        """The fields of a :class:`Transcript` other than ``path``, ``events`` and ``damaged_tail``."""
        llm = {s: self._llm(s, e) for s, e in self._spans(LLMStart)}
        items = {s: self._item(s, e) for s, e in self._spans(ItemStart)}
        # Group children by parent once, so a run of many thousand calls reads in linear time.
        llm_by_parent: dict[str | None, list[LLMRecord]] = {}
        for record in llm.values():
            llm_by_parent.setdefault(record.parent, []).append(record)
        calls = [self._call(s, e, llm_by_parent.get(s, []), items) for s, e in self._spans(CallStart)]
        items_by_pmap: dict[str, list[ItemRecord]] = {}
        for span, item in items.items():
            items_by_pmap.setdefault(span.rsplit(".", 1)[0], []).append(item)
        calls_by_pmap: dict[str | None, list[CallRecord]] = {}
        for call in calls:
            calls_by_pmap.setdefault(call.pmap, []).append(call)
        pmaps = [
            self._pmap(s, e, items_by_pmap.get(s, []), calls_by_pmap.get(s, []))
            for s, e in self._spans(PmapStart)
        ]
        turns = [self._turn(s, e, llm, calls, pmaps) for s, e in self._spans(TurnStart)]
        last = self.events[-1]
        end = last if isinstance(last, RunEnd) else None
        return {
            "status": end.status if end else "incomplete",
            "answer": end.answer if end else None,
            "error": end.error if end else None,
            "fallback_used": end.fallback_used if end else False,
            "failed_calls": dict(end.failed_calls) if end else {},
            "calls_made": end.calls_made if end else 0,
            "partial": end.partial if end else False,
            "cached_calls": end.cached_calls if end else sum(r.cached in _CACHED for r in llm.values()),
            "replayed": dict(end.replayed) if end else _replayed(llm.values()),
            "resumed_from": _resumed_from(self.events[0]),
            "usage": _usage(end.usage) if end else _sum_usage(llm.values()),
            "turns": tuple(turns),
            "calls": tuple(calls),
            "pmaps": tuple(pmaps),
            "llm_calls": tuple(llm.values()),
            "started": float(self.events[0].ts),
            "ended": float(last.ts),
        }

    def _times(self, span: str) -> tuple[float, float | None, float | None]:
        started = float(self.starts[span].ts)
        end = self.ends.get(span)
        ended = None if end is None else float(end.ts)
        return started, ended, seconds_between(started, ended)

    def _llm(self, span: str, start: LLMStart) -> LLMRecord:
        end = self._end(span, LLMEnd)
        started, ended, seconds = self._times(span)
        return LLMRecord(
            span=span,
            parent=start.parent,
            role=start.role,
            provider=start.provider,
            system=start.system,
            messages=tuple(start.messages),
            text=end.text if end else None,
            status=end.status if end else "unfinished",
            error=end.error if end else None,
            input_tokens=end.input_tokens if end else 0,
            output_tokens=end.output_tokens if end else 0,
            cache_read_tokens=end.cache_read_tokens if end else 0,
            cache_write_tokens=end.cache_write_tokens if end else 0,
            cost=end.cost if end else None,
            model=end.model if end else None,
            stop_reason=end.stop_reason if end else None,
            started=started,
            ended=ended,
            seconds=end.seconds if end else seconds,
            retries=tuple(self.retries.get(span, ())),
            max_tokens=start.max_tokens,
            cached=end.cached if end else None,
        )

    def _item(self, span: str, start: ItemStart) -> ItemRecord:
        end = self._end(span, ItemEnd)
        started, ended, seconds = self._times(span)
        if end is None:
            status, error = "unfinished", None
        elif end.ok:
            status, error = "ok", None
        else:
            error = end.error
            status = "cancelled" if error is not None and error.get("type") == "Cancelled" else "error"
        return ItemRecord(
            index=start.item,
            slot=start.slot,
            status=status,
            error=error,
            started=started,
            ended=ended,
            seconds=seconds,
        )

    def _call(
        self, span: str, start: CallStart, llm: Sequence[LLMRecord], items: Mapping[str, ItemRecord]
    ) -> CallRecord:
        end = self._end(span, CallEnd)
        started, ended, _ = self._times(span)
        error: Mapping[str, Any] | None
        if end is None:
            status, error = "unfinished", None
        elif end.ok:
            status, error = "ok", None
        else:
            error = end.error or {"type": "Error", "message": ""}
            status = "cancelled" if error.get("type") == "Cancelled" else "error"
        item = items.get(start.parent) if start.parent is not None else None
        turn = span_turn(span)
        return CallRecord(
            span=span,
            turn=turn,
            id=start.call,
            tool=start.tool,
            args=tuple(start.args),
            kwargs=dict(start.kwargs),
            status=status,
            value=end.value if end else None,
            error=error,
            pmap=None if start.pmap is None else f"t{turn}.m{start.pmap}",
            item=start.item,
            slot=item.slot if item else None,
            llm=tuple(llm),
            started=started,
            ended=ended,
            seconds=end.seconds if end else None,
        )

    def _pmap(
        self, span: str, start: PmapStart, items: Sequence[ItemRecord], calls: Sequence[CallRecord]
    ) -> PmapRecord:
        end = self._end(span, PmapEnd)
        started, ended, seconds = self._times(span)
        own = sorted(items, key=lambda r: r.index)
        if end is None:
            status = "unfinished"
        elif end.timed_out:
            status = "timeout"
        elif end.failed:
            status = "failed"
        else:
            status = "ok"
        return PmapRecord(
            span=span,
            turn=span_turn(span),
            parent=start.parent,
            total=start.total,
            concurrency=start.concurrency,
            done=end.done if end else None,
            failed=end.failed if end else None,
            timed_out=bool(end and end.timed_out),
            status=status,
            items=tuple(own),
            calls=tuple(calls),
            started=started,
            ended=ended,
            seconds=seconds,
        )

    def _turn(
        self,
        span: str,
        start: TurnStart,
        llm: Mapping[str, LLMRecord],
        calls: Sequence[CallRecord],
        pmaps: Sequence[PmapRecord],
    ) -> TurnRecord:
        end = self._end(span, TurnEnd)
        started, ended, seconds = self._times(span)
        number = start.turn
        planner = llm.get(f"{span}.planner")
        program_start = self.starts.get(f"{span}.program")
        source = program_start.source if isinstance(program_start, ProgramStart) else None
        program_end = self._end(f"{span}.program", ProgramEnd)
        return TurnRecord(
            number=number,
            status=end.status if end else "unfinished",
            reply=planner.text if planner else None,
            program=source,
            output="".join(self.outputs.get(f"{span}.program", ())),
            error=program_end.error if program_end else None,
            answer=program_end.answer if program_end else None,
            note=program_end.note if program_end else None,
            restarted=bool(program_end and program_end.restarted),
            planner=planner,
            calls=tuple(c for c in calls if c.turn == number),
            pmaps=tuple(p for p in pmaps if p.turn == number),
            started=started,
            ended=ended,
            seconds=seconds,
            program_seconds=program_end.seconds if program_end else None,
            tokens_used=end.tokens_used if end else None,
        )

    def span_list(self) -> list[SpanRecord]:
        """Every span, in order of start."""
        out = []
        for span in self.order:
            start = self.starts[span]
            kind = start.type.split(".")[0]  # "call.start" -> "call"
            # A sandbox start is an instant: it ends where it starts.
            end = start if isinstance(start, SandboxStart) else self.ends.get(span)
            fields = {**_fields(start), **(_fields(end) if end else {})}
            if span in self.retries:
                fields["retries"] = self.retries[span]
            out.append(
                SpanRecord(
                    span=span,
                    parent=start.parent,
                    kind=kind,
                    status=_span_status(end),
                    started=float(start.ts),
                    ended=None if end is None else float(end.ts),
                    fields=fields,
                )
            )
        out.sort(key=lambda s: s.started)
        return out


def _fields(event: Event) -> dict[str, Any]:
    """An event's envelope and fields as a dict, as the schema reads them."""
    return {"type": event.type, **attrs.asdict(event, recurse=False)}


def _span_status(end: Event | None) -> str:
    if end is None:
        return "unfinished"
    if isinstance(end, SandboxStart):
        return "ok"
    if isinstance(end, ItemEnd):
        cancelled = end.error is not None and end.error.get("type") == "Cancelled"
        return "ok" if end.ok else "cancelled" if cancelled else "error"
    if isinstance(end, CallEnd):
        cancelled = end.error is not None and end.error.get("type") == "Cancelled"
        return "ok" if end.ok else "cancelled" if cancelled else "error"
    if isinstance(end, PmapEnd):
        return "timeout" if end.timed_out else "failed" if end.failed else "ok"
    if isinstance(end, (LLMEnd, ProgramEnd, TurnEnd, RunEnd, BatchEnd)):
        return end.status
    return "ok"


def _replayed(requests: Iterable[LLMRecord]) -> dict[str, int]:
    """Replies replayed from a resumed run, by role, for a run that was killed before ``run.end``."""
    out: dict[str, int] = {}
    for r in requests:
        if r.cached == "resume":
            out[r.role] = out.get(r.role, 0) + 1
    return out


def _resumed_from(start: Event) -> str | None:
    return start.resumed_from if isinstance(start, RunStart) else None


def _usage(fields: Mapping[str, Any]) -> Usage:
    known = {f.name for f in attrs.fields(Usage)}
    return Usage(**{k: v for k, v in fields.items() if k in known})


def _sum_usage(requests: Iterable[LLMRecord]) -> Usage:
    """Usage rebuilt from the LLM requests, for a run that was killed before ``run.end``."""
    totals = {"planner": [0, 0, 0], "worker": [0, 0, 0]}
    cost: float | None = 0.0
    for r in requests:
        if r.status != "ok" or r.role not in totals or r.cached is not None:
            continue
        row = totals[r.role]
        row[0] += r.input_tokens
        row[1] += r.output_tokens
        row[2] += 1
        cost = None if cost is None or r.cost is None or not math.isfinite(r.cost) else cost + r.cost
    calls = totals["planner"][2] + totals["worker"][2]
    return Usage(
        planner_input_tokens=totals["planner"][0],
        planner_output_tokens=totals["planner"][1],
        worker_input_tokens=totals["worker"][0],
        worker_output_tokens=totals["worker"][1],
        cost=cost if calls else None,
        calls=calls,
        planner_calls=totals["planner"][2],
        worker_calls=totals["worker"][2],
    )
