"""Transcripts of real runs read back: every way a run ends, every turn and every call."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import trio

import ptcrun
from ptcrun import Limits, Runtime, ScriptedProvider, Transcript
from ptcrun.errors import TranscriptError

from .example_runs import CHUNKS, FAN_OUT, LOOK, block, example_run, runtime

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_turns_match(result: ptcrun.Result, t: Transcript) -> None:
    """Every turn of the Result is in the transcript, with the same program and output."""
    assert [turn.number for turn in t.turns[: len(result.turns)]] == [turn.number for turn in result.turns]
    for mine, theirs in zip(result.turns, t.turns, strict=False):
        assert theirs.program == mine.program
        assert theirs.output == mine.output
        assert theirs.reply == mine.reply
        assert theirs.status == mine.status
        assert theirs.planner_input_tokens == mine.planner_input_tokens
        assert theirs.planner_output_tokens == mine.planner_output_tokens


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    return example_run(tmp_path_factory.mktemp("runs"))


def test_done_run_has_every_turn_and_ends_with_run_end(done_run):
    result, t = done_run
    assert t.status == "done" and t.complete and not t.damaged_tail
    assert t.answer == result.answer == {"errors": sum(c.count("ERROR") for c in CHUNKS)}
    assert_turns_match(result, t)
    assert [turn.program.strip() for turn in t.turns] == [LOOK.strip(), FAN_OUT.strip()]
    assert t.turns[0].output.startswith("12 chunks\n")
    last = lines(result.transcript)[-1]
    assert last["type"] == "run.end" and last["status"] == "done"
    assert t.usage == result.usage


def test_done_run_has_every_call_with_its_pmap_item_and_slot(done_run):
    _, t = done_run
    assert Counter(c.tool for c in t.calls) == {"worker": 12, "lookup": 3}
    assert [len(turn.calls) for turn in t.turns] == [0, 15]
    workers, lookups = t.pmaps
    assert (workers.total, workers.done, workers.failed, workers.status) == (12, 12, 0, "ok")
    assert (lookups.total, lookups.done, lookups.failed, lookups.status) == (3, 2, 1, "failed")
    assert sorted(c.item for c in workers.calls) == list(range(12))
    for call in workers.calls:
        assert call.ok and call.pmap == workers.span
        assert call.slot in range(4)
        assert call.value == CHUNKS[call.item].count("ERROR")
        assert call.args[0] == CHUNKS[call.item]
        assert call.kwargs == {"schema": {"type": "integer"}}
        assert CHUNKS[call.item] in call.prompt
        assert call.reply == str(call.value)
        assert call.input_tokens > 0 and call.output_tokens > 0
        assert call.seconds is not None and call.seconds > 0
    bad = [c for c in lookups.calls if not c.ok]
    assert [(c.args, c.status, c.error["type"]) for c in bad] == [(("BAD",), "error", "ToolError")]
    assert "unknown level BAD" in bad[0].error["message"]
    assert lookups.calls[0].llm == ()  # a user tool makes no LLM request
    assert [i.status for i in lookups.items] == ["ok", "ok", "error"]


def test_usage_adds_up_from_the_llm_requests(done_run):
    result, t = done_run
    planner = [r for r in t.llm_calls if r.role == "planner"]
    worker = [r for r in t.llm_calls if r.role == "worker"]
    assert len(planner) == result.usage.planner_calls == 2
    assert len(worker) == result.usage.worker_calls == 12
    assert sum(r.input_tokens for r in planner) == result.usage.planner_input_tokens
    assert sum(r.output_tokens for r in worker) == result.usage.worker_output_tokens
    assert sum(turn.tokens for turn in t.turns) == result.usage.total_tokens


def test_spans_form_one_tree_under_the_run(done_run):
    _, t = done_run
    spans = t.spans()
    ids = {s.span for s in spans}
    assert len(ids) == len(spans)
    assert [s.span for s in spans if s.parent is None] == ["run"]
    for s in spans:
        assert s.parent is None or s.parent in ids, s
        assert s.status != "unfinished", s
    kinds = Counter(s.kind for s in spans)
    assert kinds == {"run": 1, "sandbox": 1, "turn": 2, "llm": 14, "program": 2, "pmap": 2, "item": 15, "call": 15}


def test_observers_get_the_same_events_as_the_file(tmp_path):
    seen: list[dict] = []
    result = runtime([block(FAN_OUT)], tmp_path, observers=[seen.append]).run("Count ERROR lines.", CHUNKS)
    assert seen == lines(result.transcript)
    from_file = Transcript.load(result.transcript)
    live = Transcript.from_events(seen)
    assert live.path is None
    assert [c.span for c in live.calls] == [c.span for c in from_file.calls]
    assert live.usage == from_file.usage


def test_failed_run_is_read_back(tmp_path):
    result = runtime([block(LOOK), block("fail('the log has no timestamps')")], tmp_path).run("When?", CHUNKS)
    t = Transcript.load(result.transcript.parent)  # the run folder works too
    assert (result.status, t.status, t.answer) == ("failed", "failed", "the log has no timestamps")
    assert_turns_match(result, t)
    assert [turn.status for turn in t.turns] == ["ok", "failed"]
    assert lines(result.transcript)[-1]["type"] == "run.end"


def test_budget_exceeded_run_keeps_the_turn_that_could_not_be_sent(tmp_path):
    rt = runtime([block("print(1)"), block("print(2)")], tmp_path, max_tokens=2_600, planner_max_tokens=200)
    result = rt.run("Anything.", CHUNKS)
    t = Transcript.load(result.transcript)
    assert result.status == t.status == "budget_exceeded"
    assert t.error["type"] == "BudgetExceeded"
    assert_turns_match(result, t)
    assert [(turn.number, turn.status) for turn in t.turns] == [(1, "ok"), (2, "budget_exceeded")]
    assert t.turns[1].planner is None and t.turns[1].reply is None  # never sent
    assert t.usage.planner_calls == 1


def test_timeout_run_records_the_cancelled_planner_request(tmp_path):
    requests = []

    async def planner(request):
        requests.append(request)
        if len(requests) > 1:
            await trio.sleep(30)
        return block("print('first')")

    rt = Runtime(planner=ScriptedProvider(planner), worker=ScriptedProvider(["0"]), transcript_dir=tmp_path,
                 limits=Limits(call_timeout=0.5, pmap_timeout=0.5, turn_timeout=1, run_timeout=60))
    result = rt.run("Anything.", CHUNKS)
    t = Transcript.load(result.transcript)
    assert result.status == t.status == "timeout"
    assert "Limits.turn_timeout" in t.error["message"]
    assert [(turn.number, turn.status) for turn in t.turns] == [(1, "ok"), (2, "timeout")]
    assert t.turns[1].planner.status == "cancelled"
    assert t.turns[1].planner.text is None


def test_sandbox_restart_shows_in_the_transcript(tmp_path):
    rt = runtime([block("x = 1\nwhile True:\n    pass"), block("done(len(data))")], tmp_path,
                 call_timeout=0.5, pmap_timeout=0.5, turn_timeout=1)
    result = rt.run("Count the chunks.", CHUNKS)
    t = Transcript.load(result.transcript)
    assert result.status == t.status == "done" and t.answer == len(CHUNKS)
    assert_turns_match(result, t)
    first, second = t.turns
    assert first.restarted and first.error["type"] == "TimeLimitExceeded"
    assert not second.restarted and "fresh sandbox" in second.note
    sandboxes = [s.span for s in t.spans() if s.kind == "sandbox"]
    assert sandboxes == ["t0.sandbox", "t2.sandbox"]


async def test_interrupted_run_ends_with_run_end_cancelled(tmp_path):
    async def slow(x: int) -> int:
        """Return x after 30 s."""
        await trio.sleep(30)
        return x

    scope = trio.CancelScope()

    def interrupt_when_every_call_started(event: dict) -> None:
        if event["type"] == "call.start" and event["call"] == 6:
            scope.cancel()

    rt = runtime([block("print(pmap(lambda i: tool.slow(i), range(6)))")], tmp_path, tools=[slow],
                 observers=[interrupt_when_every_call_started])
    with scope:
        await rt.arun("Anything.", CHUNKS)
    assert scope.cancelled_caught
    (path,) = tmp_path.glob("*/transcript.jsonl")
    events = lines(path)
    assert events[-1]["type"] == "run.end" and events[-1]["status"] == "cancelled"
    t = Transcript.load(path)
    assert t.status == "cancelled" and t.complete
    assert [turn.status for turn in t.turns] == ["cancelled"]  # run.end closes the open turn and program
    assert sorted(c.args[0] for c in t.calls) == list(range(6))  # every call that started is there
    assert {c.status for c in t.calls} <= {"unfinished", "cancelled"}
    assert t.pmaps[0].status == "unfinished"


def test_killed_run_is_read_up_to_the_cut(done_run, tmp_path):
    result, whole = done_run
    text = result.transcript.read_text()
    cut = text.index('"type": "call.end"')  # the process died in the middle of writing a line
    path = tmp_path / "transcript.jsonl"
    path.write_text(text[:cut])
    t = Transcript.load(path)
    assert t.damaged_tail and t.status == "incomplete" and not t.complete
    assert [turn.status for turn in t.turns] == ["ok", "unfinished"]
    assert t.turns[1].program == whole.turns[1].program
    assert t.calls and all(c.status == "unfinished" for c in t.calls)  # cut before the first call ended
    assert t.usage.planner_calls == 2  # summed from the LLM requests, as there is no run.end
    assert t.usage.planner_input_tokens == whole.usage.planner_input_tokens


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "transcript.jsonl"
    path.write_text(json.dumps({"v": 3, "type": "run.start", "ts": 1.0, "span": "run", "parent": None}) + "\n")
    with pytest.raises(TranscriptError, match=r"schema v3; this ptcrun reads up to v2\. Upgrade ptcrun"):
        Transcript.load(path)


def calls_in_short(t: Transcript) -> list[tuple]:
    return sorted((c.tool, c.args, c.kwargs, c.status, c.value, c.error and c.error["type"], c.pmap, c.item)
                  for c in t.calls)


def test_v1_transcript_reads_like_a_new_run_of_the_same_programs(done_run):
    """``data/v1_run.jsonl`` was written by ptcrun's schema version 1 from ``example_run``."""
    _, now = done_run
    old = Transcript.load(DATA / "v1_run.jsonl")
    assert {e["v"] for e in old.events} == {1}
    assert (old.status, old.answer, old.complete, old.damaged_tail) == (now.status, now.answer, True, False)
    assert old.answer == {"errors": sum(c.count("ERROR") for c in CHUNKS)}
    def shape(t: Transcript) -> list[tuple]:
        return [(x.number, x.status, x.reply, x.program, x.output, x.error) for x in t.turns]

    def pmap_shape(t: Transcript) -> list[tuple]:
        return [(p.total, p.done, p.failed, p.status, [i.status for i in p.items]) for p in t.pmaps]

    assert shape(old) == shape(now)
    assert calls_in_short(old) == calls_in_short(now)
    assert Counter(c.tool for c in old.calls) == {"worker": 12, "lookup": 3}
    assert pmap_shape(old) == pmap_shape(now)
    failed_item = old.pmaps[1].items[2]
    assert failed_item.error["type"] == now.pmaps[1].items[2].error["type"] == "ToolError"
    assert "unknown level BAD" in failed_item.error["message"]
    assert old.usage.total_tokens == old.events[-1]["usage"]["total_tokens"]
    assert Counter(s.kind for s in old.spans()) == Counter(s.kind for s in now.spans())


