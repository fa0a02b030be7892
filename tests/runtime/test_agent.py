"""tool.agent end to end: sub-runs over slices of the corpus and of the budget."""

from __future__ import annotations

import json

import attrs
import pytest
import trio

from ptcrun import Limits, Request, Runtime, ScriptedProvider, Transcript


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def goal_of(request: Request) -> str:
    """The (sub-)run's goal, as its first message gives it."""
    return request.messages[0].content.split("## Goal", 1)[1].strip().splitlines()[0]


CHUNKS = ["alpha beta gamma", "delta epsilon", "zeta", "eta theta iota kappa"]

LIMITS = {"call_timeout": 20, "pmap_timeout": 40, "turn_timeout": 60, "run_timeout": 120,
          "planner_max_tokens": 300}


def runtime(top, sub, tmp_path, **limits) -> Runtime:
    return Runtime(
        planner=ScriptedProvider(top),
        sub_planner=ScriptedProvider(sub) if not isinstance(sub, ScriptedProvider) else sub,
        limits=Limits(**{**LIMITS, **limits}),
        transcript_dir=tmp_path,
    )


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.transcript.read_text().splitlines()]


def count_words(request: Request) -> str:
    return block("print(len(data), budget.remaining.tokens)\ndone(sum(len(c.split()) for c in data))")


def test_sub_runs_answer_over_their_slice_and_are_charged_to_the_run(tmp_path):
    top = block("""
counts = pmap(lambda i: tool.agent("Count the words.", data=[i], max_tokens=6_000, max_turns=1),
              range(len(data)))
both = tool.agent("Count the words.", data=[0, 3], max_tokens=6_000, max_turns=1)
done({"each": counts, "both": both})
""")
    rt = runtime([top], count_words, tmp_path)
    result = rt.run("Count words per chunk.", CHUNKS)
    assert result.status == "done", result.error
    assert result.answer == {"each": [3, 2, 1, 4], "both": 7}
    # One planner request for the run, one for each of the five sub-runs: all charged here.
    assert result.usage.planner_calls == 6
    runs = [e for e in events(result) if e["type"] == "run.start"]
    assert [r["depth"] for r in runs] == [0, 1, 1, 1, 1, 1]
    assert sorted(r["data"]["chunks"] for r in runs[1:]) == [1, 1, 1, 1, 2]
    # budget.remaining inside a sub-run shows its slice, not the run's budget.
    outputs = [e for e in events(result) if e["type"] == "program.output" and "/" in e["span"]]
    assert outputs and all(int(e["text"].split()[1]) <= 6_000 for e in outputs)


def test_a_sub_run_cannot_spend_more_than_its_slice(tmp_path):
    # The sub-run's planner reply alone needs more than the 500 tokens it was given.
    top = block("""
try:
    tool.agent("Count the words.", data=[0], max_tokens=500)
except ToolError as exc:
    print("ToolError", exc)
done("ok")
""")
    rt = runtime([top], count_words, tmp_path)
    result = rt.run("Count.", CHUNKS)
    assert result.status == "done"
    printed = result.turns[0].output
    assert printed.startswith("ToolError tool 'agent' failed: the sub-run ended with status 'budget_exceeded'")
    assert "Limits.max_tokens=500" in printed
    sub_end = [e for e in events(result) if e["type"] == "run.end" and e["span"] != "run"]
    assert sub_end[0]["status"] == "budget_exceeded"
    assert sub_end[0]["usage"]["total_tokens"] == 0


def test_a_slice_larger_than_what_is_left_is_refused_before_the_sub_run_starts(tmp_path):
    top = block("""
try:
    tool.agent("Count the words.", data=[0], max_tokens=10_000_000)
except BudgetExceeded:
    print("BudgetExceeded")
done("ok")
""")
    sub = ScriptedProvider(count_words)
    rt = runtime([top], sub, tmp_path)
    result = rt.run("Count.", CHUNKS)
    assert result.turns[0].output == "BudgetExceeded\n"
    assert sub.requests == []


