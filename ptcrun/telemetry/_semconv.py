"""What each span of a run is called and says in OpenTelemetry: one mapping for live and export.

A run's spans are the transcript's (``run`` → ``tN`` → ``tN.planner`` / ``tN.program`` →
``tN.mK`` → ``tN.mK.iJ`` → ``tN.cK`` → ``tN.cK.llmA``), read back as
:class:`~ptcrun.transcript._records.SpanRecord` objects. :func:`describe` turns one record into
its OpenTelemetry name, kind, attributes, status and span events; the live tracer
(:mod:`._live`) and the OTLP/JSON export (:mod:`._otlp`) both call it, so a run traced live and
its transcript exported later give the same tree with the same attributes.

Model calls follow the OpenTelemetry GenAI semantic conventions (``chat {model}``,
``gen_ai.*``), tool calls their ``execute_tool`` span and the run their ``invoke_agent`` span;
everything else is named ``ptcrun.*``. Spans carry no content (no prompt, reply, program, tool
arguments or result, which the conventions make opt-in): ``ptcrun.span`` names the span in the
transcript, which has them all.

This module imports nothing from OpenTelemetry: exporting a transcript needs no OpenTelemetry
package.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..transcript._records import SpanRecord, span_turn

__all__ = [
    "SCOPE",
    "AttributeValue",
    "ShapeEvent",
    "SpanShape",
    "describe",
    "nanos",
    "sandbox_event",
    "scope_version",
]

#: The instrumentation scope of every ptcrun span.
SCOPE = "ptcrun"

AttributeValue = str | bool | int | float | Sequence[str]

#: The longest text a span takes from a run: a program (or a child it broke into) chooses its
#: errors' messages and could choose a tool's name, and a span is not the place for megabytes.
MAX_TEXT_CHARS = 1_000
#: The longest tool name in a span's name, which backends group by.
MAX_NAME_CHARS = 100

#: Statuses that end a span in error, besides any span whose end carries an error payload.
_FAILED = frozenset({"error", "failed", "timeout", "budget_exceeded", "cancelled", "max_turns"})


@attrs.frozen
class ShapeEvent:
    """A span event: something that happened at one instant of a span (a retry)."""

    name: str
    time: int  # Unix nanoseconds
    attributes: Mapping[str, AttributeValue]


@attrs.frozen
class SpanShape:
    """One span as OpenTelemetry sees it.

    Attributes:
        name: the span name (``chat claude-haiku-4-5``, ``execute_tool worker``, ``turn``...).
        client: the span is a call to another process (a model), kind ``CLIENT``; else ``INTERNAL``.
        attributes: the span's attributes, every value a string, bool, int, float or list of strings.
        error: ``(error.type, description)`` when the span ended in error.
        events: its span events, in time order.
    """

    name: str
    client: bool
    attributes: Mapping[str, AttributeValue]
    error: tuple[str, str] | None
    events: tuple[ShapeEvent, ...] = ()


def scope_version() -> str | None:
    """ptcrun's version, for the instrumentation scope; ``None`` for a source tree not installed."""
    try:
        return importlib.metadata.version("ptcrun")
    except importlib.metadata.PackageNotFoundError:
        return None


def nanos(ts: float) -> int:
    """A transcript time (Unix seconds) as OpenTelemetry's Unix nanoseconds."""
    return round(ts * 1_000_000_000)


def describe(record: SpanRecord, *, run_id: str | None = None) -> SpanShape:
    """The OpenTelemetry shape of one span of a run (not a ``sandbox`` start: see
    :func:`sandbox_event`).

    ``record`` may be unfinished (only its start is known): its shape then has the attributes
    known at the start, which every later shape of the same span keeps.
    """
    f = record.fields
    attributes: dict[str, Any] = {"ptcrun.span": record.span, "ptcrun.status": record.status}
    client = False
    kind = record.kind
    if kind == "run":
        name = "invoke_agent ptcrun"
        attributes.update(_run(f, run_id))
    elif kind == "llm":
        provider, model = _provider_model(str(f.get("provider", "")))
        name = f"chat {model}"
        client = True
        attributes.update(_llm(f, provider, model, record.status))
    elif kind == "call":
        name = f"execute_tool {_cut(str(f.get('tool')), MAX_NAME_CHARS)}"
        attributes.update({
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": f.get("tool"),
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": record.span,
            "ptcrun.turn": _turn(record.span),
        })
    elif kind == "pmap":
        name = "pmap"
        attributes.update({
            "ptcrun.turn": _turn(record.span),
            "ptcrun.pmap.total": f.get("total"),
            "ptcrun.pmap.concurrency": f.get("concurrency"),
            "ptcrun.pmap.done": f.get("done"),
            "ptcrun.pmap.failed": f.get("failed"),
            "ptcrun.pmap.timed_out": f.get("timed_out"),
        })
    elif kind == "item":
        name = "pmap item"
        attributes.update({"ptcrun.pmap.item": f.get("item"), "ptcrun.pmap.slot": f.get("slot")})
    elif kind == "program":
        name = "program"
        attributes.update({
            "ptcrun.turn": _turn(record.span),
            "ptcrun.program.calls": f.get("calls"),
            "ptcrun.program.cpu_seconds": f.get("cpu_seconds"),
            "ptcrun.program.restarted": f.get("restarted"),
        })
    elif kind == "turn":
        name = "turn"
        attributes.update({
            "ptcrun.turn": f.get("turn"),
            "ptcrun.turn.tokens_used": f.get("tokens_used"),
            "ptcrun.turn.program": f.get("program"),
        })
    else:
        name = f"ptcrun.{kind}"
    error = _error(record)
    if error is not None:
        attributes["error.type"] = error[0]
    retries = tuple(_retry_event(r) for r in f.get("retries") or ())
    return SpanShape(name=name, client=client, attributes=_clean(attributes), error=error, events=retries)


