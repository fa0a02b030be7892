"""The OpenTelemetry span tree of the log-audit example (offline) matches its transcript: the same
run, turns, programs, pmaps, items, calls and LLM requests, the same parents, usage and errors."""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry import trace

from ptcrun import Transcript

from .conftest import by_ptcrun_span, parent_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _common  # noqa: E402  # examples/ is not a package

audit = _common.load_module(EXAMPLES / "log_audit" / "run.py")
worker_rules = _common.load_module(EXAMPLES / "log_audit" / "worker_rules.py")


def flaky():
    """The example's rule-based worker, whose model fails its third request and answers its fifth
    with text that is not JSON (the worker tool asks it again): the audit retries the chunk."""
    requests = []

    def respond(request):
        requests.append(request)
        if len(requests) == 3:
            raise RuntimeError("the worker model is overloaded")
        if len(requests) == 5:
            return "I could not read these lines."
        return worker_rules.respond(request)

    return respond


def test_the_log_audits_spans_match_its_transcript(exporter, tmp_path):
    log, truth = audit.prepare_corpus(tmp_path / "corpus", lines=1_500, seed=3, quiet=True)
    providers = _common.choose_providers(programs=audit.PROGRAMS, respond=flaky(), offline=True,
                                         latency=(0.0, 0.01), seed=3)
    result = audit.run_audit(log, truth, providers=providers, transcript_dir=tmp_path / "runs").result
    assert result.status == "done", result.error
    t = Transcript.load(result.transcript)
    all_spans = exporter.get_finished_spans()
    spans = by_ptcrun_span(all_spans)

    def parent(span_id: str) -> str | None:
        found = parent_of(spans[span_id], all_spans)
        return None if found is None else found.attributes["ptcrun.span"]

    # One span per node of the transcript's tree (sandbox starts are events), with its parent.
    tree = {s.span: s.parent for s in t.spans() if s.kind != "sandbox"}
    assert {s: parent(s) for s in spans} == tree
    assert len(spans) == len(all_spans)

    run = spans["run"]
    assert run.name == "invoke_agent ptcrun"
    assert run.attributes["ptcrun.status"] == "done" and run.status.status_code is trace.StatusCode.UNSET
    assert run.attributes["gen_ai.usage.input_tokens"] == t.usage.planner_input_tokens + t.usage.worker_input_tokens
    assert run.attributes["gen_ai.usage.output_tokens"] == t.usage.planner_output_tokens + t.usage.worker_output_tokens
    assert run.attributes["ptcrun.run.turns"] == len(t.turns)
    assert run.attributes["ptcrun.run.id"] == t.path.parent.name

    assert [spans[f"t{turn.number}"].attributes["ptcrun.status"] for turn in t.turns] == [
        turn.status for turn in t.turns
    ]
    for turn in t.turns:
        if turn.program is not None:
            program = spans[f"t{turn.number}.program"]
            assert program.attributes["ptcrun.status"] == turn.status

    assert t.pmaps, "the audit fanned out"
    for p in t.pmaps:
        span = spans[p.span]
        assert span.name == "pmap"
        assert (span.attributes["ptcrun.pmap.total"], span.attributes["ptcrun.pmap.done"],
                span.attributes["ptcrun.pmap.failed"]) == (p.total, p.done, p.failed)
        items = [s for s, parent_id in tree.items() if parent_id == p.span]
        assert len(items) == len(p.items)
        for item in p.items:
            error = spans[f"{p.span}.i{item.index}"].attributes.get("error.type")
            assert error == (item.error["type"] if item.error else None)
    assert sum(1 for p in t.pmaps for i in p.items if i.error) == 1

    assert len(t.calls) > 10
    assert [c.error["type"] for c in t.calls if c.error] == ["ProviderError"]
    assert sum(len(c.llm) == 2 for c in t.calls) == 1  # the repaired answer
    assert len(t.pmaps) == 2  # the fan-out, and the retry of the failed chunk
    for call in t.calls:
        span = spans[call.span]
        assert span.name == f"execute_tool {call.tool}"
        assert span.attributes["gen_ai.tool.call.id"] == call.span
        assert span.attributes["ptcrun.status"] == call.status
        error = span.attributes.get("error.type")
        assert error == (call.error["type"] if call.error else None)

    for request in t.llm_calls:
        span = spans[request.span]
        assert span.kind is trace.SpanKind.CLIENT
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["ptcrun.llm.role"] == request.role
        if request.status == "ok":
            assert span.attributes["gen_ai.usage.input_tokens"] == request.input_tokens
            assert span.attributes["gen_ai.usage.output_tokens"] == request.output_tokens
        else:
            assert span.attributes["error.type"] == request.error["type"] == "ProviderError"
            assert span.status.status_code is trace.StatusCode.ERROR
            assert "the worker model is overloaded" in span.status.description
        # The span lasts exactly as long as the transcript says the request did.
        assert span.start_time == round(request.started * 1e9) and span.end_time == round(request.ended * 1e9)
    planner = [r for r in t.llm_calls if r.role == "planner"]
    assert [parent(r.span) for r in planner] == [f"t{turn.number}" for turn in t.turns]
