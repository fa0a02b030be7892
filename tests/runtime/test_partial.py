"""Failures are never silent: the planner hears of them, keeps its next turn, and every view says
when an answer was built while calls were failing.

The case: 10,000 log lines cut into 92 chunks of 4,000 tokens, one worker call per chunk, with
the default budget of 200,000 tokens, which covers about half of them. The planner sums what
came back and calls ``done``.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ptcrun import Limits, Runtime, ScriptedProvider, Transcript
from ptcrun.cli import EXIT_CODES
from ptcrun.corpus._load import load_corpus
from ptcrun.errors import BudgetExceeded, ConfigError
from ptcrun.runtime._budget import Ledger
from ptcrun.runtime._failures import FailureTally, ProgramFailures
from ptcrun.runtime._turns import calls_report, feedback
from ptcrun.sandbox._results import ExecResult
from ptcrun.transcript._html import render_html
from ptcrun.transcript._progress import LineProgress, TerminalProgress
from ptcrun.transcript._schema import CallEnd, ItemEnd, PmapEnd, PmapStart
from ptcrun.transcript._views import render_show, render_summary, render_tree

from ..clirun import run_cli

SERVICES = ("auth", "billing", "search", "gateway", "ordering", "storage")
LEVELS = ("INFO", "INFO", "DEBUG", "INFO", "WARN")
TRUE_ERRORS = 176


def log_line(i: int) -> str:
    level = "ERROR" if i % 57 == 3 else LEVELS[i % 5]
    svc = SERVICES[i * 5 % 6]
    return (f"2025-03-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}Z {level} {svc} request "
            f"{i * 7919 % 10**6:06d} handled in {i * 37 % 900 + 1} ms by w{i % 64:02d} path=/api/v1/{svc}/{i * 13 % 1000}\n")


LOG = "".join(log_line(i) for i in range(10_000))

FAN_OUT = """Count per chunk, then add up.
```python
counts = pmap(lambda c: int(tool.worker(c, "How many ERROR lines? Answer with a number.")), data)
total = sum(c for c in counts if c)
print("ERROR lines:", total)
```"""
DONE = """```python
done({"errors": total})
```"""

WORKER = '''
def respond(request):
    text = request.messages[0].content.split("<text>", 1)[1]
    return str(text.count("ERROR"))
'''


def count_errors(request: Any) -> str:
    text = request.messages[0].content.split("<text>", 1)[1]
    return str(text.count("ERROR"))


PMAP_LINE = re.compile(r"^- pmap over 92 items: (\d+) ok, (\d+) failed \((\d+) BudgetExceeded\)$", re.MULTILINE)


@pytest.fixture(scope="module")
def log_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("log") / "app.log"
    path.write_text(LOG)
    return path


@pytest.fixture(scope="module")
def case(log_file, tmp_path_factory):
    """The case run from Python with every default limit: (result, transcript, planner)."""
    chunks = load_corpus(log_file)
    assert len(chunks) == 92 and sum(c.count("ERROR") for c in chunks) == TRUE_ERRORS
    planner = ScriptedProvider([FAN_OUT, DONE])
    rt = Runtime(planner=planner, worker=ScriptedProvider(count_errors),
                 transcript_dir=tmp_path_factory.mktemp("runs"))
    result = rt.run("How many ERROR lines?", chunks)
    return result, Transcript.load(result.transcript), planner


# -- the case, end to end ----------------------------------------------------------------------


def test_the_planner_is_told_which_calls_failed_and_why_and_gets_its_next_turn(case):
    result, _, planner = case
    assert len(planner.requests) == 2  # the fan-out did not spend the planner's second turn
    told = planner.requests[1].messages[-1].content
    ok, failed, budget = map(int, PMAP_LINE.search(told).groups())
    assert ok + failed == 92 and failed == budget > 0
    # The program printed only its total; the counts and the reason come from the runtime.
    assert "ERROR lines: " in told and "<calls>" in told
    why = re.search(r"^- BudgetExceeded: (.*)$", told, flags=re.MULTILINE).group(1)
    assert re.fullmatch(
        r"worker call needs [\d,]+ tokens; [\d,]+ of Limits\.max_tokens=200,000 remain, and [\d,]+ of "
        r"them are held back for the planner's next turn, so [\d,]+ may be spent\. Raise max_tokens, or "
        r"send less text\.", why)
    assert f"{failed} of the results this program got back are failures" in told
    assert result.turns[1].status == "done"


def test_the_result_says_the_answer_was_built_on_failed_calls(case):
    result, _, planner = case
    failed = int(PMAP_LINE.search(planner.requests[1].messages[-1].content).group(2))
    assert result.status == "done" and result.answer["errors"] < TRUE_ERRORS
    assert result.partial is True
    assert result.failed_calls == {"BudgetExceeded": failed}
    assert result.failed_call_count == failed and result.calls_made == 92
    assert result.usage.total_tokens <= Limits().max_tokens
    assert result.raise_for_status() is result  # still done: it is the views that warn


def test_run_end_carries_the_failure_counts(case):
    result, transcript, _ = case
    end = transcript.events[-1]
    assert end["type"] == "run.end"
    assert (end["failed_calls"], end["calls_made"], end["partial"]) == (dict(result.failed_calls), 92, True)
    assert (transcript.failed_calls, transcript.calls_made, transcript.partial) == (result.failed_calls, 92, True)


def test_show_and_the_summary_mark_the_answer_partial(case):
    result, transcript, _ = case
    failed = result.failed_call_count
    status = f"done (partial: {failed} of 92 calls failed)"
    text = render_show(transcript)
    assert text.startswith(f"run {transcript.path.parent.name}: {status} · 2 turns · ")
    assert re.search(rf"^── turn 1 ── ok · .* · 92 calls \({failed} failed\) · ", text, flags=re.MULTILINE)
    summary = render_summary(transcript)
    assert summary.startswith(
        f"status     {status}\n"
        f"failed     {failed} of 92 calls: {failed} BudgetExceeded; the answer was built while they were failing\n"
    )


def test_the_html_header_is_amber_not_green(case):
    result, transcript, _ = case
    page = render_html(transcript)
    status = f"done (partial: {result.failed_call_count} of 92 calls failed)"
    assert f'<span class="status done partial" id="status">{html.escape(status)}</span>' in page
    assert re.search(r"\.status\.partial \{ background: var\(--partial\); \}", page)
    assert page.index(".status.partial") > page.index(".status.done, .status.ok")  # the later rule wins
    assert (f'<p class="failures" id="failures">{result.failed_call_count} of 92 calls failed: '
            f"{result.failed_call_count} BudgetExceeded. The answer was built while these calls were failing") in page


def test_the_live_display_ends_on_the_partial_status(case):
    result, transcript, _ = case
    failed = result.failed_call_count
    screen = io.StringIO()
    observe = TerminalProgress(screen, redraw_every=0)
    for event in transcript.events:
        observe(event)
        if event["type"] == "turn.end" and event["turn"] == 1:
            frame = screen.getvalue().rsplit("\x1b[J", 1)[-1]
            assert f"· {failed} calls failed\n" in frame  # counted while the run goes on
    final = screen.getvalue().rsplit("\x1b[J", 1)[-1]
    assert f"\nrun done (partial: {failed} of 92 calls failed) · {failed} BudgetExceeded\n" in final
    lines = io.StringIO()
    observe = LineProgress(lines)
    for event in transcript.events:
        observe(event)
    assert lines.getvalue().splitlines()[-2:] == [
        f"run done (partial: {failed} of 92 calls failed) after 2 turns · {observe._state.tokens_text()}",
        f"run: {failed} of 92 calls failed: {failed} BudgetExceeded",
    ]


@pytest.fixture(scope="module")
def cli_files(log_file) -> dict[str, Path]:
    folder = log_file.parent
    (folder / "planner.json").write_text(json.dumps([FAN_OUT, DONE]))
    (folder / "worker.py").write_text(WORKER)
    return {"corpus": log_file, "planner": folder / "planner.json", "worker": folder / "worker.py"}


def cli_args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["run", str(files["corpus"]), "--goal", "How many ERROR lines?", "--planner",
            f"scripted:{files['planner']}", "--worker", f"scripted:{files['worker']}", "--out", str(out), *extra]


def test_cli_json_marks_the_answer_partial_and_exits_0_by_default(cli_files, tmp_path):
    code, out, err = run_cli(cli_args(cli_files, tmp_path / "runs", "--json"))
    shown = json.loads(out)
    failed = shown["failed_calls"]["BudgetExceeded"]
    assert code == shown["exit_code"] == EXIT_CODES["done"] == 0
    assert (shown["status"], shown["partial"], shown["calls_made"]) == ("done", True, 92)
    assert shown["failed_calls"] == {"BudgetExceeded": failed} and failed > 0
    assert shown["answer"]["errors"] < TRUE_ERRORS
    assert re.search(rf"^run done \(partial: {failed} of 92 calls failed\) after 2 turns · ", err, flags=re.MULTILINE)
    assert f"ptcrun: warning: {failed} of 92 calls failed ({failed} BudgetExceeded); the answer was built" in err


def test_cli_fail_on_partial_exits_with_its_own_code(cli_files, tmp_path):
    code, out, err = run_cli(cli_args(cli_files, tmp_path / "runs", "--fail-on-partial", "--quiet"))
    assert code == EXIT_CODES["partial"] == 6
    assert re.search(r"^status     done \(partial: (\d+) of 92 calls failed\)$", out, flags=re.MULTILINE)
    assert err.startswith("ptcrun: warning: ") and "--calls` lists them." in err
    transcript = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    code, shown, _ = run_cli(["show", transcript])
    assert code == 0 and re.search(r"^run \S+: done \(partial: \d+ of 92 calls failed\) · ", shown)
    code, page, _ = run_cli(["view", transcript])
    assert code == 0 and 'class="status done partial"' in Path(page.strip()).read_text()


def test_fail_on_partial_leaves_a_whole_answer_at_0(tmp_path):
    (tmp_path / "log").write_text("ERROR a\nINFO b\n")
    (tmp_path / "planner.json").write_text(json.dumps([
        '```python\ndone(sum(pmap(lambda c: int(tool.worker(c, "Count ERROR lines.")), data)))\n```']))
    (tmp_path / "worker.py").write_text(WORKER)
    files = {"corpus": tmp_path / "log", "planner": tmp_path / "planner.json", "worker": tmp_path / "worker.py"}
    code, out, err = run_cli(cli_args(files, tmp_path / "runs", "--fail-on-partial", "--quiet"))
    assert (code, err) == (0, "")
    assert "\nstatus     done\n" in out


# -- the hold-back -----------------------------------------------------------------------------


def test_a_reservation_that_would_eat_into_the_hold_back_is_refused_saying_so():
    ledger = Ledger(10_000)
    ledger.reserve(2_000, what="worker call").release()
    with ledger.holding_back(5_000, for_what="the planner's next turn"):
        assert (ledger.held, ledger.remaining, ledger.snapshot()["tokens_left"]) == (5_000, 5_000, 5_000)
        ledger.reserve(5_000, what="worker call").release()  # exactly what is not held back
        with pytest.raises(BudgetExceeded) as caught:
            ledger.reserve(6_000, what="worker call")
    assert str(caught.value) == (
        "worker call needs 6,000 tokens; 10,000 of Limits.max_tokens=10,000 remain, and 5,000 of them "
        "are held back for the planner's next turn, so 5,000 may be spent. Raise max_tokens, or send less text."
    )
    assert (caught.value.setting, caught.value.limit, caught.value.observed) == ("Limits.max_tokens", 10_000, 6_000)
    assert (ledger.held, ledger.remaining) == (0, 10_000)  # free again once the program is over
    ledger.reserve(6_000, what="planner turn 2").release()


def test_the_hold_back_is_released_however_the_block_ends():
    ledger = Ledger(1_000)
    with pytest.raises(RuntimeError), ledger.holding_back(400, for_what="x"):
        raise RuntimeError("the program crashed")
    assert ledger.held == 0
    with pytest.raises(ValueError, match="tokens held back must be a whole number >= 0"), \
            ledger.holding_back(-1, for_what="x"):
        pass


def test_feedback_reserve_tokens_is_held_back_for_the_feedback():
    def held_back(reserve: int) -> int:
        planner = ScriptedProvider(["```python\nprint(budget.remaining.tokens)\n```", "```python\ndone(1)\n```"])
        rt = Runtime(planner=planner, limits=Limits(feedback_reserve_tokens=reserve), transcript_dir=None)
        result = rt.run("Say how much is left.", ["a chunk"])
        assert result.status == "done"
        left = int(result.turns[0].output)
        return 200_000 - result.turns[0].planner_input_tokens - result.turns[0].planner_output_tokens - left

    # The input side of the next request is reserved with the 25% margin every request gets.
    assert held_back(10_000) - held_back(0) == 12_500
    with pytest.raises(ConfigError, match=r"Limits\.feedback_reserve_tokens must be a whole number >= 0; got -1"):
        Limits(feedback_reserve_tokens=-1)


def test_nothing_is_held_back_in_the_last_turn():
    planner = ScriptedProvider(["```python\nprint(budget.remaining.tokens)\n```"])
    rt = Runtime(planner=planner, limits=Limits(max_turns=1), transcript_dir=None)
    result = rt.run("Say how much is left.", ["a chunk"])
    turn = result.turns[0]
    assert int(turn.output) == 200_000 - turn.planner_input_tokens - turn.planner_output_tokens


def test_feedback_cuts_printed_output_to_fit_the_next_turn_but_keeps_the_calls():
    failures = ProgramFailures(pmaps=(), loose_failed={"ToolError": 1}, examples={"ToolError": "no such level"})
    result = ExecResult(status="ok", output="".join(f"line {i} of a long printout\n" for i in range(2_000)))
    whole = feedback(result, turn=1, limits=Limits(), snapshot={"tokens": 9, "turns": 7}, failures=failures)
    fitted = feedback(result, turn=1, limits=Limits(), snapshot={"tokens": 9, "turns": 7}, failures=failures,
                      fit_tokens=600)
    from ptcrun.corpus._tokens import count_tokens

    assert count_tokens(whole) > 2_000 and count_tokens(fitted) <= 600
    assert "characters cut from the middle" in fitted
    assert "- tool calls outside pmap: 1 failed (1 ToolError); the program caught them and went on" in fitted
    assert "Turn 2 of 8. Budget left: 9 tokens, 7 turns." in fitted


# -- counting failures -------------------------------------------------------------------------


def _events(tally: FailureTally, *events: Any) -> None:
    for event in events:
        tally.see(event)


def _item(pmap: int, item: int, error: dict[str, Any] | None) -> ItemEnd:
    return ItemEnd(span=f"t1.m{pmap}.i{item}", parent=f"t1.m{pmap}", pmap=pmap, item=item, slot=0,
                   ok=error is None, error=error)


def _call(call: int, error: dict[str, Any] | None, pmap: int | None = None, item: int | None = None) -> CallEnd:
    return CallEnd(span=f"t1.c{call}", parent="t1.program", call=call, tool="lookup", ok=error is None,
                   value=None, error=error, seconds=0.1, pmap=pmap, item=item)


BUDGET = {"type": "BudgetExceeded", "message": "worker call needs 6,139 tokens; ..."}
TOOL = {"type": "ToolError", "message": "tool 'lookup' failed: ValueError: unknown level BAD"}
CANCELLED = {"type": "Cancelled", "message": "cancelled"}


def test_the_tally_counts_failed_items_by_kind_and_items_a_clock_stopped():
    tally = FailureTally()
    tally.start_program()
    _events(
        tally,
        PmapStart(span="t1.m1", parent="t1.program", pmap=1, total=6, concurrency=2),
        _item(1, 0, None), _item(1, 1, BUDGET), _item(1, 2, BUDGET), _item(1, 3, CANCELLED),
        # Items 3 (cancelled) and 5 (never started) hold a TimeLimitExceeded Failure.
        PmapEnd(span="t1.m1", parent="t1.program", pmap=1, done=2, failed=4, timed_out=True),
    )
    report = tally.end_program(None)
    (pmap,) = report.pmaps
    assert (pmap.total, pmap.ok, pmap.failed, dict(pmap.kinds)) == (6, 2, 4, {"BudgetExceeded": 2, "TimeLimitExceeded": 2})
    assert tally.run_failures == {"BudgetExceeded": 2, "TimeLimitExceeded": 2} and tally.calls == 6
    assert calls_report(report).splitlines()[:3] == [
        "", "<calls>", "The runtime counted what this program's calls returned, whatever the program printed:",
    ]
    assert "- pmap over 6 items: 2 ok, 4 failed (2 BudgetExceeded, 2 TimeLimitExceeded)\n" in calls_report(report)
    assert "- BudgetExceeded: worker call needs 6,139 tokens; ...\n" in calls_report(report)


def test_calls_caught_inside_an_item_that_succeeded_are_failures_too():
    tally = FailureTally()
    tally.start_program()
    _events(
        tally,
        PmapStart(span="t1.m1", parent="t1.program", pmap=1, total=2, concurrency=2),
        _call(1, BUDGET, pmap=1, item=0), _item(1, 0, None),  # the item caught it and returned 0
        _call(2, TOOL, pmap=1, item=1), _item(1, 1, TOOL),  # the item failed: counted once, as the item
        PmapEnd(span="t1.m1", parent="t1.program", pmap=1, done=1, failed=1, timed_out=False),
    )
    report = tally.end_program(None)
    assert (dict(report.caught_failed), tally.run_failures, tally.calls) == (
        {"BudgetExceeded": 1}, {"BudgetExceeded": 1, "ToolError": 1}, 3)
    assert ("- tool calls inside pmap items that still returned a value: 1 failed (1 BudgetExceeded); "
            "the item's function caught them\n") in calls_report(report)


def test_a_nested_pmap_and_a_program_without_pmaps_or_failures():
    tally = FailureTally()
    tally.start_program()
    _events(tally, PmapStart(span="t1.m2", parent="t1.m1.i0", pmap=2, total=3, concurrency=1),
            PmapEnd(span="t1.m2", parent="t1.m1.i0", pmap=2, done=3, failed=0, timed_out=False))
    report = tally.end_program(None)
    assert calls_report(report).strip().splitlines()[2] == "- pmap over 3 items (nested in an item of another pmap): 3 ok, 0 failed"
    assert "failures, not answers" not in calls_report(report)
    tally.start_program()
    _events(tally, _call(3, None))
    assert calls_report(tally.end_program(None)) == ""


def test_a_tool_call_outside_pmap_counts_when_caught_and_is_the_error_when_not(tmp_path):
    def lookup(level: str) -> str:
        """Describe a log level."""
        raise ValueError(f"unknown level {level}")

    planner = ScriptedProvider([
        "```python\ntry:\n    tool.lookup('BAD')\nexcept ToolError:\n    print('went on')\n```",
        "```python\ntool.lookup('WORSE')\n```",
        "```python\ndone('no levels')\n```",
    ])
    rt = Runtime(planner=planner, tools=[lookup], transcript_dir=tmp_path)
    result = rt.run("Describe the levels.", ["x"])
    caught, uncaught = planner.requests[1].messages[-1].content, planner.requests[2].messages[-1].content
    assert "- tool calls outside pmap: 1 failed (1 ToolError); the program caught them and went on" in caught
    assert "1 of the results this program got back are failures" in caught
    assert "ToolError" in uncaught and "<calls>" not in uncaught  # the program's error says it
    assert (result.status, result.failed_calls, result.calls_made, result.partial) == ("done", {"ToolError": 1}, 2, True)


def test_a_transcript_written_before_run_end_carried_the_counts_still_loads(case, tmp_path):
    _, transcript, _ = case
    lines = transcript.path.read_text().splitlines()
    end = json.loads(lines[-1])
    for name in ("failed_calls", "calls_made", "partial"):
        del end[name]
    old = tmp_path / "transcript.jsonl"
    old.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    loaded = Transcript.load(old)
    assert (loaded.status, loaded.failed_calls, loaded.calls_made, loaded.partial) == ("done", {}, 0, False)
    assert render_summary(loaded).startswith("status     done\nturns      2\n")


def test_an_answer_refused_by_the_schema_is_fed_back_with_the_calls_that_failed():
    def lookup(level: str) -> str:
        """Describe a log level."""
        raise ValueError(f"unknown level {level}")

    planner = ScriptedProvider(["```python\nr = pmap(lambda x: tool.lookup(x), ['a', 'b'])\ndone('x')\n```",
                                "```python\ndone(1)\n```"])
    result = Runtime(planner=planner, tools=[lookup], transcript_dir=None).run("Count.", ["c"], schema=int)
    told = planner.requests[1].messages[-1].content
    assert told.startswith("<calls>\n") and "- pmap over 2 items: 0 ok, 2 failed (2 ToolError)\n" in told
    assert "does not match the required output schema" in told
    assert (result.status, result.failed_calls, result.partial) == ("done", {"ToolError": 2}, True)


# -- a caught failure and one that ended the program: one count in every view --------------------

CAUGHT_THEN_UNCAUGHT = """```python
try:
    tool.lookup("missing")
except Exception:
    print("went on")
tool.lookup("missing")
```"""


def test_every_view_counts_the_call_that_ended_the_program_apart(tmp_path):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(key)

    rt = Runtime(planner=ScriptedProvider([CAUGHT_THEN_UNCAUGHT, "```python\ndone(1)\n```"]), tools=[lookup],
                 transcript_dir=tmp_path)
    result = rt.run("g", ["x"])
    t = Transcript.load(result.transcript)
    # The caught call is a failure the program went on after; the uncaught one is turn 1's error,
    # reported as such, not among the failed calls.
    assert result.status == "done" and t.turns[0].status == "error"
    assert result.failed_calls == {"ToolError": 1} and result.calls_made == 2
    assert t.failed_calls == {"ToolError": 1}
    said = "1 of 2 calls"
    assert f"failed     {said}: 1 ToolError" in render_summary(t)
    assert f"failed     {said}: 1 ToolError" in render_show(t)
    assert f"{said} failed" in render_html(t)

    screen = io.StringIO()
    observe = TerminalProgress(screen, redraw_every=0)
    for event in t.events:
        observe(event)
        if event["type"] == "turn.end" and event["turn"] == 1:
            frame = screen.getvalue().rsplit("\x1b[J", 1)[-1]
            assert "· 1 call failed (+1 that ended its program)\n" in frame
    lines = io.StringIO()
    observe_lines = LineProgress(lines)
    for event in t.events:
        observe_lines(event)
    said_lines = lines.getvalue().splitlines()
    turn_1 = next(line for line in said_lines if line.startswith("turn 1: error"))
    assert turn_1.endswith("· 1 call failed (+1 that ended its program)")
    assert said_lines[-1] == f"run: {said} failed: 1 ToolError"
    code, out, _ = run_cli(["runs", "--out", str(tmp_path)])
    assert code == 0 and " 1/2 " in out
    # A run cut off before its run.end is counted from its calls, by the same rule.
    cut = tmp_path / "cut" / "20990101T000000Z-cut"
    cut.mkdir(parents=True)
    lines = Path(result.transcript).read_text().splitlines(keepends=True)
    (cut / "transcript.jsonl").write_text("".join(lines[:-1]))
    code, out, _ = run_cli(["runs", "--out", str(cut.parent)])
    assert code == 0 and "interrupted" in out and " 1/2 " in out


def test_show_and_the_page_name_the_call_that_ended_the_program_apart(tmp_path):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(key)

    rt = Runtime(planner=ScriptedProvider([CAUGHT_THEN_UNCAUGHT, "```python\ndone(1)\n```"]), tools=[lookup],
                 transcript_dir=tmp_path)
    t = Transcript.load(rt.run("g", ["x"]).transcript)
    assert "2 calls (1 failed, 1 ended the program)" in render_show(t)
    page = render_html(t)
    assert "2 calls (1 failed, 1 ended the program)" in page
    assert "2 calls, 1 failed, 1 ended the program" in page
    tree = render_tree(t).splitlines()
    [c1] = [line for line in tree if "lookup c1" in line]
    [c2] = [line for line in tree if "lookup c2" in line]
    assert "ended the program" not in c1 and "error" in c1
    assert "error" in c2 and "◀ ended the program" in c2


CAUGHT_IN_ITEMS = """```python
def look(c):
    try:
        return tool.lookup(c)
    except Exception:
        return None
found = pmap(look, ["a", "b", "c"])
```"""


def _live_count_before_the_end(transcript: Path) -> int:
    """What the live display counted just before the run's end: it gets every event, the
    sub-runs' too, as the transcript file holds them."""
    lines = LineProgress(io.StringIO())
    for event in map(json.loads, transcript.read_text().splitlines()):
        if event["type"] == "run.end" and event["span"] == "run":
            return lines._state.failed
        lines(event)
    raise AssertionError("no run.end")


def test_the_live_count_is_the_runs_count_when_items_catch_failures(tmp_path):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(key)

    rt = Runtime(planner=ScriptedProvider([CAUGHT_IN_ITEMS, "```python\ndone(1)\n```"]), tools=[lookup],
                 transcript_dir=tmp_path)
    result = rt.run("g", ["x"])
    assert result.failed_calls == {"ToolError": 3}
    assert _live_count_before_the_end(Path(result.transcript)) == 3


def test_the_live_count_is_the_runs_count_with_sub_runs(tmp_path):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(key)

    top = "```python\ntry:\n    tool.lookup('top')\nexcept Exception:\n    pass\ndone(tool.agent('Look.', data=[0], max_tokens=20_000, max_turns=2))\n```"
    rt = Runtime(planner=ScriptedProvider([top]), sub_planner=ScriptedProvider([CAUGHT_IN_ITEMS, "```python\ndone(2)\n```"]),
                 tools=[lookup], transcript_dir=tmp_path)
    result = rt.run("g", ["x"])
    assert (result.status, result.answer) == ("done", 2), result
    # One caught at the top, three caught in the sub-run's items, which answered.
    assert result.failed_calls == {"ToolError": 4}
    assert _live_count_before_the_end(Path(result.transcript)) == 4
