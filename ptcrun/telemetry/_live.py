"""Trace a run with OpenTelemetry as it goes, when the application configured a tracer provider.

ptcrun follows OpenTelemetry's rule for libraries: it uses the global tracer provider, and does
nothing when none is configured. A Python application configures one as for any instrumented
library (``trace.set_tracer_provider(TracerProvider(...))``); a CLI user runs ``ptcrun`` under
``opentelemetry-instrument``. Without a provider (or without OpenTelemetry installed),
:func:`open_tracing` returns ``None`` once per run and the run's events take their usual path:
no span is made, nothing is imported, no call pays anything.

The spans are made from the run's events, the same ones the transcript records, so the span tree
is the transcript's (:mod:`._semconv` names and describes each span). A span starts at its start
event's time and ends at its end event's. The spans whose work runs on the host, in the task that
emits their start and end events (the run, a turn, a program, a tool call, an LLM request), are
also made *current* in that task (a contextvar, which trio copies into the tasks and threads it
starts) until their end event: so the spans of a provider SDK, an HTTP instrumentor or a user's
tool nest under ptcrun's ``chat`` or ``execute_tool`` span. pmaps and their items run in the
sandbox child; their spans are placed in the tree but are never current on the host.

A ``tool.agent`` sub-run's events come through its caller's emit with their span ids prefixed
(``t1.c3/run``, ``t1.c3/t1.program``), so one :class:`Tracing` makes the whole tree: the
sub-run's ``invoke_agent`` span is a child of the agent call's ``execute_tool agent`` span, as in
the transcript.

A failure of the tracing (a broken exporter or processor) never ends the run: tracing stops for
that run and the run's warnings say so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .._tools import describe_exception
from ..transcript._reading import Reader
from ..transcript._schema import Event, LLMRetry, ProgramOutput, RunEnd, SandboxStart
from ._semconv import SCOPE, SpanShape, describe, nanos, sandbox_event, scope_version

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["Tracing", "open_tracing"]

#: Spans whose work runs in the task that emits their events: made current there.
_CURRENT_KINDS = frozenset({"run", "turn", "program", "call", "llm"})


def tracer_provider_configured() -> bool:
    """Whether the application set a global OpenTelemetry tracer provider.

    OpenTelemetry's API hands out a proxy until a provider is set, and a provider can only be set
    through ``opentelemetry.trace`` (or named in ``OTEL_PYTHON_TRACER_PROVIDER``): while that
    module was never imported, nothing is configured, and this imports nothing.
    """
    if "opentelemetry.trace" not in sys.modules and not os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
        return False
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def open_tracing(transcript: Path | None, warnings: list[str]) -> Tracing | None:
    """The run's tracing, or ``None`` when no tracer provider is configured.

    Args:
        transcript: the run's transcript file; its folder's name is the run id on the run span.
        warnings: the run's warnings, told when tracing fails and stops.
    """
    if not tracer_provider_configured():
        return None
    from opentelemetry import trace

    tracer = trace.get_tracer(SCOPE, scope_version())
    run_id = transcript.parent.name if transcript is not None else None
    return Tracing(tracer, run_id=run_id, warnings=warnings)


class _Open:
    """A span that started and has not ended: its OpenTelemetry span and the events so far."""

    __slots__ = ("events", "span", "task", "token")

    def __init__(self, span: Span, start: Event) -> None:
        self.span = span
        self.events: list[Event] = [start]
        self.token: object | None = None
        self.task: trio.lowlevel.Task | None = None


class Tracing:
    """One run's OpenTelemetry spans, made from its events (module docstring)."""

    def __init__(self, tracer: Tracer, *, run_id: str | None, warnings: list[str]) -> None:
        self._tracer = tracer
        self._run_id = run_id
        self._warnings = warnings
        self._open: dict[str, _Open] = {}
        self._broken = False

    def watch(self, emit: Callable[[Event], object]) -> Callable[[Event], object]:
        """``emit``, followed by this run's tracing of each event."""

        def traced(event: Event) -> object:
            out = emit(event)
            if not self._broken:
                try:
                    self.see(event)
                except Exception as exc:  # an exporter's or processor's bug: not the run's end
                    self._broken = True
                    self._warnings.append(
                        f"OpenTelemetry tracing stopped at a {event.type} event: "
                        f"{describe_exception(exc)}; the run and its transcript went on without it."
                    )
            elif isinstance(event, RunEnd) and event.span == "run":
                self._release()
            return out

        return traced

    def see(self, event: Event) -> None:
        """Start, end or annotate the span ``event`` belongs to."""
        if isinstance(event, ProgramOutput):
            return
        if isinstance(event, SandboxStart):
            parent = self._open.get(event.parent or "")
            if parent is not None:
                shape = sandbox_event(Reader([event]).span_list()[0])
                parent.span.add_event(shape.name, dict(shape.attributes), timestamp=shape.time)
            return
        if isinstance(event, LLMRetry):
            if event.span in self._open:
                self._open[event.span].events.append(event)
            return
        if event.type.endswith(".start"):
            self._start(event)
        elif event.type.endswith(".end"):
            if isinstance(event, RunEnd):
                # Spans a clock or a cancel left open end with the run, unfinished (as in an
                # export). A sub-run's run.end (``t1.c3/run``) ends only the spans below it: its
                # span ids all start with its prefix (``t1.c3/``), and its caller's spans go on.
                prefix = event.span.removesuffix("run")
                inside = [s for s in self._open if s != event.span and s.startswith(prefix)]
                for span in reversed(inside):
                    self._end(span, None, event.ts)
            self._end(event.span, event, event.ts)

    def _release(self) -> None:
        """After tracing broke: stop making this run's spans current in the task the run ends in,
        so a caller of ``arun`` does not go on under them. The spans are not ended."""
        task = _current_task()
        for opened in reversed(list(self._open.values())):
            if opened.token is not None and opened.task is task:
                _reset(opened.token)
        self._open.clear()

    def _start(self, event: Event) -> None:
        from opentelemetry import context, trace

        record = Reader([event]).span_list()[0]
        shape = describe(record, run_id=self._run_id)
        parent = self._open.get(event.parent or "")
        # The run's span nests under whatever span the application has current.
        ctx = trace.set_span_in_context(parent.span) if parent is not None else None
        span = self._tracer.start_span(
            shape.name, context=ctx, kind=_kind(shape), attributes=dict(shape.attributes),
            start_time=nanos(event.ts),
        )
        opened = _Open(span, event)
        self._open[event.span] = opened
        if record.kind in _CURRENT_KINDS:
            opened.task = _current_task()
            opened.token = context.attach(trace.set_span_in_context(span))

    def _end(self, span_id: str, end: Event | None, ts: float) -> None:
        opened = self._open.pop(span_id, None)
        if opened is None:
            return
        events = opened.events if end is None else [*opened.events, end]
        record = Reader(events).span_list()[0]
        shape = describe(record, run_id=self._run_id)
        span = opened.span
        span.set_attributes(dict(shape.attributes))
        for event in shape.events:
            span.add_event(event.name, dict(event.attributes), timestamp=event.time)
        if shape.error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, shape.error[1]))
        if opened.token is not None and opened.task is _current_task():
            # A token can only be reset in the context that made it; a span ended from another
            # task (never, as the runtime emits them) leaves that task's context as it is.
            _reset(opened.token)
        span.end(end_time=nanos(ts))


def _kind(shape: SpanShape) -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT if shape.client else SpanKind.INTERNAL


def _current_task() -> trio.lowlevel.Task | None:
    try:
        return trio.lowlevel.current_task()
    except RuntimeError:  # not in a trio task
        return None


def _reset(token: object) -> None:
    from opentelemetry import context

    context.detach(token)  # type: ignore[arg-type]  # the token context.attach gave