def test_v1_transcript_of_a_restart_and_a_timeout_reads_its_errors_as_payloads():
    """``data/v1_restart_timeout.jsonl``: turn 1 loops until the turn clock restarts the sandbox;
    turn 2's worker call fails (the provider is down), then it loops until the run clock ends."""
    t = Transcript.load(DATA / "v1_restart_timeout.jsonl")
    assert (t.status, t.complete, t.error["type"]) == ("timeout", True, "TimeLimitExceeded")
    first, second = t.turns
    assert (first.status, first.restarted, first.error["type"]) == ("error", True, "TimeLimitExceeded")
    assert "line" not in first.error  # version 1 wrote null for an unknown line
    assert second.status == "timeout" and second.program_seconds is None
    assert second.error == {"type": "TimeLimitExceeded",
                            "message": "run clock expired after 3 s (Limits.run_timeout). Raise run_timeout."}
    assert second.output == "second turn\nworker failed: scripted outage\n"
    (call,) = t.calls
    assert (call.status, call.error["type"], call.error["fields"]["status"]) == ("error", "ProviderError", 529)
    (request,) = call.llm
    assert request.status == "error"
    assert request.error == {"type": "ProviderError", "message": "scripted outage"}
    assert request.input_tokens == 0 and request.text is None
    assert [s.span for s in t.spans() if s.kind == "sandbox"] == ["t0.sandbox", "t2.sandbox"]


