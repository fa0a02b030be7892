"""Resume: a run killed at each stage is continued, what it recorded replayed at no cost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ptcrun import Limits, Request, Runtime, ScriptedProvider, Transcript, errors
from ptcrun.transcript._views import render_show, render_summary
from tests.clirun import run_cli

# -- killed for real: the command in a child process, SIGKILLed from inside a model call ----

PLANNER = '''
import os, signal

FAN_OUT = """```python
counts = pmap(lambda c: tool.worker(c, "Count ERROR lines.", schema={"type": "integer"}), data)
print(counts)
```"""
DONE = """```python
done(sum(counts))
```"""


def respond(request):
    turn = (len(request.messages) + 1) // 2
    if os.environ.get("KILL_AT") == f"planner{turn}":
        os.kill(os.getpid(), signal.SIGKILL)
    return FAN_OUT if turn == 1 else DONE
'''

WORKER = '''
import os, signal, threading

lock, calls = threading.Lock(), 0


def respond(request):
    global calls
    with lock:
        calls += 1
        if os.environ.get("KILL_AT") == f"worker{calls}":
            os.kill(os.getpid(), signal.SIGKILL)
    return str(request.messages[0].content.split("<text>", 1)[1].count("ERROR"))
'''

LOG = "ERROR a\nok\nERROR b\nERROR c\nERROR d\n"
GOAL = "How many ERROR lines?"


@pytest.fixture
def command(tmp_path: Path) -> list[str]:
    (tmp_path / "planner.py").write_text(PLANNER)
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "log.txt").write_text(LOG)
    return [
        "run", str(tmp_path / "log.txt"), "--goal", GOAL, "--chunk-lines", "1",
        "--planner", f"scripted:{tmp_path / 'planner.py'}", "--worker", f"scripted:{tmp_path / 'worker.py'}",
        "--concurrency", "1", "--out", str(tmp_path / "runs"), "--quiet",
    ]


def killed_run(command: list[str], tmp_path: Path, kill_at: str) -> Path:
    """Run the command until a model call SIGKILLs it; return the run folder it left."""
    env = {**os.environ, "KILL_AT": kill_at}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", *command],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    # The killed command's corpus store is left beside the run folder; the next run removes it.
    folders = list((tmp_path / "runs").iterdir())
    (folder,) = [f for f in folders if not f.name.startswith(".")]
    assert [f.name.startswith(".ptcrun-corpus-") for f in folders if f != folder] == [True]
    assert Transcript.load(folder).status == "incomplete"
    return folder


def resumed(command: list[str], folder: Path) -> tuple[dict, Transcript]:
    code, out, err = run_cli([*command, "--json", "--resume", str(folder)])
    assert code == 0, err
    result = json.loads(out)
    return result, Transcript.load(result["transcript"])


def live(t: Transcript, role: str) -> int:
    return sum(1 for r in t.llm_calls if r.role == role and r.cached is None)


def test_killed_during_the_planners_first_reply_resumes_all_live(command, tmp_path):
    folder = killed_run(command, tmp_path, "planner1")
    result, t = resumed(command, folder)
    assert result["answer"] == 4
    # The resumed command removed the store the killed one left, and its own on its way out.
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".ptcrun-corpus-")]
    assert result["replayed"] == {"planner": 0, "worker": 0}
    assert live(t, "planner") == 2 and live(t, "worker") == 5


def test_killed_during_the_planners_second_reply_replays_the_first_turn(command, tmp_path):
    folder = killed_run(command, tmp_path, "planner2")
    before = Transcript.load(folder)
    assert [c.status for c in before.calls] == ["ok"] * 5
    result, t = resumed(command, folder)
    assert result["status"] == "done" and result["answer"] == 4
    assert result["replayed"] == {"planner": 1, "worker": 5}
    assert result["resumed_from"] == str(folder / "transcript.jsonl")
    assert live(t, "planner") == 1 and live(t, "worker") == 0
    assert t.turns[0].planner is not None and t.turns[0].planner.cached == "resume"
    assert t.turns[0].output == before.turns[0].output
    # Only the live reply is paid for.
    assert result["usage"]["worker_calls"] == 0 and result["usage"]["planner_calls"] == 1
    assert result["usage"]["total_tokens"] == t.turns[1].planner_input_tokens + t.turns[1].planner_output_tokens


def test_killed_mid_fan_out_replays_the_calls_that_finished_and_sends_the_rest(command, tmp_path):
    folder = killed_run(command, tmp_path, "worker3")
    before = Transcript.load(folder)
    assert sorted(c.status for c in before.calls) == ["ok", "ok", "unfinished"]
    result, t = resumed(command, folder)
    assert result["answer"] == 4
    assert result["replayed"] == {"planner": 1, "worker": 2}
    assert live(t, "worker") == 3 and live(t, "planner") == 1
    assert result["usage"]["worker_calls"] == 3
    assert t.turns[0].output == "[1, 0, 1, 1, 1]\n"


def test_resuming_a_finished_run_replays_it_to_its_answer_at_no_cost(command, tmp_path):
    code, out, err = run_cli([*command, "--json"])
    assert code == 0, err
    first = json.loads(out)
    result, t = resumed(command, Path(first["transcript"]).parent)
    assert result["answer"] == first["answer"] == 4
    assert result["usage"]["total_tokens"] == 0 and result["usage"]["calls"] == 0
    assert result["replayed"] == {"planner": 2, "worker": 5}
    assert live(t, "planner") == live(t, "worker") == 0
    assert "2 replies of the planner and 5 replies of workers replayed" in render_summary(t)
    shown = render_show(t, calls=True)
    assert "planner 0 in / 0 out (replayed)" in shown and shown.count("ok, replayed") == 5


def test_resume_with_another_goal_is_refused_in_flag_words(command, tmp_path):
    code, out, err = run_cli([*command, "--json"])
    folder = Path(json.loads(out)["transcript"]).parent
    goal = command.index("--goal") + 1
    other = [*command[:goal], "Something else?", *command[goal + 1:]]
    code, out, err = run_cli([*other, "--resume", str(folder)])
    assert code == 2
    assert "--resume" in err and "another goal" in err and "use --cache" in err


# -- the Python form -------------------------------------------------------------------------


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def count_errors(request: Request) -> str:
    return str(request.messages[0].content.split("<text>", 1)[1].count("ERROR"))


CHUNKS = ["ERROR a", "ok", "ERROR b\nERROR c"]
LIMITS = {"call_timeout": 10, "pmap_timeout": 20, "turn_timeout": 30, "run_timeout": 60}
FAN_OUT = 'counts = pmap(lambda c: tool.worker(c, "Count ERROR lines."), data)\nprint(counts)'


def make(planner, worker, tmp_path, tools=None, **limits) -> Runtime:
    return Runtime(planner=planner, worker=worker, tools=tools, limits=Limits(**{**LIMITS, **limits}),
                   transcript_dir=tmp_path / "runs")


def test_a_run_resumed_with_more_turns_and_tokens_replays_and_goes_on(tmp_path):
    first = make(ScriptedProvider([block(FAN_OUT)]), ScriptedProvider(count_errors), tmp_path,
                 max_turns=1, max_tokens=50_000)
    ended = first.run("Count the errors.", CHUNKS)
    assert ended.status == "max_turns"
    planner = ScriptedProvider([block("done(sum(int(c) for c in counts))")])
    worker = ScriptedProvider(count_errors)
    again = make(planner, worker, tmp_path, max_turns=3, max_tokens=90_000)
    result = again.run("Count the errors.", CHUNKS, resume=ended.transcript)
    assert result.status == "done" and result.answer == 3
    # The first message states another budget; it is the same conversation all the same.
    assert result.replayed == {"planner": 1, "worker": 3}
    assert len(planner.requests) == 1 and worker.requests == []
    assert result.resumed_from == ended.transcript
    assert result.turns[0].planner_input_tokens == 0


def test_the_run_diverges_where_a_program_gives_another_output_and_the_rest_is_live(tmp_path):
    def now() -> str:
        """The time."""
        return clock[0]

    clock = ["09:00"]
    program_2 = block("done(sum(int(c) for c in counts))")
    first = make(ScriptedProvider([block(FAN_OUT + "\nprint(tool.now())"), program_2]),
                 ScriptedProvider(count_errors), tmp_path, tools=[now])
    recorded = first.run("Count the errors.", CHUNKS)
    assert recorded.answer == 3
    clock[0] = "10:00"  # a tool runs again on resume, and now says something else
    planner = ScriptedProvider([block("done(-1)")])
    worker = ScriptedProvider(count_errors)
    result = make(planner, worker, tmp_path, tools=[now]).run("Count the errors.", CHUNKS,
                                                              resume=recorded.transcript)
    assert result.replayed == {"planner": 1, "worker": 3}
    assert len(planner.requests) == 1  # turn 2 was asked live: the planner saw 10:00
    assert "10:00" in planner.requests[0].messages[-1].content
    assert result.answer == -1


def test_another_worker_models_replies_are_not_replayed(tmp_path):
    first = make(ScriptedProvider([block(FAN_OUT + "\ndone(1)")]), ScriptedProvider(count_errors, name="small"),
                 tmp_path)
    recorded = first.run("Count the errors.", CHUNKS)
    worker = ScriptedProvider(count_errors, name="large")
    result = make(ScriptedProvider(["unused"]), worker, tmp_path).run("Count the errors.", CHUNKS,
                                                                      resume=recorded.transcript)
    assert result.replayed == {"planner": 1, "worker": 0} and len(worker.requests) == 3


def test_the_transcript_says_which_run_it_resumed(tmp_path):
    recorded = make(ScriptedProvider([block("done(1)")]), ScriptedProvider(["x"]), tmp_path).run("One.", CHUNKS)
    result = make(ScriptedProvider(["unused"]), ScriptedProvider(["x"]), tmp_path).run(
        "One.", CHUNKS, resume=recorded.transcript.parent
    )
    events = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    assert events[0]["resumed_from"] == str(recorded.transcript)
    assert events[-1]["replayed"] == {"planner": 1, "worker": 0}
    t = Transcript.load(result.transcript)
    assert t.resumed_from == str(recorded.transcript) and t.replayed == {"planner": 1, "worker": 0}


@pytest.mark.parametrize(
    ("goal", "chunks", "message"),
    [
        ("Another goal.", CHUNKS, "is a run of another goal"),
        ("One.", [*CHUNKS, "more"], "is a run over another corpus"),
        ("One.", [c.upper() for c in CHUNKS], "is a run over another corpus"),
    ],
    ids=["goal", "more-chunks", "other-text"],
)
def test_a_resume_of_another_run_is_refused_before_anything_runs(tmp_path, goal, chunks, message):
    recorded = make(ScriptedProvider([block("done(1)")]), ScriptedProvider(["x"]), tmp_path).run("One.", CHUNKS)
    planner = ScriptedProvider(["unused"])
    with pytest.raises(errors.ConfigError, match=message):
        make(planner, ScriptedProvider(["x"]), tmp_path).run(goal, chunks, resume=recorded.transcript)
    assert planner.requests == [] and len(list((tmp_path / "runs").iterdir())) == 1


def test_a_resume_of_a_missing_or_broken_transcript_is_refused(tmp_path):
    runtime = make(ScriptedProvider(["unused"]), ScriptedProvider(["x"]), tmp_path)
    with pytest.raises(errors.ConfigError, match="does not exist"):
        runtime.run("One.", CHUNKS, resume=tmp_path / "nowhere")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"not": "an event"}\n')
    with pytest.raises(errors.ConfigError, match="is not a ptcrun event"):
        runtime.run("One.", CHUNKS, resume=broken)


def test_a_resumed_run_can_itself_be_resumed(tmp_path):
    program = block(FAN_OUT + "\ndone(sum(int(c) for c in counts))")
    first = make(ScriptedProvider([program]), ScriptedProvider(count_errors), tmp_path).run("Count.", CHUNKS)
    second = make(ScriptedProvider(["unused"]), ScriptedProvider(count_errors), tmp_path).run(
        "Count.", CHUNKS, resume=first.transcript
    )
    planner, worker = ScriptedProvider(["unused"]), ScriptedProvider(count_errors)
    third = make(planner, worker, tmp_path).run("Count.", CHUNKS, resume=second.transcript)
    assert first.answer == second.answer == third.answer == 3
    assert third.replayed == {"planner": 1, "worker": 3} and third.usage.total_tokens == 0
    assert planner.requests == [] and worker.requests == []


def test_output_that_looks_like_a_budget_line_is_not_masked(tmp_path):
    def left() -> int:
        """A number."""
        return number[0]

    number = [100]
    program = block('print(f"{tool.left():,} tokens, 3 turns")')
    first = make(ScriptedProvider([program, block("done(1)")]), ScriptedProvider(["x"]), tmp_path, tools=[left])
    recorded = first.run("Count.", CHUNKS)
    number[0] = 200
    planner = ScriptedProvider([block("done(2)")])
    result = make(planner, ScriptedProvider(["x"]), tmp_path, tools=[left]).run(
        "Count.", CHUNKS, resume=recorded.transcript
    )
    assert result.replayed == {"planner": 1, "worker": 0}
    assert len(planner.requests) == 1 and result.answer == 2


def test_killed_after_done_before_the_run_ended_replays_to_the_answer(tmp_path):
    program = block(FAN_OUT + "\ndone(sum(int(c) for c in counts))")
    first = make(ScriptedProvider([program]), ScriptedProvider(count_errors), tmp_path).run("Count.", CHUNKS)
    # What a kill between the program's done() and run.end leaves: every event but the last.
    lines = first.transcript.read_text().splitlines(keepends=True)
    assert '"run.end"' in lines[-1] and '"status": "done"' in lines[-3].replace('":"', '": "')
    first.transcript.write_text("".join(lines[:-1]))
    assert Transcript.load(first.transcript).status == "incomplete"
    planner, worker = ScriptedProvider(["unused"]), ScriptedProvider(count_errors)
    result = make(planner, worker, tmp_path).run("Count.", CHUNKS, resume=first.transcript)
    assert result.status == "done" and result.answer == 3 and result.usage.total_tokens == 0
    assert planner.requests == [] and worker.requests == []


def test_the_async_form_resumes_too(tmp_path):
    import trio

    program = block(FAN_OUT + "\ndone(sum(int(c) for c in counts))")
    first = make(ScriptedProvider([program]), ScriptedProvider(count_errors), tmp_path).run("Count.", CHUNKS)
    planner, worker = ScriptedProvider(["unused"]), ScriptedProvider(count_errors)
    runtime = make(planner, worker, tmp_path)
    result = trio.run(lambda: runtime.arun("Count.", CHUNKS, resume=first.transcript))
    assert result.answer == 3 and result.replayed == {"planner": 1, "worker": 3}
    assert planner.requests == [] and worker.requests == []


def test_only_the_budget_lines_ptcrun_writes_are_masked():
    from ptcrun.prompts._render import render
    from ptcrun.runtime._resume import planner_key
    from ptcrun.runtime._turns import budget_line
    from ptcrun.runtime.providers._base import Message

    def key(*texts: str) -> str:
        messages = [Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
        return planner_key(ScriptedProvider(["x"]), Request(messages=messages, purpose="planner"))

    def no_code(turns: int, budget: dict) -> str:
        return render("no_code", count=0, next_turn=2, max_turns=turns, budget=budget_line(budget))

    spent = {"tokens": 9_000, "turns": 7, "seconds": 100.0, "cost": 0.04}
    fresh = {"tokens": 200_000, "turns": 19, "seconds": None, "cost": 0.0}
    assert key("goal", "reply", no_code(8, spent)) == key("goal", "reply", no_code(20, fresh))
    assert key("goal", "reply", no_code(8, spent)) != key("goal", "reply 2", no_code(8, spent))
    # The same words written by a program (its output, its error) are compared as they are.
    said = "line 1: ValueError: Turn 2 of 8. Budget left: 9,000 tokens, 7 turns."
    other = "line 1: ValueError: Turn 2 of 8. Budget left: 1 tokens, 7 turns."
    assert key("goal", "reply", said) != key("goal", "reply", other)
    printed = '<program_output turn="1">\nTurn 2 of 8. Budget left: 9,000 tokens, 7 turns.\n</program_output>'
    assert key("goal", "r", printed) != key("goal", "r", printed.replace("9,000", "1"))


def test_the_live_progress_says_a_planner_reply_was_replayed(tmp_path):
    import io

    from ptcrun.transcript._progress import LineProgress

    recorded = make(ScriptedProvider([block("done(1)")]), ScriptedProvider(["x"]), tmp_path).run("One.", CHUNKS)
    said = io.StringIO()
    runtime = Runtime(planner=ScriptedProvider(["unused"]), worker=ScriptedProvider(["x"]), limits=Limits(**LIMITS),
                      transcript_dir=tmp_path / "runs", observers=[LineProgress(said)])
    runtime.run("One.", CHUNKS, resume=recorded.transcript)
    assert "turn 1: planner reply replayed from the resumed run, at no cost" in said.getvalue()


def test_a_last_line_cut_by_the_kill_is_dropped_and_a_damaged_one_before_it_refused(tmp_path):
    program = block(FAN_OUT + "\ndone(sum(int(c) for c in counts))")
    first = make(ScriptedProvider([program]), ScriptedProvider(count_errors), tmp_path).run("Count.", CHUNKS)
    lines = first.transcript.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-1]) + lines[-1][:25])  # run.end cut mid-write
    result = make(ScriptedProvider(["unused"]), ScriptedProvider(count_errors), tmp_path).run(
        "Count.", CHUNKS, resume=cut
    )
    assert result.answer == 3 and result.replayed == {"planner": 1, "worker": 3}
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(lines[:3]) + lines[3][:25] + "\n" + "".join(lines[4:]))
    runtime = make(ScriptedProvider(["unused"]), ScriptedProvider(count_errors), tmp_path)
    with pytest.raises(errors.ConfigError, match="line 4 is not JSON"):
        runtime.run("Count.", CHUNKS, resume=damaged)
    newer = tmp_path / "newer.jsonl"
    newer.write_text("".join(lines).replace('"v": 2', '"v": 99').replace('"v":2', '"v":99'))
    with pytest.raises(errors.ConfigError, match="schema v99"):
        runtime.run("Count.", CHUNKS, resume=newer)