def test_the_depth_limit_is_refused_with_a_clear_error(tmp_path):
    top = block("""
done(tool.agent("Go one level deeper.", data=[0], max_tokens=8_000, max_turns=1))
""")

    def sub(request: Request) -> str:
        return block("""
try:
    tool.agent("Deeper still.", data=[0], max_tokens=1_000)
except LimitExceeded as exc:
    done(f"LimitExceeded: {exc}")
""")

    rt = runtime([top], sub, tmp_path, max_depth=1)
    result = rt.run("Nest.", CHUNKS)
    assert result.status == "done", result.error
    assert result.answer == (
        "LimitExceeded: tool.agent would start a sub-run at depth 2; Limits.max_depth=1 allows 1. "
        "Do this part with tool.worker and pmap, or raise max_depth."
    )


def test_max_depth_zero_offers_no_agent(tmp_path):
    top = block("""
try:
    tool.agent("Count.", data=[0], max_tokens=5_000)
except AttributeError as exc:
    done(str(exc))
""")
    result = runtime([top], count_words, tmp_path, max_depth=0).run("Tools?", CHUNKS)
    assert result.answer == "there is no tool named 'agent'; tools: worker"
    assert events(result)[0]["tools"] == ["worker"]


def test_fifty_sub_runs_under_concurrency_four_finish_and_keep_the_bound(tmp_path):
    in_flight = 0
    most = 0

    async def sub(request: Request) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await trio.sleep(0.01)
        in_flight -= 1
        return block("done(len(data[0]))")

    top = block("""
lengths = pmap(lambda i: tool.agent("Measure.", data=[i % 4], max_tokens=3_000, max_turns=1),
               range(50))
done(lengths)
""")
    rt = runtime([top], sub, tmp_path, max_concurrency=4, max_tokens=1_000_000)
    result = rt.run("Measure fifty times.", CHUNKS)
    assert result.status == "done", result.error
    assert result.answer == [len(CHUNKS[i % 4]) for i in range(50)]
    assert 1 <= most <= 4
    # Sub-runs alive at once (run.start to run.end at depth 1) never exceed the bound either.
    alive = peak = 0
    for e in events(result):
        if e["type"] in ("run.start", "run.end") and e["span"] != "run":
            alive += 1 if e["type"] == "run.start" else -1
            peak = max(peak, alive)
    assert peak == 4


def test_a_failed_sub_run_reaches_the_caller_as_an_error_value(tmp_path):
    top = block("""
r = pmap(lambda i: tool.agent("Try.", data=[i], max_tokens=5_000, max_turns=1), [0, 1])
done([(x.kind, x.message) if isinstance(x, Failure) else x for x in r])
""")

    def sub(request: Request) -> str:
        return block("if len(data[0]) > 14:\n    fail('too long to judge')\ndone('fine')")

    result = runtime([top], sub, tmp_path).run("Judge.", CHUNKS)
    assert result.answer == [
        ["ToolError", "tool 'agent' failed: the sub-run called fail(): too long to judge"],
        "fine",
    ]


def test_a_sub_run_that_runs_out_of_time_reaches_the_caller_as_an_error_value(tmp_path):
    top = block("""
r = pmap(lambda i: tool.agent("Think.", data=[i], max_tokens=5_000, max_turns=1, timeout=1), [0])
done([x.message for x in r])
""")
    rt = runtime([top], ScriptedProvider(count_words, latency=30), tmp_path)
    result = rt.run("Think.", CHUNKS)
    assert result.status == "done", result.error
    [message] = result.answer
    assert message.startswith("tool 'agent' failed: the sub-run ended with status 'timeout'")
    assert "clock expired after 1 s" in message


def test_a_cancelled_sub_run_reaches_the_caller_as_an_error_value_and_ends_its_transcript(tmp_path):
    # The pmap's clock (1 s) fires while the sub-runs' planner is still thinking.
    top = block("""
r = pmap(lambda i: tool.agent("Think.", data=[i], max_tokens=5_000, max_turns=1), [0, 1], timeout=1)
done([x.kind for x in r])
""")
    rt = runtime([top], ScriptedProvider(count_words, latency=30), tmp_path)
    result = rt.run("Think.", CHUNKS)
    assert result.status == "done", result.error
    assert result.answer == ["TimeLimitExceeded", "TimeLimitExceeded"]
    sub_ends = [e for e in events(result) if e["type"] == "run.end" and e["span"] != "run"]
    assert [e["status"] for e in sub_ends] == ["cancelled", "cancelled"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[9]", "tool 'agent' got 9 in data; chunk indices run from 0 to 3 (len=4)."),
        ("[-1]", "tool 'agent' got -1 in data; chunk indices run from 0 to 3 (len=4)."),
        ("[]", "tool 'agent' got an empty list for data; give at least one chunk index."),
        ("'logs'", "tool 'agent' takes data= as a list of chunk indices, or a list of texts; got \"logs\"."),
        ("{'a': [0]}", "tool 'agent' takes data= as a list of chunk indices, or a list of texts; got {\"a\":[0]}."),
    ],
)
def test_a_bad_slice_is_refused_before_anything_is_spent(tmp_path, data, message):
    top = block(f"""
try:
    tool.agent("Count.", data={data}, max_tokens=5_000)
except ToolArgumentError as exc:
    done(str(exc))
""")
    sub = ScriptedProvider(count_words)
    result = runtime([top], sub, tmp_path).run("Count.", CHUNKS)
    assert result.answer == message
    assert sub.requests == []


