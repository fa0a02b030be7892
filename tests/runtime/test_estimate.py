"""Estimates before anything is spent: ``Runtime.estimate``, ``--dry-run``, ``budget.estimate``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import attrs
import pytest

import ptcrun
from ptcrun import Limits, Price, Reply, Request, Runtime, ScriptedProvider, chunk_by_tokens
from ptcrun.runtime._budget import worst_case_tokens
from ptcrun.runtime._llm import request_tokens
from ptcrun.runtime._turns import first_message, system_prompt

from ..clirun import run_cli

CHUNKS = ["alpha beta gamma " * 40, "delta epsilon " * 15, "zeta " * 90]


class Unreachable:
    """A provider that must not be called."""

    name = "unreachable"
    context_window = 200_000
    price = Price(input_per_mtok=1.0, output_per_mtok=5.0)

    async def complete(self, request: Request) -> Reply:
        raise AssertionError("the estimate called a provider")


def counting_worker(request: Request) -> Reply:
    # Input as the ledger counts it; a short answer, as real workers write.
    return Reply(text="ok", input_tokens=request_tokens(request), output_tokens=3)


def test_estimate_fields_on_a_small_corpus():
    limits = Limits(max_tokens=50_000, worker_max_tokens=500, planner_max_tokens=1_000)
    rt = Runtime(planner=Unreachable(), limits=limits, transcript_dir=None)
    est = rt.estimate("Summarise each chunk.", CHUNKS)
    assert isinstance(est, ptcrun.Estimate)
    assert attrs.has(ptcrun.Estimate)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        est.chunks = 1  # type: ignore[misc]
    from ptcrun.corpus._tokens import count_tokens

    sizes = [count_tokens(c) for c in CHUNKS]
    assert est.chunks == 3
    assert est.corpus_tokens == sum(sizes)
    assert est.largest_chunk_tokens == max(sizes)
    assert est.mean_chunk_tokens == pytest.approx(sum(sizes) / 3)
    assert est.worker_output_tokens == 500
    # Each call's input is the chunk plus the worker's system prompt and request template.
    assert est.pass_input_tokens > est.corpus_tokens
    assert est.pass_tokens == sum(_worker_reservations("Summarise each chunk.", CHUNKS, 500))
    assert est.planner_first_tokens == worst_case_tokens(est.planner_input_tokens, 1_000)
    assert est.planner_second_tokens > est.planner_first_tokens
    assert est.needed_tokens == est.pass_tokens + est.planner_first_tokens + est.planner_second_tokens
    assert est.fits and est.max_tokens == 50_000
    expected_cost = (
        (est.pass_input_tokens + 2 * est.planner_input_tokens + 1_000 + limits.feedback_reserve_tokens) * 1.0
        + (3 * 500 + 2 * 1_000) * 5.0
    ) / 1_000_000
    assert est.cost == pytest.approx(expected_cost)
    assert "fits the budget: yes" in est.describe()


def _worker_reservations(instruction: str, texts: list[str], max_tokens: int) -> list[int]:
    """What the ledger reserves for the worker tool's requests, from the requests it really sends."""
    seen: list[int] = []

    def worker(request: Request) -> Reply:
        return Reply(text="ok", input_tokens=request_tokens(request), output_tokens=1)

    def reserved(event: dict) -> None:
        if event["type"] == "llm.start" and event["role"] == "worker":
            seen.append(event["reserved_tokens"])

    program = (
        "```python\nfor c in data:\n"
        f"    tool.worker(c, {instruction!r}, max_tokens={max_tokens})\ndone(1)\n```"
    )
    rt = Runtime(
        planner=ScriptedProvider([program]),
        worker=ScriptedProvider(worker),
        limits=Limits(worker_max_tokens=max_tokens),
        transcript_dir=None,
        observers=[reserved],
    )
    assert rt.run("g", texts).status == "done"
    return seen


def test_estimate_says_what_budget_would_fit():
    rt = Runtime(planner=Unreachable(), limits=Limits(max_tokens=5_000), transcript_dir=None)
    est = rt.estimate("Summarise.", CHUNKS * 5)
    assert not est.fits
    assert est.needed_tokens > 5_000
    assert f"{est.needed_tokens:,} would (raise Limits.max_tokens)" in est.describe()


def test_estimate_calls_no_provider_and_prices_unknown_models_as_none():
    unpriced = Unreachable()
    unpriced.price = None  # type: ignore[assignment]
    rt = Runtime(planner=unpriced, worker=Unreachable(), transcript_dir=None)
    est = rt.estimate("Summarise.", {"a": CHUNKS, "b": CHUNKS[:1]})
    assert est.chunks == 4
    assert est.cost is None  # the planner has no price


