"""``tool.agent`` sub-runs in OpenTelemetry: their spans nest under the agent call's span, live and
in ``export --format otlp-json``, and the tree is the transcript's, sub-runs and all."""

from __future__ import annotations

from opentelemetry import trace

from ptcrun import Limits, Request, Runtime, ScriptedProvider, Transcript
from ptcrun.telemetry._otlp import otlp_json

from .conftest import by_ptcrun_span, parent_of
from .test_otlp import exported_tree, live_tree

CHUNKS = ["alpha beta gamma", "delta epsilon", "zeta"]
sdk = trace.get_tracer("a user's tool")


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def words(text: str) -> int:
    """The number of words in ``text``."""
    with sdk.start_as_current_span("count words"):
        return len(text.split())


def sub_planner(request: Request) -> str:
    goal = request.messages[0].content.split("## Goal", 1)[1].strip().splitlines()[0]
    if goal == "Count the words of each chunk.":
        return block("""
counts = pmap(lambda i: tool.agent("Count one chunk.", data=[i], max_tokens=3_000, max_turns=1),
              range(len(data)))
done(sum(counts))
""")
    if goal == "Give up.":
        return block('fail("nothing to count")')
    return block("done(tool.words(data[0]))")


TOP = block("""
total = tool.agent("Count the words of each chunk.", data=[0, 1], max_tokens=20_000, max_turns=1)
try:
    tool.agent("Give up.", data=[2], max_tokens=3_000, max_turns=1)
except Exception as e:
    print(e)
done(total + tool.words(data[2]))
""")


def nested_run(tmp_path):
    """A run whose sub-run (depth 1) starts two sub-runs (depth 2), then a sub-run that fails,
    then a call of its own after them."""
    rt = Runtime(planner=ScriptedProvider([TOP]), sub_planner=ScriptedProvider(sub_planner), tools=[words],
                 limits=Limits(planner_max_tokens=300), transcript_dir=tmp_path)
    result = rt.run("How many words?", CHUNKS)
    assert result.status == "done" and result.answer == 6, result
    return Transcript.load(result.transcript)


def test_sub_runs_spans_nest_under_the_agent_calls_span_as_in_the_transcript(exporter, tmp_path):
    t = nested_run(tmp_path)
    all_spans = exporter.get_finished_spans()
    spans = by_ptcrun_span(all_spans)

    def parent(span_id: str) -> str | None:
        found = parent_of(spans[span_id], all_spans)
        return None if found is None else found.attributes["ptcrun.span"]

    # Every span of every run in the tree, with the transcript's parent; one trace.
    tree = {s.span: s.parent for s in t.spans() if s.kind != "sandbox"}
    assert {s: parent(s) for s in spans} == tree
    assert len({s.context.trace_id for s in all_spans}) == 1
    walked = [prefix for prefix, _ in t.walk()]
    assert len(walked) == 5
    for prefix, run in t.walk():
        span = spans[f"{prefix}run"]
        assert span.name == "invoke_agent ptcrun"
        assert span.attributes["ptcrun.run.depth"] == run.depth == prefix.count("/")
        assert span.attributes["ptcrun.status"] == run.status
        assert span.attributes["ptcrun.run.turns"] == len(run.turns)
        if prefix:
            call = prefix.removesuffix("/")
            assert parent(f"{prefix}run") == call
            assert spans[call].name == "execute_tool agent"
        # Each run's turn numbers are its own: a sub-run's program is turn 1 of the sub-run.
        assert spans[f"{prefix}t1.program"].attributes["ptcrun.turn"] == 1
    failed = next(run for _, run in t.walk() if run.goal == "Give up.")
    assert failed.status == "failed"
    failed_span = next(s for s in all_spans if s.name == "invoke_agent ptcrun"
                       and s.attributes["ptcrun.status"] == "failed")
    assert failed_span.status.status_code is trace.StatusCode.ERROR

    # A sub-run's end ends its own spans only: its caller's spans end at their own end events.
    for record in t.spans():
        if record.kind != "sandbox":
            assert spans[record.span].end_time == round(record.ended * 1e9), record.span
    # A user's tool called in a depth-2 sub-run makes its span under that sub-run's call span.
    for user_span in (s for s in all_spans if s.name == "count words"):
        call = parent_of(user_span, all_spans)
        assert call.name == "execute_tool words"
    depths = sorted(spans[parent_of(s, all_spans).attributes["ptcrun.span"]].attributes["ptcrun.span"].count("/")
                    for s in all_spans if s.name == "count words")
    assert depths == [0, 2, 2]
    # The application's context is its own again after the run.
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_the_export_of_a_run_with_sub_runs_is_the_live_tree(exporter, tmp_path):
    t = nested_run(tmp_path)
    live = live_tree(tuple(s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "ptcrun"))
    assert exported_tree(otlp_json(t)) == live
    assert live["t1.c1/t1.c1/run"]["parent"] == "t1.c1/t1.c1"