def test_a_sub_run_sees_only_its_slice(tmp_path):
    top = block("""done(tool.agent("Look.", data=[2], max_tokens=5_000, max_turns=3))""")
    sub = block("done([len(data), data[0], budget.remaining.turns])")
    result = runtime([top], [sub], tmp_path).run("Look.", CHUNKS)
    assert result.answer == [1, "zeta", 2]


def test_named_datasets_are_sliced_by_name(tmp_path):
    top = block("""done(tool.agent("Look.", data={"b": [1]}, max_tokens=5_000, max_turns=1))""")
    sub = block("done({name: list(chunks) for name, chunks in data.items()})")
    result = runtime([top], [sub], tmp_path).run("Look.", {"a": ["x"], "b": ["y", "z"]})
    assert result.answer == {"b": ["z"]}


def test_the_transcript_reads_back_as_a_tree(tmp_path):
    top = block("""
done(pmap(lambda i: tool.agent("Count the words.", data=[i], max_tokens=8_000, max_turns=1), [0, 1]))
""")

    def sub(request: Request) -> str:
        if goal_of(request) == "Count the words.":
            return block("""done(tool.agent("Count again.", data=[0], max_tokens=3_000, max_turns=1))""")
        return block("done(len(data[0].split()))")

    result = runtime([top], sub, tmp_path).run("Count.", CHUNKS)
    assert result.answer == [3, 2]
    t = Transcript.load(result.transcript)
    assert t.status == "done"
    assert [turn.number for turn in t.turns] == [1]
    assert sorted(t.sub_runs) == ["t1.c1", "t1.c2"]
    for sub_run in t.sub_runs.values():
        assert sub_run.status == "done"
        assert sub_run.depth == 1
        assert [c.tool for c in sub_run.calls] == ["agent"]
        [inner] = sub_run.sub_runs.values()
        assert inner.depth == 2 and inner.status == "done"
        assert inner.answer in (3, 2)
    # The run's usage counts every sub-run's requests.
    assert t.usage.planner_calls == 5


