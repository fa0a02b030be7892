"""Sub-runs in the transcript: read back as a tree, and every view shows the nesting."""

from __future__ import annotations

import json

import pytest

from ptcrun import Limits, Request, Runtime, ScriptedProvider, Transcript
from ptcrun.transcript._chrome import chrome_trace
from ptcrun.transcript._html import render_html
from ptcrun.transcript._views import render_show, render_tree

CHUNKS = ["alpha beta gamma", "delta epsilon", "zeta"]


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def sub_planner(request: Request) -> str:
    goal = request.messages[0].content.split("## Goal", 1)[1].strip().splitlines()[0]
    if goal == "Count the words of each chunk.":
        return block("""
counts = pmap(lambda i: tool.agent("Count one chunk.", data=[i], max_tokens=3_000, max_turns=1),
              range(len(data)))
done(sum(counts))
""")
    return block("print(data[0])\ndone(len(data[0].split()))")


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """A run that starts one sub-run (depth 1) over chunks 0 and 1, which starts two (depth 2)."""
    top = block("""
total = tool.agent("Count the words of each chunk.", data=[0, 1], max_tokens=20_000, max_turns=1)
done(total)
""")
    rt = Runtime(planner=ScriptedProvider([top]), sub_planner=ScriptedProvider(sub_planner),
                 limits=Limits(planner_max_tokens=300), transcript_dir=tmp_path_factory.mktemp("runs"))
    result = rt.run("How many words?", CHUNKS)
    assert result.status == "done" and result.answer == 5, result
    return Transcript.load(result.transcript)


def test_load_gives_the_sub_runs_back_as_a_tree(nested):
    assert nested.depth == 0
    [(call, child)] = nested.sub_runs.items()
    assert call == "t1.c1"
    assert (child.depth, child.goal, child.status, child.answer) == (1, "Count the words of each chunk.", "done", 5)
    assert child.run["data"]["chunks"] == 2
    assert sorted(child.sub_runs) == ["t1.c1", "t1.c2"]
    assert sorted(g.answer for g in child.sub_runs.values()) == [2, 3]
    assert [c.tool for c in nested.calls] == ["agent"]
    assert sorted(c.tool for c in child.calls) == ["agent", "agent"]
    prefixes = [prefix for prefix, _ in nested.walk()]
    assert prefixes[:2] == ["", "t1.c1/"]
    assert sorted(prefixes[2:]) == ["t1.c1/t1.c1/", "t1.c1/t1.c2/"]
    # The run's own records hold only its own turn; the file's last event is its run.end.
    assert [t.number for t in nested.turns] == [1]
    assert nested.events[-1]["type"] == "run.end" and nested.events[-1]["span"] == "run"


