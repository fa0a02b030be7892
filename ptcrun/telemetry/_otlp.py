"""Export a transcript as OTLP/JSON, the body an OpenTelemetry collector's OTLP/HTTP receiver takes.

The output is one ``ExportTraceServiceRequest`` in OTLP's JSON encoding: ``resourceSpans`` →
``scopeSpans`` → ``spans``, with ids as hex strings, times as Unix nanoseconds in decimal
strings, enums as numbers and attributes as ``{"key", "value": {"stringValue" | "intValue" |
"doubleValue" | "boolValue" | "arrayValue"}}``. POST it to a collector's ``/v1/traces`` with
``Content-Type: application/json``.

The spans are the ones a live run makes (:mod:`._semconv` describes both), with ids derived
from the run id (the run folder's name), so exporting the same transcript twice gives the same
file, and a collector that receives it twice sees one trace. A sandbox start is a span event of
the span it happened in. Spans that never ended (a killed run) end at the transcript's last
event, with ``ptcrun.status`` ``"unfinished"``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .._json import dumps as json_dumps
from ..transcript._transcript import SpanRecord, Transcript
from ._semconv import SCOPE, AttributeValue, ShapeEvent, describe, nanos, sandbox_event, scope_version

__all__ = ["otlp_json", "otlp_json_text", "run_id_of"]

# SpanKind and StatusCode as OTLP numbers them.
_INTERNAL, _CLIENT = 1, 3
_STATUS_ERROR = 2


def run_id_of(t: Transcript) -> str:
    """The run's id: its folder's name, or for events read from memory a digest of its start."""
    if t.path is not None:
        return t.path.parent.name
    return hashlib.sha256(json_dumps(dict(t.run)).encode()).hexdigest()[:12]


def trace_id(run_id: str) -> str:
    """The 32-hex-digit trace id of the run ``run_id``, the same at every export."""
    return hashlib.sha256(f"ptcrun trace {run_id}".encode()).hexdigest()[:32]


def span_id(run_id: str, span: str) -> str:
    """The 16-hex-digit id of ``span`` of the run ``run_id``."""
    return hashlib.sha256(f"ptcrun span {run_id} {span}".encode()).hexdigest()[:16]


def otlp_json(t: Transcript, *, version: str | None = None) -> dict[str, Any]:
    """The run's spans as an OTLP/JSON ``ExportTraceServiceRequest`` (module docstring).

    Args:
        version: the instrumentation scope's version; by default this ptcrun's, as a live run
            names it.
    """
    version = version or scope_version()
    run_id = run_id_of(t)
    trace = trace_id(run_id)
    records = t.spans()
    sandbox: dict[str | None, list[ShapeEvent]] = {}
    for record in records:
        if record.kind == "sandbox":
            sandbox.setdefault(record.parent, []).append(sandbox_event(record))
    spans = [
        _span(record, run_id, trace, t.ended, sandbox.get(record.span, []))
        for record in records
        if record.kind != "sandbox"
    ]
    scope: dict[str, Any] = {"name": SCOPE}
    if version:
        scope["version"] = version
    resource = {"attributes": _attributes({"service.name": "ptcrun"})}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}


def otlp_json_text(t: Transcript, *, version: str | None = None) -> str:
    """:func:`otlp_json` as JSON text."""
    return json.dumps(otlp_json(t, version=version), ensure_ascii=False)


def _span(
    record: SpanRecord, run_id: str, trace: str, last: float, sandbox: list[ShapeEvent]
) -> dict[str, Any]:
    shape = describe(record, run_id=run_id)
    ended = record.ended if record.ended is not None else last
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id(run_id, record.span),
        "name": shape.name,
        "kind": _CLIENT if shape.client else _INTERNAL,
        "startTimeUnixNano": str(nanos(record.started)),
        "endTimeUnixNano": str(nanos(max(ended, record.started))),
        "attributes": _attributes(shape.attributes),
    }
    if record.parent is not None:
        out["parentSpanId"] = span_id(run_id, record.parent)
    events = sorted([*sandbox, *shape.events], key=lambda e: e.time)
    if events:
        out["events"] = [
            {"timeUnixNano": str(e.time), "name": e.name, "attributes": _attributes(e.attributes)}
            for e in events
        ]
    if shape.error is not None:
        out["status"] = {"code": _STATUS_ERROR, "message": shape.error[1]}
    return out


def _attributes(attributes: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _value(value: AttributeValue) -> dict[str, Any]:
    """An ``AnyValue``: bool before int (a bool is an int in Python), int64 as a decimal string."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"arrayValue": {"values": [_value(v) for v in value]}}
