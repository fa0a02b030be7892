"""Live OpenTelemetry spans of real runs (scripted LLMs, real sandbox), read back from the SDK's
in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from ptcrun import AnthropicProvider, Limits, Runtime, ScriptedProvider, Transcript
from ptcrun.telemetry._live import open_tracing, tracer_provider_configured

from ..runtime.providers.fakeservers import FakeServer, anthropic_message
from ..transcript.example_runs import CHUNKS, block, counting_worker, runtime
from .conftest import by_ptcrun_span, parent_of

NESTING = """
counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data[:3])
print(tool.fetch_sync("a"), tool.fetch_async("b"))
done(sum(counts))
"""

sdk = trace.get_tracer("a provider SDK")


def fetch_sync(key: str) -> str:
    """A sync tool (it runs on a thread) that makes its own span, as an HTTP instrumentor would."""
    with sdk.start_as_current_span(f"GET {key}"):
        return key.upper()


async def fetch_async(key: str) -> str:
    """An async tool that makes its own span."""
    with sdk.start_as_current_span(f"GET {key}"):
        await trio.lowlevel.checkpoint()
        return key.upper()


def worker_with_sdk_span(request):
    with sdk.start_as_current_span("worker SDK call", attributes={"prompt": request.messages[-1].content}):
        return counting_worker(request)


def test_spans_made_in_providers_and_tools_nest_under_ptcrun_spans(exporter, tmp_path):
    planner = ScriptedProvider(lambda request: _with_span("planner SDK call", block(NESTING)))
    rt = Runtime(planner=planner, worker=ScriptedProvider(worker_with_sdk_span, latency=(0.0, 0.02)),
                 tools=[fetch_sync, fetch_async], limits=Limits(max_concurrency=2), transcript_dir=tmp_path)
    result = rt.run("How many ERROR lines?", CHUNKS)
    assert result.status == "done", result.error

    spans = exporter.get_finished_spans()
    parents = {s.name: [] for s in spans}
    for s in spans:
        parent = parent_of(s, spans)
        parents[s.name].append(parent.name if parent else None)
    assert parents["planner SDK call"] == ["chat scripted"]
    assert parents["worker SDK call"] == ["chat scripted"] * 3
    # The sync tool's span was made on a worker thread: the context crossed into it.
    assert parents["GET a"] == ["execute_tool fetch_sync"]
    assert parents["GET b"] == ["execute_tool fetch_async"]
    ours = by_ptcrun_span(spans)
    # Three worker calls ran at once, two at a time: each SDK span is under its own request's span.
    requests = {r.span: r for r in Transcript.load(result.transcript).llm_calls}
    for s in spans:
        if s.name == "worker SDK call":
            chat = parent_of(s, spans)
            assert s.attributes["prompt"] == requests[chat.attributes["ptcrun.span"]].prompt
            assert parent_of(chat, spans).name == "execute_tool worker"
    assert parent_of(ours["t1.c4"], spans) is ours["t1.program"]  # a call outside pmap


def _with_span(name: str, reply: str) -> str:
    with sdk.start_as_current_span(name):
        return reply


def test_the_anthropic_sdks_own_span_nests_under_the_chat_span(exporter, tmp_path):
    program = "Done.\n```python\ndone(1)\n```"
    with FakeServer() as api:
        api.queue(anthropic_message(program, input_tokens=900, output_tokens=60))
        planner = AnthropicProvider("claude-sonnet-4-6", api_key="test-key", base_url=api.url)
        rt = Runtime(planner=planner, transcript_dir=tmp_path)
        result = rt.run("Anything?", ["x"])
        sent = api.received[0].headers
    assert result.status == "done", result.error

    spans = exporter.get_finished_spans()
    chat = by_ptcrun_span(spans)["t1.planner"]
    sdk_spans = [s for s in spans if s.instrumentation_scope.name != "ptcrun"]
    assert sdk_spans, "the anthropic SDK made no span"
    assert all(parent_of(s, spans) is chat for s in sdk_spans)
    assert chat.name == "chat claude-sonnet-4-6"
    assert chat.kind is trace.SpanKind.CLIENT
    assert chat.attributes["gen_ai.provider.name"] == "anthropic"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 900
    assert chat.attributes["gen_ai.usage.output_tokens"] == 60
    # The SDK propagated the trace to the server: one trace from the run to the API.
    assert sent["traceparent"].split("-")[1] == format(chat.context.trace_id, "032x")


def test_the_run_span_nests_under_the_applications_current_span(exporter, tmp_path):
    rt = runtime([block("done(1)")], tmp_path)
    with trace.get_tracer("app").start_as_current_span("handle request") as app_span:
        result = rt.run("Anything?", CHUNKS)
    assert result.status == "done"
    run = by_ptcrun_span(exporter.get_finished_spans())["run"]
    assert run.parent is not None and run.parent.span_id == app_span.get_span_context().span_id
    # The run's spans were current only while it ran.
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_errors_and_clocks_set_the_error_status_and_type(exporter, tmp_path):
    def failing(request):
        raise RuntimeError("the model server is down")

    program = """
