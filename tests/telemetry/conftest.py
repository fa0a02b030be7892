"""An OpenTelemetry SDK tracer provider with an in-memory exporter, set as the global provider
for one test and taken away after it, so other tests run with tracing off as users do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.test.globals_test import reset_trace_globals


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    reset_trace_globals()
    tracer_provider = TracerProvider()
    trace.set_tracer_provider(tracer_provider)
    yield tracer_provider
    tracer_provider.shutdown()
    reset_trace_globals()


@pytest.fixture
def exporter(provider: TracerProvider) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def ptcrun_span(span: ReadableSpan) -> str | None:
    """The transcript's id of a ptcrun span; ``None`` for a span ptcrun did not make."""
    value = (span.attributes or {}).get("ptcrun.span")
    return value if isinstance(value, str) else None


def by_ptcrun_span(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s: span for span in spans if (s := ptcrun_span(span)) is not None}


def parent_of(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for other in spans:
        assert other.context is not None
        if other.context.span_id == span.parent.span_id:
            return other
    return None
