"""The text views of a transcript: ``show``, ``tree`` and the run summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.errors import TranscriptError
from ptcrun.transcript._chrome import chrome_trace
from ptcrun.transcript._html import write_html
from ptcrun.transcript._views import render_show, render_summary, render_tree
from ptcrun.transcript._wording import preview

from .example_runs import CHUNKS, block, example_run, runtime


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return example_run(tmp_path_factory.mktemp("runs"))[1]


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A run whose first program fails on line 2, and whose second is fine."""
    rt = runtime([block("n = len(data)\nprint(n + undefined_name)"), block("done(n)")],
                 tmp_path_factory.mktemp("runs"))
    result = rt.run("Count the chunks.", CHUNKS)
    from ptcrun import Transcript

    return Transcript.load(result.transcript)


def test_show_lists_each_turn_with_numbered_program_and_output(example):
    text = render_show(example)
    # One of the three lookups failed, and the program called done() all the same.
    assert text.startswith(f"run {example.path.parent.name}: done (partial: 1 of 15 calls failed) · 2 turns · ")
    assert re.search(r"^── turn 1 ── ok · .* · planner [\d,]+ in / \d+ out$", text, flags=re.MULTILINE)
    assert re.search(r"^── turn 2 ── done · .* · 15 calls \(1 failed\) · workers [\d,]+ in / \d+ out$", text, flags=re.MULTILINE)
    for turn in example.turns:
        for number, line in enumerate(turn.program.rstrip("\n").split("\n"), 1):
            assert f"  {number} │ {line}\n" in text
    assert "  output:\n    12 chunks\n" in text
    assert f"    errors per chunk: {[c.count('ERROR') for c in CHUNKS]}\n" in text
    assert '  done({"errors": 18})\n' in text
    assert ("\nstatus     done (partial: 1 of 15 calls failed)\n"
            "failed     1 of 15 calls: 1 ToolError; the answer was built while they were failing\n") in text


def test_show_one_turn(example):
    text = render_show(example, turn=2)
    assert "── turn 2 ──" in text and "── turn 1 ──" not in text
    with pytest.raises(TranscriptError, match="no turn 3"):
        render_show(example, turn=3)


def test_show_calls_lists_every_call_of_every_pmap(example):
    text = render_show(example, turn=2, calls=True)
    assert "  pmap t2.m1: 12 items, 4 threads, 12 ok, 0 failed, ok, " in text
    assert "  pmap t2.m2: 3 items, 3 threads, 2 ok, 1 failed, failed, " in text
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^ +\S+ +\S+ +(c\d+) .*$", text, flags=re.MULTILINE)}
    assert sorted(rows, key=lambda c: int(c[1:])) == [f"c{c.id}" for c in sorted(example.calls, key=lambda c: c.id)]
    failed = next(c for c in example.calls if not c.ok)
    assert re.search(r"lookup +error +[\d.]+ +- +ToolError: tool 'lookup' failed", rows[f"c{failed.id}"])
    for call in example.calls:
        row = rows[f"c{call.id}"]
        assert f"{call.seconds:.3f}" in row
        if call.tool == "worker":
            assert row.rstrip().endswith(f"  {call.reply}")


def test_show_marks_the_failing_line_and_the_error(broken):
    text = render_show(broken)
    assert " >2 │ print(n + undefined_name)\n" in text
    assert "\n  1 │ n = len(data)\n" in text
    assert re.search(r"  error: line 2: NameError: .*undefined_name", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip("│ ├└─"))


def test_tree_nests_every_span_and_marks_the_slowest_calls(example):
    lines = render_tree(example).splitlines()
    assert lines[0].startswith("run: How many ERROR lines are in the log?  done  ")
    slowest = sorted(example.calls, key=lambda c: -c.seconds)[:3]
    marked = {re.search(r" c(\d+)  ", line).group(1): line for line in lines if "◀ slowest" in line}
    assert len(marked) == 3
    for rank, call in enumerate(slowest, 1):
        assert marked[str(call.id)].endswith(f"◀ slowest #{rank}")
    for call in example.calls:
        (line,) = [text for text in lines if f"{call.tool} c{call.id}  " in text]
        index = lines.index(line)
        above = lines[index - 1]
        assert f"item {call.item} (slot {call.slot})  " in above and _indent(above) < _indent(line)
        if call.llm:
            below = lines[index + 1]
            assert "LLM request llm1" in below and _indent(below) > _indent(line)
    assert sum("LLM request" in line for line in lines) == 12
    assert sum(" item " in line for line in lines) == 15
    assert sum("planner request" in line for line in lines) == 2


def test_summary_gives_tokens_by_role_and_speedup(example):
    text = render_summary(example)
    u = example.usage
    assert f"tokens     {u.total_tokens:,} of 200,000: planner {u.planner_input_tokens:,} in / " in text
    assert f"workers {u.worker_input_tokens:,} in / {u.worker_output_tokens:,} out (12 calls)" in text
    assert f"parallel speed-up {example.call_seconds / example.call_busy_seconds:.1f}x" in text
    assert "cost       unknown" in text


def test_preview_keeps_one_line_of_a_set_width():
    assert preview("a\nb  c") == "a b c"
    assert preview("x" * 100, 10) == "x" * 9 + "…"
    assert preview({"k": [1, 2]}) == '{"k": [1, 2]}'


@pytest.mark.parametrize("name", ["v1_run.jsonl", "v1_restart_timeout.jsonl"])
def test_every_view_reads_a_version_1_transcript(name, tmp_path):
    t = Transcript.load(Path(__file__).parent / "data" / name)
    assert render_show(t, calls=True).startswith("run ")
    assert render_tree(t).startswith(f"run: {t.goal}")
    assert render_summary(t)
    assert chrome_trace(t)
    assert write_html(t, tmp_path / "view.html").read_text().startswith("<!DOCTYPE html>")


def test_the_html_page_shows_the_planners_text_around_its_code_escaped(tmp_path):
    reply = ("I will <b>count</b> the chunks & print them.\n"
             + block("print(len(data))\ndone(len(data))")
             + "\nThen <script>alert(1)</script> I answer.")
    result = runtime([reply, block("done(0)")], tmp_path).run("Count the chunks.", CHUNKS)
    page = write_html(Transcript.load(result.transcript)).read_text(encoding="utf-8")
    turn = page.split('id="turn-1"', 1)[1]
    before = turn.index("I will &lt;b&gt;count&lt;/b&gt; the chunks &amp; print them.")
    program = turn.index('<pre class="program">')
    after = turn.index("Then &lt;script&gt;alert(1)&lt;/script&gt; I answer.")
    assert before < program < after
    assert "<script>alert(1)" not in page and "<b>count" not in page
    # A reply that is nothing but its code block shows no planner text.
    bare = runtime(["```python\ndone(1)\n```"], tmp_path / "bare").run("Count the chunks.", CHUNKS)
    page = write_html(Transcript.load(bare.transcript)).read_text(encoding="utf-8")
    assert '<div class="prose">' not in page and '<div class="label">Planner' not in page