def sandbox_event(record: SpanRecord) -> ShapeEvent:
    """A sandbox child's start, as a span event of the span it started in (the run or a turn)."""
    attributes = _clean({"process.pid": record.fields.get("pid")})
    return ShapeEvent("ptcrun.sandbox.start", nanos(record.started), attributes)


def _turn(span: str) -> int:
    """The turn a span belongs to in its own run: a sub-run's ``t1.c3/t2.program`` is turn 2."""
    return span_turn(span.rsplit("/", 1)[-1])


def _run(f: Mapping[str, Any], run_id: str | None) -> dict[str, Any]:
    limits = f.get("limits") or {}
    data = f.get("data") or {}
    chunks = data.get("chunks") if "chunks" in data else sum(
        (d.get("chunks") or 0) for d in data.values() if isinstance(d, Mapping)
    )
    out: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "ptcrun",
        "ptcrun.run.id": run_id,
        "ptcrun.run.depth": f.get("depth"),
        "ptcrun.planner": f.get("planner"),
        "ptcrun.worker": f.get("worker"),
        "ptcrun.tools": [str(t) for t in f.get("tools") or ()],
        "ptcrun.data.chunks": chunks,
        "ptcrun.limits.max_tokens": limits.get("max_tokens"),
        "ptcrun.limits.max_turns": limits.get("max_turns"),
        "ptcrun.limits.max_concurrency": limits.get("max_concurrency"),
    }
    usage = f.get("usage")
    if isinstance(usage, Mapping):
        out["gen_ai.usage.input_tokens"] = (usage.get("planner_input_tokens") or 0) + (
            usage.get("worker_input_tokens") or 0
        )
        out["gen_ai.usage.output_tokens"] = (usage.get("planner_output_tokens") or 0) + (
            usage.get("worker_output_tokens") or 0
        )
        out["ptcrun.usage.cost_usd"] = usage.get("cost")
        out["ptcrun.run.turns"] = f.get("turns")
        out["ptcrun.run.calls_made"] = f.get("calls_made")
        out["ptcrun.run.failed_calls"] = sum((f.get("failed_calls") or {}).values())
        out["ptcrun.run.partial"] = f.get("partial")
        out["ptcrun.run.fallback_used"] = f.get("fallback_used")
    return out


def _provider_model(name: str) -> tuple[str, str]:
    """``"anthropic:claude-haiku-4-5"`` → ``("anthropic", "claude-haiku-4-5")``; a name with no
    prefix (a scripted or user provider) is both."""
    provider, sep, model = name.partition(":")
    return (provider, model) if sep and model else (name, name)


def _llm(f: Mapping[str, Any], provider: str, model: str, status: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        # The name before gen_ai.provider.name, still read by older backends.
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": f.get("max_tokens"),
        "ptcrun.llm.role": f.get("role"),
        "ptcrun.llm.reserved_tokens": f.get("reserved_tokens"),
    }
    if status == "ok":
        stop = f.get("stop_reason")
        out.update({
            "gen_ai.usage.input_tokens": f.get("input_tokens"),
            "gen_ai.usage.output_tokens": f.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": f.get("cache_read_tokens"),
            "gen_ai.usage.cache_creation.input_tokens": f.get("cache_write_tokens"),
            "gen_ai.response.model": f.get("model") or None,
            "gen_ai.response.finish_reasons": [stop] if stop else None,
            "ptcrun.llm.cost_usd": f.get("cost"),
        })
    if f.get("retries"):
        out["ptcrun.llm.retries"] = len(f["retries"])
    return out


def _retry_event(retry: Mapping[str, Any]) -> ShapeEvent:
    return ShapeEvent("ptcrun.llm.retry", nanos(float(retry["ts"])), _clean({
        "ptcrun.retry.attempt": retry.get("attempt"),
        "ptcrun.retry.reason": retry.get("reason"),
        "ptcrun.retry.wait_seconds": retry.get("wait"),
        "http.response.status_code": retry.get("status"),
        "ptcrun.retry.request_id": retry.get("request_id"),
    }))


def _error(record: SpanRecord) -> tuple[str, str] | None:
    """``(error.type, description)`` of a span that ended in error, else ``None``.

    ``error.type`` is the error's class as ptcrun names it (``TimeLimitExceeded``,
    ``ProviderError``, ``Cancelled``...), or the status when the span has no error payload (a
    pmap whose items ``failed``, a run that hit ``max_turns``).
    """
    payload = record.fields.get("error")
    if isinstance(payload, Mapping):
        kind = _cut(str(payload.get("type") or "_OTHER"), MAX_NAME_CHARS)
        return kind, _cut(str(payload.get("message") or ""), MAX_TEXT_CHARS)
    if record.status not in _FAILED:
        return None
    f = record.fields
    if record.kind == "pmap" and record.status == "failed":
        return "failed", f"{f.get('failed')} of {f.get('total')} items failed"
    return record.status, f"the {record.kind} ended with status {record.status}"


def _clean(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Drop unknown values (``None``); OpenTelemetry takes no null attribute."""
    out: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue  # JSON has no NaN or infinity, and a cost is never either
        if isinstance(value, str):
            out[key] = _cut(value, MAX_TEXT_CHARS)
        elif isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [_cut(str(v), MAX_TEXT_CHARS) for v in value]
        else:
            out[key] = _cut(str(value), MAX_TEXT_CHARS)
    return out


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