def test_a_sub_run_its_clock_ends_closes_its_own_spans_and_not_its_callers(exporter, tmp_path):
    async def slow_worker(request: Request) -> str:
        import trio

        await trio.sleep(5)
        return "late"

    top = block("""
try:
    tool.agent("Ask the worker.", data=[0], max_tokens=8_000, max_turns=1, timeout=0.5)
except Exception as e:
    print(e)
done(tool.words(data[1]))
""")
    rt = Runtime(planner=ScriptedProvider([top]), worker=ScriptedProvider(slow_worker), tools=[words],
                 sub_planner=ScriptedProvider([block("done(tool.worker(data[0], 'count'))")]),
                 limits=Limits(planner_max_tokens=300), transcript_dir=tmp_path)
    result = rt.run("How many words?", CHUNKS)
    assert result.status == "done" and result.answer == 2, result
    t = Transcript.load(result.transcript)
    [(call, sub)] = t.sub_runs.items()
    assert sub.status == "timeout"
    all_spans = exporter.get_finished_spans()
    spans = by_ptcrun_span(all_spans)
    tree = {s.span: s.parent for s in t.spans() if s.kind != "sandbox"}
    assert {s: parent_of(spans[s], all_spans).attributes["ptcrun.span"] if spans[s].parent else None
            for s in spans} == tree
    # The sub-run's worker call never ended: its span ends, unfinished, with the sub-run.
    request = spans[f"{call}/t1.c1"]
    assert request.attributes["ptcrun.status"] == "unfinished"
    assert request.end_time == spans[f"{call}/run"].end_time
    assert spans[f"{call}/run"].attributes["error.type"] == "TimeLimitExceeded"
    # The caller's program went on after it, and its spans end at their own end events.
    program = next(r for r in t.spans() if r.span == "t1.program")
    assert spans["t1.program"].end_time == round(program.ended * 1e9) > spans[f"{call}/run"].end_time
    assert spans["t1.program"].attributes["ptcrun.status"] == "done"


def test_the_team_minutes_examples_spans_match_its_transcript(exporter, tmp_path):
    """The example with sub-runs, offline: one sub-run per team under its agent call, each with
    its turn, program, pmap, items and worker calls, as the transcript records them."""
    import sys
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    sys.path.insert(0, str(examples))
    import _common

    minutes = _common.load_module(examples / "team_minutes" / "run.py")
    rules = _common.load_module(examples / "team_minutes" / "worker_rules.py")
    providers = _common.choose_providers(programs=minutes.PROGRAMS, respond=rules.respond, offline=True,
                                         latency=(0.0, 0.005), seed=3)
    result, _ = minutes.run_minutes(providers=providers, transcript_dir=tmp_path)
    assert result.status == "done", result.error
    t = Transcript.load(result.transcript)
    all_spans = exporter.get_finished_spans()
    spans = by_ptcrun_span(all_spans)
    tree = {s.span: s.parent for s in t.spans() if s.kind != "sandbox"}
    assert {s: (parent_of(spans[s], all_spans).attributes["ptcrun.span"] if spans[s].parent else None)
            for s in spans} == tree
    assert len(spans) == len(all_spans)
    subs = list(t.walk())[1:]
    assert len(subs) == 5
    for prefix, sub in subs:
        run = spans[f"{prefix}run"]
        assert run.attributes["ptcrun.run.depth"] == 1
        assert run.attributes["gen_ai.usage.input_tokens"] == (sub.usage.planner_input_tokens
                                                               + sub.usage.worker_input_tokens)
        assert spans[prefix.removesuffix("/")].name == "execute_tool agent"
        assert sum(1 for c in sub.calls if spans[f"{prefix}{c.span}"].name == "execute_tool worker") == 12
