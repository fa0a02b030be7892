"""Pair a transcript's start and end events by span, and build the records from them.

Events of one span share its id: ``call.start`` and ``call.end`` of ``t2.c7``, say. A span with
a start and no end never finished (the run was killed or interrupted); its record says
``"unfinished"`` rather than guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..runtime._budget import Usage
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

__all__ = ["Reader"]

class Reader:
    """Pairs start and end events by span, then builds the records."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.events = events
        self.starts: dict[str, Mapping[str, Any]] = {}
        self.ends: dict[str, Mapping[str, Any]] = {}
        self.outputs: dict[str, list[str]] = {}
        self.order: list[str] = []
        for event in events:
            kind = event["type"]
            span = event.get("span")
            if not isinstance(span, str):
                continue
            if kind == "program.output":
                self.outputs.setdefault(span, []).append(str(event.get("text", "")))
            elif kind.endswith(".start"):
                if span not in self.starts:
                    self.order.append(span)
                self.starts[span] = event
            elif kind.endswith(".end"):
                self.ends[span] = event

    def fields(self) -> dict[str, Any]:
        """The fields of a :class:`Transcript` other than ``path`` and ``damaged_tail``."""
        llm = {s: self._llm(s) for s in self.order if self.starts[s]["type"] == "llm.start"}
        items = {s: self._item(s) for s in self.order if self.starts[s]["type"] == "item.start"}
        # Group children by parent once, so a run of many thousand calls reads in linear time.
        llm_by_parent: dict[str | None, list[LLMRecord]] = {}
        for record in llm.values():
            llm_by_parent.setdefault(record.parent, []).append(record)
        calls = [
            self._call(s, llm_by_parent.get(s, []), items) for s in self.order if self.starts[s]["type"] == "call.start"
        ]
        items_by_pmap: dict[str, list[ItemRecord]] = {}
        for span, item in items.items():
            items_by_pmap.setdefault(span.rsplit(".", 1)[0], []).append(item)
        calls_by_pmap: dict[str | None, list[CallRecord]] = {}
        for call in calls:
            calls_by_pmap.setdefault(call.pmap, []).append(call)
        pmaps = [
            self._pmap(s, items_by_pmap.get(s, []), calls_by_pmap.get(s, []))
            for s in self.order
            if self.starts[s]["type"] == "pmap.start"
        ]
        turns = [
            self._turn(s, llm, calls, pmaps) for s in self.order if self.starts[s]["type"] == "turn.start"
        ]
        last = self.events[-1]
        ended = last.get("type") == "run.end"
        return {
            "events": tuple(self.events),
            "status": str(last.get("status")) if ended else "incomplete",
            "answer": last.get("answer") if ended else None,
            "error": last.get("error") if ended else None,
            "fallback_used": bool(last.get("fallback_used")) if ended else False,
            "usage": _usage(last.get("usage")) if ended and isinstance(last.get("usage"), dict) else _sum_usage(llm.values()),
            "turns": tuple(turns),
            "calls": tuple(calls),
            "pmaps": tuple(pmaps),
            "llm_calls": tuple(llm.values()),
            "started": float(self.events[0]["ts"]),
            "ended": float(last["ts"]),
        }

    def _times(self, span: str) -> tuple[float, float | None, float | None]:
        started = float(self.starts[span]["ts"])
        end = self.ends.get(span)
        ended = None if end is None else float(end["ts"])
        return started, ended, seconds_between(started, ended)

    def _llm(self, span: str) -> LLMRecord:
        start = self.starts[span]
        end = self.ends.get(span, {})
        started, ended, seconds = self._times(span)
        return LLMRecord(
            span=span,
            parent=start.get("parent"),
            role=str(start.get("role", "")),
            provider=str(start.get("provider", "")),
            system=str(start.get("system", "")),
            messages=tuple(start.get("messages") or ()),
            text=end.get("text"),
            status=str(end.get("status", "unfinished")),
            error=end.get("error"),
            input_tokens=int(end.get("input_tokens") or 0),
            output_tokens=int(end.get("output_tokens") or 0),
            cache_read_tokens=int(end.get("cache_read_tokens") or 0),
            cache_write_tokens=int(end.get("cache_write_tokens") or 0),
            cost=end.get("cost"),
            model=end.get("model"),
            stop_reason=end.get("stop_reason"),
            started=started,
            ended=ended,
            seconds=end.get("seconds", seconds),
        )

    def _item(self, span: str) -> ItemRecord:
        start = self.starts[span]
        end = self.ends.get(span)
        started, ended, seconds = self._times(span)
        if end is None:
            status, error = "unfinished", None
        elif end.get("ok"):
            status, error = "ok", None
        else:
            error = end.get("error")
            status = "cancelled" if error == "cancelled" else "error"
        return ItemRecord(
            index=int(start.get("item", 0)),
            slot=start.get("slot"),
            status=status,
            error=error,
            started=started,
            ended=ended,
            seconds=seconds,
        )

    def _call(self, span: str, llm: Sequence[LLMRecord], items: Mapping[str, ItemRecord]) -> CallRecord:
        start = self.starts[span]
        end = self.ends.get(span)
        started, ended, _ = self._times(span)
        if end is None:
            status, error = "unfinished", None
        elif end.get("ok"):
            status, error = "ok", None
        else:
            error = end.get("error") or {"type": "Error", "message": ""}
            status = "cancelled" if error.get("type") == "Cancelled" else "error"
        parent = start.get("parent")
        item = items.get(parent) if isinstance(parent, str) else None
        turn = span_turn(span)
        pmap_id = start.get("pmap")
        return CallRecord(
            span=span,
            turn=turn,
            id=int(start.get("call", 0)),
            tool=str(start.get("tool", "")),
            args=tuple(start.get("args") or ()),
            kwargs=dict(start.get("kwargs") or {}),
            status=status,
            value=end.get("value") if end else None,
            error=error,
            pmap=None if pmap_id is None else f"t{turn}.m{pmap_id}",
            item=start.get("item"),
            slot=item.slot if item else None,
            llm=tuple(llm),
            started=started,
            ended=ended,
            seconds=end.get("seconds", seconds_between(started, ended)) if end else None,
        )

    def _pmap(self, span: str, items: Sequence[ItemRecord], calls: Sequence[CallRecord]) -> PmapRecord:
        start = self.starts[span]
        end = self.ends.get(span)
        started, ended, seconds = self._times(span)
        own = sorted(items, key=lambda r: r.index)
        if end is None:
            status = "unfinished"
        elif end.get("timed_out"):
            status = "timeout"
        elif end.get("failed"):
            status = "failed"
        else:
            status = "ok"
        return PmapRecord(
            span=span,
            turn=span_turn(span),
            parent=start.get("parent"),
            total=int(start.get("total", 0)),
            concurrency=int(start.get("concurrency", 1)),
            done=None if end is None else end.get("done"),
            failed=None if end is None else end.get("failed"),
            timed_out=bool(end and end.get("timed_out")),
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
        llm: Mapping[str, LLMRecord],
        calls: Sequence[CallRecord],
        pmaps: Sequence[PmapRecord],
    ) -> TurnRecord:
        start = self.starts[span]
        end = self.ends.get(span, {})
        started, ended, seconds = self._times(span)
        number = int(start.get("turn", span_turn(span)))
        planner = llm.get(f"{span}.planner")
        program_start = self.starts.get(f"{span}.program")
        program_end = self.ends.get(f"{span}.program", {})
        return TurnRecord(
            number=number,
            status=str(end.get("status", "unfinished")),
            reply=planner.text if planner else None,
            program=program_start.get("source") if program_start else None,
            output="".join(self.outputs.get(f"{span}.program", ())),
            error=program_end.get("error"),
            answer=program_end.get("answer"),
            note=program_end.get("note"),
            restarted=bool(program_end.get("restarted")),
            planner=planner,
            calls=tuple(c for c in calls if c.turn == number),
            pmaps=tuple(p for p in pmaps if p.turn == number),
            started=started,
            ended=ended,
            seconds=seconds,
            program_seconds=program_end.get("seconds"),
            tokens_used=end.get("tokens_used"),
        )

    def span_list(self) -> list[SpanRecord]:
        """Every span, in order of start."""
        out = []
        for span in self.order:
            start = self.starts[span]
            kind = str(start["type"]).split(".")[0]  # "call.start" -> "call"
            # A sandbox start is an instant: it ends where it starts.
            end = start if kind == "sandbox" else self.ends.get(span)
            fields = {**start, **(end or {})}
            out.append(
                SpanRecord(
                    span=span,
                    parent=start.get("parent"),
                    kind=kind,
                    status=_span_status(kind, end),
                    started=float(start["ts"]),
                    ended=None if end is None else float(end["ts"]),
                    fields=fields,
                )
            )
        out.sort(key=lambda s: s.started)
        return out


def _span_status(kind: str, end: Mapping[str, Any] | None) -> str:
    if end is None:
        return "unfinished"
    if kind == "sandbox":
        return "ok"
    if kind in ("call", "item"):
        if end.get("ok"):
            return "ok"
        error = end.get("error")
        cancelled = error == "cancelled" or (isinstance(error, dict) and error.get("type") == "Cancelled")
        return "cancelled" if cancelled else "error"
    if kind == "pmap":
        return "timeout" if end.get("timed_out") else "failed" if end.get("failed") else "ok"
    return str(end.get("status", "ok"))


def _usage(fields: Mapping[str, Any]) -> Usage:
    known = {f.name for f in attrs.fields(Usage)}
    return Usage(**{k: v for k, v in fields.items() if k in known})


def _sum_usage(requests: Iterable[LLMRecord]) -> Usage:
    """Usage rebuilt from the LLM requests, for a run that was killed before ``run.end``."""
    totals = {"planner": [0, 0, 0], "worker": [0, 0, 0]}
    cost: float | None = 0.0
    for r in requests:
        if r.status != "ok" or r.role not in totals:
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