# -- a program trying to break tool.agent --------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('tool.agent("x", data=[True], max_tokens=5_000)',
         ("tool 'agent' takes (goal: str, data: list[int] | list[str] | dict[str, list[int]] | str | None = None, "
         "schema: dict | None = None, *, max_tokens: int, max_turns: int | None = None, timeout: float | None = None); "
         "got data[0]=True (bool).")),
        ('tool.agent("x", data=[0], max_tokens=-5)',
         "tool 'agent' got max_tokens=-5; give the sub-run a positive number of tokens."),
        ('tool.agent("x", data=[0], max_tokens=5_000, max_turns=99)',
         "tool 'agent' got max_turns=99; it must be between 1 and 8."),
        ('tool.agent("x", data=[0], max_tokens=5_000, timeout=-1)',
         "tool 'agent' got timeout=-1; give the sub-run a positive number of seconds."),
        ('tool.agent("   ", data=[0], max_tokens=5_000)',
         "tool 'agent' got an empty goal; say what the sub-run must find out."),
        ('tool.agent("x", data=[0], max_tokens=5_000, schema={"type": "string", "pattern": "(a+)+$"})',
         ("tool 'agent' does not take schemas with 'pattern': a regular expression would run on the host. "
         "Drop it, and check the text in the sub-run's program with re.")),
        ('tool.agent("x", data=[0], max_tokens=5_000, schema={"type": 12})',
         "tool 'agent' got a schema it cannot use: schema is not a valid JSON Schema: "),
        ('tool.agent("x", data=[0, "a"], max_tokens=5_000)',
         "tool 'agent' takes (goal: str, data: list[int] | list[str]"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_spent(tmp_path, call, message):
    top = block(f"""
try:
    {call}
except ToolArgumentError as exc:
    done(str(exc))
""")
    sub = ScriptedProvider(count_words)
    result = runtime([top], sub, tmp_path).run("Break it.", CHUNKS)
    assert result.status == "done", result.turns[-1].error
    assert result.answer.startswith(message)
    assert sub.requests == []
    assert result.usage.planner_calls == 1


def test_a_greedy_fan_out_of_sub_runs_cannot_exceed_the_run_budget(tmp_path):
    # Forty sub-runs that each ask for a quarter of the budget: at most four slices fit at once,
    # the rest are refused or wait, and the run never spends more than its limit.
    top = block("""
r = pmap(lambda i: tool.agent("Count the words.", data=[i % 4], max_tokens=20_000, max_turns=1), range(40))
done([x if not isinstance(x, Failure) else x.kind for x in r])
""")
    rt = runtime([top], count_words, tmp_path, max_tokens=80_000, max_concurrency=8, max_turns=1)
    result = rt.run("Count.", CHUNKS)
    assert result.status == "done", result.error
    assert result.usage.total_tokens <= 80_000
    assert "BudgetExceeded" in result.answer
    assert any(isinstance(x, int) for x in result.answer)


def test_texts_given_literally_become_the_sub_runs_corpus(tmp_path):
    top = block("""done(tool.agent("Look.", data=["made up", "by the program"], max_tokens=5_000, max_turns=1))""")
    sub = block("done(list(data))")
    result = runtime([top], [sub], tmp_path).run("Look.", CHUNKS)
    assert result.answer == ["made up", "by the program"]


def test_nested_sub_runs_wait_only_for_places_a_level_below_and_finish(tmp_path):
    # Four depth-1 sub-runs under max_concurrency=2, each starting two depth-2 sub-runs: if the
    # depths shared their places, the two depth-1 sub-runs alive would hold both and wait for
    # their own sub-runs forever (until a clock). Each depth has places of its own.
    top = block("""
r = pmap(lambda i: tool.agent("Split.", data=[i], max_tokens=40_000, max_turns=1), range(4))
done(r)
""")

    def sub(request: Request) -> str:
        if goal_of(request) == "Split.":
            return block("""
done(sum(pmap(lambda k: tool.agent("Leaf.", data=[0], max_tokens=6_000, max_turns=1), range(2))))
""")
        return block("done(len(data[0]))")

    rt = runtime([top], sub, tmp_path, max_concurrency=2, max_tokens=1_000_000, pmap_timeout=30,
                 turn_timeout=40, call_timeout=30, run_timeout=60)
    result = rt.run("Split and count.", CHUNKS)
    assert result.status == "done", result.error
    assert result.answer == [2 * len(c) for c in CHUNKS]
    assert result.sub_runs == {"done": 12}
    alive = {1: 0, 2: 0}
    peak = {1: 0, 2: 0}
    for e in events(result):
        if e["type"] in ("run.start", "run.end") and e["span"] != "run":
            depth = e["span"].count("/")
            alive[depth] += 1 if e["type"] == "run.start" else -1
            peak[depth] = max(peak[depth], alive[depth])
    assert peak == {1: 2, 2: 2}


def test_the_planner_is_told_what_a_sub_run_s_planner_holds_of_its_slice(tmp_path):
    import re

    from ptcrun.corpus._tokens import count_tokens
    from ptcrun.runtime._turns import two_turns_tokens

    top = ScriptedProvider([block("done(1)")])
    limits = Limits(**{**LIMITS, "planner_max_tokens": 2_000})
    Runtime(planner=top, limits=limits, transcript_dir=tmp_path).run("Count.", CHUNKS)
    [request] = top.requests
    first = request.messages[0].content
    note = re.search(r"\nA `tool.agent` sub-run's own planner holds up to about ([\d,]+) tokens of its "
                     r"`max_tokens` for its first two turns; its program may spend only the rest, so "
                     r"give it that much more than its work needs\.", first)
    assert note is not None, first
    without = first.replace(note.group(0), "")
    assert int(note.group(1).replace(",", "")) == two_turns_tokens(
        count_tokens(request.system) + count_tokens(without), limits
    )
    # Without tool.agent, nothing is said of sub-runs.
    top = ScriptedProvider([block("done(1)")])
    Runtime(planner=top, limits=attrs.evolve(limits, max_depth=0), transcript_dir=tmp_path).run("Count.", CHUNKS)
    assert "sub-run" not in top.requests[0].messages[0].content


def test_a_sub_run_s_timeout_says_what_set_its_clock(tmp_path):
    # Without timeout=, a sub-run gets 90% of the time its caller has left: here what is left
    # of its caller's turn clock of 8 s, so it times out first and the caller reads why.
    top = block("""
try:
    tool.agent("Think.", data=[0], max_tokens=5_000, max_turns=1, timeout=0.2)
except ToolError as exc:
    print(exc)
try:
    tool.agent("Think.", data=[0], max_tokens=5_000, max_turns=1)
except ToolError as exc:
    print(exc)
done("after")
""")
    rt = runtime([top], ScriptedProvider(count_words, latency=30), tmp_path,
                 turn_timeout=8, pmap_timeout=2, call_timeout=2)
    result = rt.run("Think.", CHUNKS)
    assert result.status == "done", result.error
    argument, caller = result.turns[0].output.splitlines()
    assert caller.startswith("tool 'agent' failed: the sub-run ended with status 'timeout': run clock expired after ")
    assert caller.endswith(" s (90% of the time its caller had left). Give the caller's turn, pmap or run "
                           "clock more time, or the sub-run less to do.")
    assert argument == ("tool 'agent' failed: the sub-run ended with status 'timeout': run clock expired after "
                        "0.2 s (tool.agent's timeout= argument). Raise that timeout= argument.")
    assert result.sub_runs == {"timeout": 2}


def test_a_sub_run_s_worker_requests_share_the_run_s_cache_and_its_file(tmp_path):
    # The same question about the same chunk is asked once in the whole tree: here by the top
    # program and again by a sub-run; and a second run with the cache file asks it no more.
    top = block("""
first = tool.worker(data[0], "Say the first word.")
inner = tool.agent("Ask again.", data=[0], max_tokens=8_000, max_turns=1)
done([first, inner])
""")
    sub = block('done(tool.worker(data[0], "Say the first word."))')
    asked = []

    def worker(request: Request) -> str:
        asked.append(request)
        return "alpha"

    def one_run(folder):
        rt = Runtime(
            planner=ScriptedProvider([top]), sub_planner=ScriptedProvider([sub]),
            worker=ScriptedProvider(worker), limits=Limits(**LIMITS), transcript_dir=folder,
            cache=tmp_path / "cache.db",
        )
        return rt.run("Say the first word twice.", CHUNKS)

    result = one_run(tmp_path / "a")
    assert result.status == "done", result.error
    assert result.answer == ["alpha", "alpha"]
    assert len(asked) == 1
    cached = [e for e in events(result) if e["type"] == "llm.end" and e["role"] == "worker"]
    assert [e.get("cached") for e in cached] == [None, "run"]
    assert "/" in cached[1]["span"]  # the cached one is the sub-run's

    again = one_run(tmp_path / "b")
    assert again.answer == ["alpha", "alpha"] and len(asked) == 1


def test_a_sub_run_counts_the_cached_answers_of_its_own_tree_not_its_caller_s(tmp_path):
    # The top program's second question is answered by the cache; the sub-run, which starts
    # after it, asks a question of its own and has none answered so.
    top = block("""
tool.worker(data[0], "Say the first word.")
tool.worker(data[0], "Say the first word.")
done(tool.agent("Ask another.", data=[1], max_tokens=8_000, max_turns=1))
""")
    sub = block('done(tool.worker(data[0], "Say the last word."))')
    rt = Runtime(
        planner=ScriptedProvider([top]), sub_planner=ScriptedProvider([sub]),
        worker=ScriptedProvider(lambda request: "alpha"), limits=Limits(**LIMITS), transcript_dir=tmp_path,
    )
    result = rt.run("Ask twice, then once below.", CHUNKS)
    assert result.status == "done", result.error
    assert result.cached_calls == 1
    (sub_end,) = [e for e in events(result) if e["type"] == "run.end" and e["span"] != "run"]
    assert sub_end["cached_calls"] == 0