def test_from_events_reads_the_same_tree_as_load(nested):
    with open(nested.path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    again = Transcript.from_events(events)
    assert [p for p, _ in again.walk()] == [p for p, _ in nested.walk()]
    assert [r.answer for _, r in again.walk()] == [r.answer for _, r in nested.walk()]


def test_spans_cover_the_whole_tree_with_the_calls_as_parents(nested):
    spans = {s.span: s for s in nested.spans()}
    assert spans["t1.c1/run"].parent == "t1.c1"
    assert spans["t1.c1/run"].fields["depth"] == 1
    assert spans["t1.c1/t1.c2/run"].parent == "t1.c1/t1.c2"
    assert spans["t1.c1/t1.c2/t1.program"].parent == "t1.c1/t1.c2/t1"


def test_a_sub_run_cut_short_reads_as_incomplete(nested):
    with open(nested.path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    # Drop the depth-1 sub-run's run.end, as a kill at that moment would leave it.
    cut = [e for e in events if not (e["type"] == "run.end" and e["span"] == "t1.c1/run")]
    again = Transcript.from_events(cut)
    assert again.status == "done"
    assert again.sub_runs["t1.c1"].status == "incomplete"


def test_tree_draws_each_sub_run_under_its_call(nested):
    text = render_tree(nested)
    lines = text.splitlines()
    call = next(i for i, line in enumerate(lines) if "agent c1  ok" in line)
    assert "sub-run: Count the words of each chunk.  done" in lines[call + 1]
    assert lines[call + 1].index("sub-run") > lines[call].index("agent")
    assert text.count("sub-run: Count one chunk.  done") == 2


def test_show_lists_each_sub_run_indented_by_depth(nested):
    text = render_show(nested)
    assert "\n    ══ sub-run of call t1.c1 (depth 1) ══ done · 1 turn · " in text
    assert "\n        ══ sub-run of call t1.c1/t1.c1 (depth 2) ══ done · 1 turn · " in text
    assert "\n        ══ sub-run of call t1.c1/t1.c2 (depth 2) ══ done · 1 turn · " in text
    assert "\n        goal: Count one chunk." in text
    # The summary counts the run as a whole: one turn of its own, every sub-run's tokens.
    assert "\nturns      1\n" in text
    assert f"tokens     {nested.usage.total_tokens:,} of " in text


def test_chrome_export_makes_each_sub_run_a_process(nested):
    trace = chrome_trace(nested)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert len(names) == 4
    assert names[1].startswith("ptcrun ")
    assert names[2] == "sub-run of t1.c1 (depth 1): Count the words of each chunk."
    assert sorted([names[3], names[4]]) == [
        "sub-run of t1.c1/t1.c1 (depth 2): Count one chunk.",
        "sub-run of t1.c1/t1.c2 (depth 2): Count one chunk.",
    ]
    runs = [e for e in trace["traceEvents"] if e.get("cat") == "run"]
    assert sorted(e["pid"] for e in runs) == [1, 2, 3, 4]
    # A sub-run lies inside the call that started it, on the run's time axis.
    [call] = [e for e in trace["traceEvents"] if e.get("cat") == "call" and e["pid"] == 1]
    [sub] = [e for e in runs if e["pid"] == 2]
    assert call["ts"] <= sub["ts"] and sub["ts"] + sub["dur"] <= call["ts"] + call["dur"]


def test_the_html_timeline_has_a_section_and_a_bar_for_each_sub_run(nested):
    page = render_html(nested)
    assert page.count('<section class="sub-run"') == 3
    assert 'data-sub-run="t1.c1/t1.c2"' in page
    assert "sub-runs 1</" in page  # the overview's row of sub-run bars
    calls = json.loads(page.split('id="call-data">', 1)[1].split("</script>", 1)[0])
    assert {"t1.c1", "t1.c1/t1.c1", "t1.c1/t1.c2"} <= set(calls)


def test_a_run_killed_before_its_end_still_counts_its_sub_runs_usage(nested):
    with open(nested.path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    killed = Transcript.from_events(events[:-1])  # no run.end: the process was killed
    assert killed.status == "incomplete"
    assert killed.usage.planner_calls == nested.usage.planner_calls == 4
    assert killed.usage.total_tokens == nested.usage.total_tokens


def test_a_run_killed_just_after_a_sub_run_ended_lists_as_interrupted(nested, tmp_path):
    from ptcrun.transcript._runs import list_runs

    lines = nested.path.read_text(encoding="utf-8").splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if '"run.end"' in line and '"t1.c1/run"' in line)
    folder = tmp_path / "runs" / nested.path.parent.name
    folder.mkdir(parents=True)
    (folder / "transcript.jsonl").write_text("".join(lines[: end + 1]), encoding="utf-8")
    [run] = list_runs(tmp_path / "runs")
    # The last line is the sub-run's run.end, not the run's: the run did not end.
    assert (run.status, run.goal) == ("interrupted", "How many words?")
    assert render_show(Transcript.load(folder)).startswith(f"run {folder.name}: interrupted · ")


def test_show_prompt_shows_the_sub_runs_prompts_too(nested):
    text = render_show(nested, prompt=True)
    assert text.count("prompt, system (") == 4  # the run's turn, and one turn of each of 3 sub-runs
    assert "Count one chunk." in text.split("══ sub-run of call t1.c1/t1.c1", 1)[1]