results = pmap(lambda c: tool.worker(c, "Count."), data[:2])
print(results)
"""
    rt = runtime([block(program), block("x = 1")], tmp_path, worker=failing, max_turns=2)
    result = rt.run("How many ERROR lines?", CHUNKS)
    assert result.status == "max_turns"

    spans = by_ptcrun_span(exporter.get_finished_spans())
    llm = spans["t1.c1.llm1"]
    assert llm.status.status_code is trace.StatusCode.ERROR
    assert llm.attributes["error.type"] == "ProviderError"
    assert "the model server is down" in llm.status.description
    assert "gen_ai.usage.input_tokens" not in llm.attributes  # nothing was billed
    assert spans["t1.c1"].attributes["error.type"] == "ProviderError"
    assert spans["t1.m1"].attributes["error.type"] == "failed"
    assert spans["t1.m1"].status.description == "2 of 2 items failed"
    assert spans["run"].attributes["error.type"] == "max_turns"
    assert spans["run"].attributes["ptcrun.run.failed_calls"] == 2
    assert spans["t2"].status.status_code is trace.StatusCode.UNSET


async def test_a_cancelled_run_ends_every_open_span(exporter, tmp_path):
    program = 'print(pmap(lambda c: tool.worker(c, "Count."), data[:2]))'
    rt = runtime([block(program)], tmp_path, latency=30.0)
    with trio.move_on_after(1):
        await rt.arun("How many ERROR lines?", CHUNKS)
    spans = by_ptcrun_span(exporter.get_finished_spans())
    assert spans["run"].attributes["ptcrun.status"] == "cancelled"
    assert spans["t1.program"].attributes["ptcrun.status"] == "cancelled"
    # The worker requests were cancelled in flight; their calls and items never reported an end.
    assert spans["t1.c1.llm1"].attributes["error.type"] == "Cancelled"
    assert {spans[s].attributes["ptcrun.status"] for s in ("t1.c1", "t1.m1.i0", "t1.m1")} == {"unfinished"}
    for span in spans.values():
        assert span.end_time <= spans["run"].end_time
    assert trace.get_current_span() is trace.INVALID_SPAN


class Broken(SpanProcessor):
    def on_start(self, span, parent_context=None):
        if span.name == "program":
            raise RuntimeError("exporter misconfigured")


async def test_a_broken_tracing_setup_does_not_end_the_run(provider, tmp_path):
    provider.add_span_processor(Broken())
    result = await runtime([block("print(1)\ndone(2)")], tmp_path).arun("Anything?", CHUNKS)
    assert result.status == "done" and result.answer == 2
    # The spans made before it broke are no longer current once the run has returned.
    assert trace.get_current_span() is trace.INVALID_SPAN
    stopped = ("OpenTelemetry tracing stopped at a program.start event: RuntimeError: exporter misconfigured; "
               "the run and its transcript went on without it.")
    assert result.warnings == (stopped,)


def test_without_a_tracer_provider_there_is_no_tracing():
    assert not tracer_provider_configured()
    assert open_tracing(None, []) is None


def test_a_run_without_tracing_imports_no_opentelemetry(tmp_path):
    script = textwrap.dedent("""
        import sys
        from ptcrun import Runtime, ScriptedProvider
        rt = Runtime(planner=ScriptedProvider(["```python\\ndone(1)\\n```"]), transcript_dir=None)
        assert rt.run("Anything?", ["x"]).status == "done"
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"


def test_a_program_cannot_put_megabytes_into_a_span(exporter, tmp_path):
    program = """
def item(i):
    raise ValueError("x" * 1_000_000)
print(pmap(item, [1]))
done(1)
"""
    result = runtime([block(program)], tmp_path).run("Anything?", CHUNKS)
    assert result.status == "done"
    item = by_ptcrun_span(exporter.get_finished_spans())["t1.m1.i0"]
    assert item.attributes["error.type"] == "ValueError"
    assert len(item.status.description) == 1_000 and item.status.description.endswith("x…")
