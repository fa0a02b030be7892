"""A sub-run's ending is never silent in its caller's Result, transcript and views.

The rule is the one failed worker calls follow (``_failures.py``): a sub-run that did not answer
is a failed ``tool.agent`` call; one that answered while its own calls failed makes the answer
built on it ``partial``.
"""

from __future__ import annotations

import json

from ptcrun import Limits, Runtime, ScriptedProvider, Transcript, tool
from ptcrun.transcript._views import render_show, render_summary

from ..clirun import run_cli

CHUNKS = ["alpha beta gamma", "delta epsilon", "zeta", "eta theta iota kappa"]
LIMITS = {"call_timeout": 20, "pmap_timeout": 40, "turn_timeout": 60, "run_timeout": 120,
          "planner_max_tokens": 300}


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


@tool
def lookup(word: str) -> str:
    """Look a word up; words with a 'z' are not found."""
    if "z" in word:
        raise ValueError(f"no entry for {word}")
    return word.upper()


def runtime(top, sub, tmp_path, **limits) -> Runtime:
    return Runtime(
        planner=ScriptedProvider(top),
        sub_planner=ScriptedProvider(sub),
        tools=[lookup],
        limits=Limits(**{**LIMITS, **limits}),
        transcript_dir=tmp_path,
    )


# The sub-run looks each word of its chunk up; words with a "z" fail, and it answers anyway.
SUB_PARTIAL = block("""
found = pmap(tool.lookup, data[0].split())
done([x for x in found if not isinstance(x, Failure)])
""")


def test_an_answer_built_on_a_partial_sub_run_is_partial(tmp_path):
    top = block("""done(tool.agent("Look the words up.", data=[2], max_tokens=8_000, max_turns=1))""")
    result = runtime([top], [SUB_PARTIAL], tmp_path).run("Look up.", CHUNKS)
    assert result.status == "done"
    assert result.answer == []  # "zeta" was not found: the sub-run answered with nothing
    assert result.sub_runs == {"done": 1}
    assert result.failed_sub_runs == 0 and result.sub_run_count == 1
    # The sub-run's failed lookup is a failure the answer was built on.
    assert result.failed_calls == {"ToolError": 1}
    assert result.calls_made == 2  # the agent call, and the sub-run's one pmap item
    assert result.partial
    t = Transcript.load(result.transcript)
    assert t.partial and t.failed_calls == {"ToolError": 1}
    assert t.sub_run_statuses == {"done": 1}
    assert "status     done (partial: 1 of 2 calls failed)" in render_summary(t)
    assert "sub-runs   1: 1 done" in render_summary(t)
    assert "══ sub-run of call t1.c1 (depth 1) ══ done (partial: 1 of 1 call failed)" in render_show(t)


def test_the_planner_is_told_when_a_sub_run_answered_while_its_calls_failed(tmp_path):
    top = [
        block("""print(tool.agent("Look the words up.", data=[2], max_tokens=8_000, max_turns=1))"""),
        block("done('seen')"),
    ]
    planner = ScriptedProvider(top)
    rt = Runtime(planner=planner, sub_planner=ScriptedProvider([SUB_PARTIAL]), tools=[lookup],
                 limits=Limits(**LIMITS), transcript_dir=tmp_path)
    rt.run("Look up.", CHUNKS)
    told = planner.requests[1].messages[-1].content
    assert ("- tool.agent sub-runs that answered while their own calls failed: 1; 1 of their calls "
            "failed (1 ToolError), so their answers may be incomplete") in told


def test_sub_runs_that_did_not_answer_are_counted_by_how_they_ended(tmp_path):
    top = block("""
r = pmap(lambda i: tool.agent("Judge.", data=[i], max_tokens=6_000, max_turns=1), [0, 1, 2])
done([x if not isinstance(x, Failure) else x.kind for x in r])
""")
    sub = block("if len(data[0]) > 14:\n    fail('too long to judge')\ndone('fine')")
    result = runtime([top], [sub, sub, sub], tmp_path).run("Judge.", CHUNKS)
    assert result.answer == ["ToolError", "fine", "fine"]
    assert result.sub_runs == {"done": 2, "failed": 1}
    assert result.failed_sub_runs == 1
    # The failed sub-run is one failed tool.agent call; what it did inside is not counted.
    assert result.failed_calls == {"ToolError": 1}
    assert result.calls_made == 3
    assert result.partial
    end = json.loads(result.transcript.read_text().splitlines()[-1])
    assert end["sub_runs"] == {"done": 2, "failed": 1}
    t = Transcript.load(result.transcript)
    assert t.sub_run_statuses == {"done": 2, "failed": 1}
    assert "sub-runs   3: 2 done, 1 failed" in render_summary(t)