def test_damaged_line_before_the_end_is_an_error(done_run, tmp_path):
    result, _ = done_run
    text = result.transcript.read_text().splitlines()
    text[3] = text[3][:20]
    path = tmp_path / "transcript.jsonl"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(TranscriptError, match="line 4 is not JSON"):
        Transcript.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no events"),
        ('{"hello": 1}\n', "not a ptcrun event"),
        ('{"v": 1, "type": "turn.start", "ts": 1.0, "span": "t1", "parent": "run"}\n', "not 'run.start'"),
    ],
)
def test_files_that_are_not_transcripts_are_refused(tmp_path, content, message):
    path = tmp_path / "transcript.jsonl"
    path.write_text(content)
    with pytest.raises(TranscriptError, match=message):
        Transcript.load(path)


def test_missing_file_names_what_to_pass(tmp_path):
    with pytest.raises(TranscriptError, match=r"does not exist; pass a transcript\.jsonl file or the run folder"):
        Transcript.load(tmp_path / "nope")


def test_asking_for_a_turn_the_run_does_not_have(done_run):
    _, t = done_run
    assert t.turn(2).number == 2
    with pytest.raises(TranscriptError, match=r"no turn 5; it has 2 turns \(1 to 2\)"):
        t.turn(5)


def test_progress_callback_reports_each_item_that_finished_well(tmp_path):
    seen: list[tuple[int, int, object]] = []
    rt = runtime([block(FAN_OUT)], None, observers=[ptcrun.progress_callback(lambda *a: seen.append(a))])
    rt.run("Count ERROR lines.", CHUNKS)
    workers = [s for s in seen if s[1] == 12]
    lookups = [s for s in seen if s[1] == 3]
    assert [done for done, _, _ in workers] == list(range(1, 13))
    assert sorted(value for _, _, value in workers) == sorted(c.count("ERROR") for c in CHUNKS)
    # The failed lookup item calls nobody, but still counts as finished.
    assert len(lookups) == 2 and {v for _, _, v in lookups} == {"something failed", "all fine"}
    assert all(done <= 3 for done, _, _ in lookups)


def test_parallel_events_follow_the_worker_pool_vocabulary(tmp_path):
    seen: list[dict] = []
    rt = runtime([block(FAN_OUT)], None, observers=[ptcrun.parallel_events(seen.append)])
    rt.run("Count ERROR lines.", CHUNKS)
    kinds = Counter(e["type"] for e in seen)
    assert kinds == {"parallel.start": 2, "worker.start": 15, "worker.complete": 15, "parallel.complete": 2}
    assert seen[0]["type"] == "parallel.start" and seen[0]["data"]["item_count"] == 12
    failed = [e for e in seen if e["type"] == "worker.complete" and e["data"]["error"]]
    assert [(e["data"]["item_index"], e["data"]["total_items"]) for e in failed] == [(2, 3)]
    ends = [e["data"] for e in seen if e["type"] == "parallel.complete"]
    assert ends == [{"items_processed": 12, "items_failed": 0, "timed_out": False},
                    {"items_processed": 3, "items_failed": 1, "timed_out": False}]


def test_transcript_doc_examples_run(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "transcript.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, "docs/transcript.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.startswith("done 2 ")
    assert "1/2 chunks counted" in out
    assert '"type": "parallel.complete"' in out
