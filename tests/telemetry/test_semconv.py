"""What each span is called and says: the mapping live tracing and the export share, and its
table in docs/observability.md."""

from __future__ import annotations

import re
from pathlib import Path

from ptcrun.telemetry import _semconv
from ptcrun.telemetry._semconv import describe
from ptcrun.transcript._records import SpanRecord

from ..transcript.example_runs import example_run
from .conftest import by_ptcrun_span

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")


def documented() -> set[str]:
    """The attribute names the doc gives: its table's first column and the span events' lists."""
    names = set()
    for line in DOC.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z_.]+)`", line.split(" | ")[0]))
    events = DOC[DOC.index("A sandbox child's start"):DOC.index("Spans carry no content")]
    names |= {n for n in re.findall(r"`([a-z_.]+)`", events) if "." in n} - {"ptcrun.sandbox.start", "ptcrun.llm.retry"}
    return names


def test_every_attribute_a_run_sets_is_documented_and_every_documented_one_exists(exporter, tmp_path):
    example_run(tmp_path)  # turns, a pmap of workers (one retried), a failed tool call
    spans = exporter.get_finished_spans()
    seen = {key for span in spans for key in span.attributes}
    seen |= {key for span in spans for event in span.events for key in event.attributes}
    assert seen - documented() == set()
    source = Path(_semconv.__file__).read_text(encoding="utf-8")
    assert {name for name in documented() if f'"{name}"' not in source} == set()


def record(kind: str, span: str, status: str = "ok", **fields) -> SpanRecord:
    return SpanRecord(span=span, parent=None, kind=kind, status=status, started=1.0, ended=2.0, fields=fields)


def test_a_model_call_is_named_for_its_model_and_provider():
    shape = describe(record("llm", "t1.planner", provider="anthropic:claude-haiku-4-5", max_tokens=100,
                            input_tokens=10, output_tokens=2, stop_reason="end_turn", model="claude-haiku-4-5-2026",
                            role="planner"))
    assert shape.name == "chat claude-haiku-4-5" and shape.client
    assert shape.attributes["gen_ai.provider.name"] == shape.attributes["gen_ai.system"] == "anthropic"
    assert shape.attributes["gen_ai.request.model"] == "claude-haiku-4-5"
    assert shape.attributes["gen_ai.response.model"] == "claude-haiku-4-5-2026"
    assert shape.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    scripted = describe(record("llm", "t1.c1.llm1", provider="scripted"))
    assert scripted.name == "chat scripted" and scripted.attributes["gen_ai.provider.name"] == "scripted"


def test_an_unfinished_span_is_not_an_error_and_unknown_values_are_left_out():
    shape = describe(record("call", "t1.c1", status="unfinished", tool="lookup", error=None))
    assert shape.error is None and "error.type" not in shape.attributes
    run = describe(record("run", "run", status="done", usage={"cost": float("inf")}, limits={"max_tokens": None}))
    assert "ptcrun.usage.cost_usd" not in run.attributes and "ptcrun.limits.max_tokens" not in run.attributes


def test_an_error_payload_names_the_error_type():
    shape = describe(record("call", "t1.c1", status="error", tool="lookup",
                            error={"type": "TimeLimitExceeded", "message": "call clock expired after 5 s"}))
    assert shape.error == ("TimeLimitExceeded", "call clock expired after 5 s")
    assert shape.attributes["error.type"] == "TimeLimitExceeded"


def test_spans_are_found_by_their_transcript_id(exporter, tmp_path):
    _, transcript = example_run(tmp_path)
    spans = by_ptcrun_span(exporter.get_finished_spans())
    assert set(spans) == {s.span for s in transcript.spans() if s.kind != "sandbox"}