def test_estimate_refuses_bad_arguments():
    rt = Runtime(planner=Unreachable(), transcript_dir=None)
    with pytest.raises(ptcrun.errors.ConfigError):
        rt.estimate("", CHUNKS)
    with pytest.raises(ptcrun.errors.ConfigError, match="worker_output_tokens"):
        rt.estimate("g", CHUNKS, worker_output_tokens=10**9)


def test_first_message_states_corpus_and_full_pass():
    limits = Limits(max_tokens=100_000)
    snapshot = {"tokens": 100_000, "turns": 8, "seconds": 1800, "cost": None}
    message = first_message("g", CHUNKS, {}, limits, snapshot, None, corpus_tokens=1_234, pass_tokens=25_000)
    assert (
        "The corpus holds 1,234 tokens; one `tool.worker` call on every chunk would reserve about "
        "25,000 tokens (25% of the budget)"
    ) in message


def test_the_run_states_the_pass_the_estimate_counts():
    seen: list[Request] = []

    def planner(request: Request) -> Reply:
        seen.append(request)
        return Reply(text="```python\ndone(1)\n```", input_tokens=request_tokens(request), output_tokens=5)

    limits = Limits(max_tokens=60_000)
    chunks = chunk_by_tokens("word " * 3_000, 500)
    rt = Runtime(planner=ScriptedProvider(planner), limits=limits, transcript_dir=None)
    est = rt.estimate("Count the words.", chunks)
    assert rt.run("Count the words.", chunks).status == "done"
    first = seen[0].messages[0].content
    line = re.search(r"would reserve about ([\d,]+) tokens", first)
    assert line is not None
    # The message's figure comes from the chunks' own counts: within a few tokens per chunk.
    assert abs(int(line.group(1).replace(",", "")) - est.pass_tokens) <= 4 * len(chunks)
    # The planner's first request is counted exactly as the ledger counts it.
    assert request_tokens(seen[0]) == est.planner_input_tokens
    assert seen[0].system == system_prompt()


PROGRAM = """```python
texts = [c[:{cut}] for c in data]
print("estimate", budget.estimate(texts, "Name the topic.", schema={{"type": "string"}}, max_tokens=300))
answers = pmap(lambda t: tool.worker(t, "Name the topic.", schema={{"type": "string"}}, max_tokens=300), texts)
done(len(answers))
```"""


@pytest.mark.parametrize("cut", [50, 100_000])
def test_budget_estimate_equals_what_the_calls_reserve(cut):
    events: list = []

    def worker(request: Request) -> Reply:
        return Reply(text='"x"', input_tokens=request_tokens(request), output_tokens=3)

    rt = Runtime(
        planner=ScriptedProvider([PROGRAM.format(cut=cut)]),
        worker=ScriptedProvider(worker),
        limits=Limits(max_tokens=100_000),
        transcript_dir=None,
        observers=[events.append],
    )
    result = rt.run("Name each chunk's topic.", CHUNKS)
    assert result.status == "done", result.error
    estimated = int(re.search(r"estimate (\d+)", result.turns[0].output).group(1))
    reserved = [e["reserved_tokens"] for e in events if e["type"] == "llm.start" and e["role"] == "worker"]
    assert len(reserved) == 3
    assert estimated == sum(reserved)


def test_budget_estimate_checks_its_arguments():
    program = """```python
for args in [("one text", "i"), ([1, 2], "i"), (["a"], 5), (["a"], "i", None, 10**6)]:
    try:
        budget.estimate(*args)
    except Exception as e:
        print(repr(e)[:70])
print("ok", budget.estimate([], "i"), budget.estimate(data[:1], "i") > 0)
done(1)
```"""
    rt = Runtime(planner=ScriptedProvider([program]), transcript_dir=None)
    result = rt.run("g", CHUNKS)
    assert result.status == "done", result.error
    lines = result.turns[0].output.splitlines()
    assert lines[0].startswith("TypeError('budget.estimate takes a list of texts")
    assert lines[1].startswith("TypeError('text 0 of budget.estimate must be a str")
    assert lines[2].startswith("TypeError('the instruction of budget.estimate must be a str")
    assert lines[3].startswith("ToolArgumentError('budget.estimate got max_tokens=1000000")
    assert lines[4] == "ok 0 True"