def test_sub_runs_are_counted_at_every_depth(tmp_path):
    top = block("""done(tool.agent("Nest.", data=[0], max_tokens=20_000, max_turns=1))""")

    def sub(request):
        if "Deeper." in request.messages[0].content:
            return block("fail('nothing down here')")
        return block("""
try:
    tool.agent("Deeper.", data=[0], max_tokens=5_000, max_turns=1)
except ToolError:
    pass
done('top of the sub-run')
""")

    result = runtime([top], sub, tmp_path).run("Nest.", CHUNKS)
    assert result.answer == "top of the sub-run"
    assert result.sub_runs == {"done": 1, "failed": 1}
    # The depth-1 sub-run caught its sub-run's failure and answered: its answer is partial,
    # and so is the run's.
    assert result.failed_calls == {"ToolError": 1}
    assert result.partial


def test_a_run_without_sub_runs_says_none(tmp_path):
    result = runtime([block("done(1)")], [block("done(2)")], tmp_path).run("One.", CHUNKS)
    assert result.sub_runs == {} and result.sub_run_count == 0
    t = Transcript.load(result.transcript)
    assert "sub-runs" not in render_summary(t)


def test_the_command_line_says_a_sub_run_failed(tmp_path):
    (tmp_path / "corpus.txt").write_text("a z\nb\n")
    top = block("""
r = pmap(lambda i: tool.agent("Look.", data=[i], max_tokens=8_000, max_turns=1), [0, 1])
done([x for x in r if not isinstance(x, Failure)])
""")
    sub = block("if 'z' in data[0]:\n    fail('a z')\ndone(data[0])")
    (tmp_path / "top.json").write_text(json.dumps([top]))
    (tmp_path / "sub.json").write_text(json.dumps([sub, sub]))
    argv = ["run", str(tmp_path / "corpus.txt"), "--goal", "Look.", "--chunk-lines", "1",
            "--planner", f"scripted:{tmp_path / 'top.json'}",
            "--sub-planner", f"scripted:{tmp_path / 'sub.json'}", "--out", str(tmp_path / "runs"), "--quiet"]
    code, out, err = run_cli([*argv, "--json"])
    assert code == 0, err
    shown = json.loads(out)
    assert shown["sub_runs"] == {"done": 1, "failed": 1}
    assert shown["partial"] is True and shown["failed_calls"] == {"ToolError": 1}
    assert "1 of 2 calls failed (1 ToolError); the answer was built while they were failing" in err
    (tmp_path / "sub.json").write_text(json.dumps([sub, sub]))
    code, out, err = run_cli([*argv, "--fail-on-partial"])
    assert code == 6
    assert "sub-runs   2: 1 done, 1 failed" in out
    code, out, _ = run_cli(["runs", "--out", str(tmp_path / "runs"), "--json"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["sub_runs"], r["failed_sub_runs"], r["turns"]) for r in rows] == [(2, 1, 1), (2, 1, 1)]
    # Tokens are the whole tree's: the run's own requests and its sub-runs'.
    t = Transcript.load(rows[0]["transcript"])
    own = sum(c.input_tokens + c.output_tokens for c in t.llm_calls)
    below = sum(sub.usage.total_tokens for sub in t.sub_runs.values())
    assert below > 0 and rows[0]["tokens"] == own + below == t.usage.total_tokens
    assert rows[0]["status"] == "done"


def test_a_run_killed_after_a_sub_run_ended_is_listed_as_the_top_run(tmp_path):
    from ptcrun.transcript._runs import list_runs

    top = block("""
print(tool.agent("Count.", data=[0], max_tokens=8_000, max_turns=1))
done("whole")
""")
    result = runtime([top], [block("done(len(data))")], tmp_path / "runs").run("Count.", CHUNKS)
    lines = result.transcript.read_text().splitlines(keepends=True)
    # Cut the file just after the sub-run's run.end, as a kill at that moment would leave it.
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["span"] == "t1.c1/run"
               and json.loads(line)["type"] == "run.end")
    result.transcript.write_text("".join(lines[: cut + 1]))
    [run] = list_runs(tmp_path / "runs")
    assert run.status == "interrupted"  # not the sub-run's "done"
    assert run.turns == 1
    sub_tokens = json.loads(lines[cut])["usage"]["total_tokens"]
    top_tokens = sum(
        e["input_tokens"] + e["output_tokens"]
        for e in map(json.loads, lines[:cut]) if e["type"] == "llm.end" and "/" not in e["span"]
    )
    assert sub_tokens > 0 and run.tokens == top_tokens + sub_tokens
    assert (run.sub_runs, run.failed_sub_runs) == (1, 0)