def test_dry_run_prints_the_estimate_and_makes_no_run_folder(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of the log\n" * 2_000, encoding="utf-8")
    replies = tmp_path / "planner.py"
    replies.write_text("def respond(request):\n    raise AssertionError('called')\n", encoding="utf-8")
    out = tmp_path / "runs"
    argv = ["run", str(corpus), "--goal", "Count lines.", "--planner", f"scripted:{replies}", "--out", str(out)]
    code, stdout, _ = run_cli([*argv, "--dry-run"])
    assert code == 0
    assert "one worker call per chunk:" in stdout and "fits the budget: yes" in stdout
    assert not out.exists()
    code, stdout, _ = run_cli([*argv, "--dry-run", "--json", "--token-limit", "1000"])
    assert code == 0
    shown = json.loads(stdout)
    assert shown["fits"] is False and shown["max_tokens"] == 1_000
    assert shown["needed_tokens"] == shown["pass_tokens"] + shown["planner_first_tokens"] + shown["planner_second_tokens"]
    assert not out.exists()
    code, stdout, _ = run_cli([*argv, "--dry-run", "--token-limit", "1000"])
    assert "(raise --token-limit)" in stdout


ROOT = Path(__file__).resolve().parents[2]


def test_log_audit_estimate_matches_what_a_run_spends(tmp_path):
    """The 10,000-line log audit: the estimated full pass against the worker tokens spent."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import bench_estimate
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.path.remove(str(ROOT / "examples"))
    row = bench_estimate.compare(10_000, seed=7, scratch=tmp_path, latency=(0.0, 0.01))
    assert row["worker_calls"] == row["chunks"]
    bench_estimate.check(row)


# -- sub-runs ----------------------------------------------------------------------------------


def test_an_estimate_with_tool_agent_says_what_bounds_the_sub_runs():
    priced = Unreachable()
    dear = Unreachable()
    dear.price = Price(input_per_mtok=3.0, output_per_mtok=15.0)  # type: ignore[assignment]
    limits = Limits(max_tokens=80_000, planner_max_tokens=1_000, max_depth=2)
    rt = Runtime(planner=priced, sub_planner=dear, limits=limits, transcript_dir=None)
    est = rt.estimate("Summarise each chunk.", CHUNKS)
    assert est.sub_runs
    # What one sub-run's planner holds: the first two turns of a run over one chunk, a little
    # less than the run's own over three, and more with longer planner replies.
    assert 2_000 < est.sub_run_planner_tokens < est.planner_first_tokens + est.planner_second_tokens
    longer = Runtime(planner=priced, limits=attrs.evolve(limits, planner_max_tokens=2_000), transcript_dir=None)
    assert longer.estimate("Summarise each chunk.", CHUNKS).sub_run_planner_tokens > est.sub_run_planner_tokens + 2_000
    # The sub-runs' spending is not in the pass or the price: they are bounded by the budget.
    assert est.needed_tokens == est.pass_tokens + est.planner_first_tokens + est.planner_second_tokens
    assert est.budget_cost == pytest.approx(80_000 * 15.0 / 1_000_000)  # the dearest rate of three
    text = est.describe()
    assert "cost at most: $" in text and "(without sub-runs)" in text
    assert ("sub-runs (tool.agent): not counted above; each spends at most the max_tokens its call "
            "sets aside, reserved from this budget, so the run with all its sub-runs stays within "
            "80,000 tokens") in text
    assert f"holds up to {est.sub_run_planner_tokens:,} tokens of its max_tokens" in text
    assert "the whole budget costs at most: $1.2000" in text


def test_an_estimate_without_tool_agent_says_nothing_of_sub_runs():
    rt = Runtime(planner=Unreachable(), limits=Limits(max_depth=0), transcript_dir=None)
    est = rt.estimate("Summarise.", CHUNKS)
    assert not est.sub_runs and est.sub_run_planner_tokens is None
    assert "sub-run" not in est.describe()
    assert est.budget_cost == pytest.approx(Limits().max_tokens * 5.0 / 1_000_000)


def test_a_sub_run_s_program_may_spend_its_slice_less_what_its_planner_holds():
    # The figure is what a sub-run's program cannot spend: given it and 1,000 more, the program
    # sees at least the 1,000 (the first reply settles below its reservation), and well under
    # half the slice.
    limits = Limits(planner_max_tokens=600, feedback_reserve_tokens=500, max_depth=1)
    chunks = ["one two three four five six"]
    est = Runtime(planner=Unreachable(), limits=limits, transcript_dir=None).estimate("Look.", chunks)
    slice_ = est.sub_run_planner_tokens + 1_000
    sub = ScriptedProvider(["```python\ndone(budget.remaining.tokens)\n```"])
    top = ScriptedProvider([f"```python\ndone(tool.agent('Look.', data=[0], max_tokens={slice_}))\n```"])
    result = Runtime(planner=top, sub_planner=sub, limits=limits, transcript_dir=None).run("Look.", chunks)
    assert result.status == "done", result.error
    assert 1_000 <= result.answer < slice_ // 2
