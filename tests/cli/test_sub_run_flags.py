"""The command line's side of sub-runs: --max-depth, --sub-planner, errors in flag words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.cli._parser import in_cli_words

from ..clirun import run_cli

TOP = "```python\nprint(tool.agent('Count the lines.', data=[0, 1], max_tokens=8_000, max_turns=1))\ndone('ok')\n```"
SUB = "```python\ndone(len(data))\n```"


def test_the_depth_error_names_the_flag():
    message = (
        "tool.agent would start a sub-run at depth 3; Limits.max_depth=2 allows 2. Do this part "
        "with tool.worker and pmap, or raise max_depth."
    )
    assert in_cli_words(message) == (
        "tool.agent would start a sub-run at depth 3; --max-depth=2 allows 2. Do this part "
        "with tool.worker and pmap, or raise --max-depth."
    )


def _files(tmp_path):
    (tmp_path / "corpus.txt").write_text("a\nb\nc\n")
    (tmp_path / "top.json").write_text(json.dumps([TOP]))
    (tmp_path / "sub.json").write_text(json.dumps([SUB]))
    return ["run", str(tmp_path / "corpus.txt"), "--goal", "Count.", "--chunk-lines", "1",
            "--planner", f"scripted:{tmp_path / 'top.json'}", "--sub-planner", f"scripted:{tmp_path / 'sub.json'}",
            "--out", str(tmp_path / "runs"), "--quiet"]


def test_sub_planner_writes_the_sub_runs_programs(tmp_path):
    code, _, err = run_cli(_files(tmp_path))
    assert code == 0, err
    (path,) = (tmp_path / "runs").glob("*/transcript.jsonl")
    t = Transcript.load(path)
    assert t.turns[0].output == "2\n"
    [sub] = t.sub_runs.values()
    assert sub.run["planner"] == "scripted:sub.json"
    assert t.limits["max_depth"] == 2


def test_max_depth_zero_takes_tool_agent_away(tmp_path):
    run_cli([*_files(tmp_path), "--max-depth", "0"])
    (path,) = (tmp_path / "runs").glob("*/transcript.jsonl")
    t = Transcript.load(path)
    assert t.limits["max_depth"] == 0
    assert t.run["tools"] == ["worker"]
    assert "there is no tool named 'agent'" in t.turns[0].error["message"]


def test_max_depth_past_its_bound_is_refused_before_the_run(tmp_path):
    code, _, err = run_cli([*_files(tmp_path), "--max-depth", "9"])
    assert code == 2
    assert "argument --max-depth: must be a whole number from 0 (no tool.agent) to 8; got '9'" in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/transcript.jsonl"))


def _without(argv, flag):
    i = argv.index(flag)
    return argv[:i] + argv[i + 2 :]


def test_sub_planner_and_max_depth_come_from_the_environment(tmp_path, monkeypatch):
    argv = _without(_files(tmp_path), "--sub-planner")
    monkeypatch.setenv("PTCRUN_SUB_PLANNER", f"scripted:{tmp_path / 'sub.json'}")
    monkeypatch.setenv("PTCRUN_MAX_DEPTH", "1")
    code, _, err = run_cli(argv)
    assert code == 0, err
    (path,) = (tmp_path / "runs").glob("*/transcript.jsonl")
    t = Transcript.load(path)
    [sub] = t.sub_runs.values()
    assert sub.run["planner"] == "scripted:sub.json"
    assert t.limits["max_depth"] == 1
    assert sub.run["tools"] == ["agent", "worker"]  # offered at depth 1 of 1 only as a refusal


def test_sub_planner_and_max_depth_come_from_the_config_file(tmp_path):
    argv = _without(_files(tmp_path), "--sub-planner")
    config = tmp_path / "ptcrun.toml"
    config.write_text(f'sub_planner = "scripted:{tmp_path / "sub.json"}"\n[limits]\nmax_depth = 3\n')
    code, _, err = run_cli([*argv, "--config", str(config)])
    assert code == 0, err
    (path,) = (tmp_path / "runs").glob("*/transcript.jsonl")
    t = Transcript.load(path)
    [sub] = t.sub_runs.values()
    assert sub.run["planner"] == "scripted:sub.json"
    assert t.limits["max_depth"] == 3


def test_the_environment_s_max_depth_is_checked_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PTCRUN_MAX_DEPTH", "9")
    code, _, err = run_cli(_files(tmp_path))
    assert code == 2
    assert ("PTCRUN_MAX_DEPTH='9' is not valid: --max-depth must be a whole number from 0 "
            "(no tool.agent) to 8; fix it or unset it.") in err


# -- exec --turn CALL/N: a sub-run's turn run again ------------------------------------------------

TWO_SUB_RUNS = """```python
a = tool.agent('Shout the chunk.', data=[1], max_tokens=30_000, max_turns=2)
b = tool.agent('Count the chunks.', [0, 2], max_tokens=8_000, max_turns=1)
done([a, b])
```"""
SHOUT_1 = "```python\nx = tool.worker(data[0], 'Upper case.')\nprint(x)\n```"
SHOUT_2 = "```python\ndone(x + '!')\n```"
COUNT = "```python\nprint(len(data), data[:])\ndone(len(data))\n```"


@pytest.fixture
def sub_run_transcript(tmp_path):
    (tmp_path / "corpus.txt").write_text("a\nb\nc\n")
    (tmp_path / "top.json").write_text(json.dumps([TWO_SUB_RUNS]))
    (tmp_path / "sub.json").write_text(json.dumps([SHOUT_1, SHOUT_2, COUNT]))
    (tmp_path / "worker.json").write_text(json.dumps(["B"]))
    code, out, err = run_cli([
        "run", str(tmp_path / "corpus.txt"), "--goal", "Look.", "--chunk-lines", "1",
        "--planner", f"scripted:{tmp_path / 'top.json'}", "--sub-planner", f"scripted:{tmp_path / 'sub.json'}",
        "--worker", f"scripted:{tmp_path / 'worker.json'}", "--out", str(tmp_path / "runs"), "--json", "--quiet",
    ])
    assert code == 0, err
    assert json.loads(out)["answer"] == ["B!", 2]
    return json.loads(out)["transcript"]


def test_exec_turn_runs_a_sub_run_s_turn_on_the_chunks_its_call_gave_it(sub_run_transcript):
    code, out, err = run_cli(["exec", sub_run_transcript, "--turn", "t1.c2/1"])
    assert code == 0, err
    assert out == "2 ('a\\n', 'c\\n')\ndone: 2\n"
    assert "turn t1.c2/1: the same output and outcome as the recorded run" in err


def test_exec_turn_runs_a_sub_run_s_earlier_turns_first_with_its_own_recorded_calls(sub_run_transcript):
    code, out, err = run_cli(["exec", sub_run_transcript, "--turn", "t1.c1/2"])
    assert code == 0, err
    assert out == 'done: "B!"\n'  # x was set by turn 1, whose worker call was replayed
    assert "turn t1.c1/2: the same output and outcome as the recorded run (1 tool calls replayed, 0 live)" in err


def test_exec_turn_names_the_sub_runs_when_the_call_started_none(sub_run_transcript):
    code, _, err = run_cli(["exec", sub_run_transcript, "--turn", "t1.c9/1"])
    assert code == 2
    assert ("the run has no sub-run of call t1.c9; its sub-runs: t1.c1, t1.c2 (`ptcrun show` "
            "lists them).") in err
    code, _, err = run_cli(["exec", sub_run_transcript, "--turn", "t1.c2/4"])
    assert "the run has no turn 4; it has 1 turn (1 to 1)." in err


@pytest.mark.parametrize("given", ["t1.c2/", "t1.c2/0", "/1", "t1.c2//1", "two"])
def test_exec_turn_refuses_an_address_it_cannot_read(sub_run_transcript, given):
    code, _, err = run_cli(["exec", sub_run_transcript, "--turn", given])
    assert code == 2
    assert "must be a turn number N, or CALL/N for turn N of the sub-run a tool.agent call started" in err


def test_exec_turn_refuses_a_sub_run_whose_chunks_changed(sub_run_transcript, tmp_path):
    path = Path(sub_run_transcript)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        if event["type"] == "call.start" and event["span"] == "t1.c2":
            event["args"] = ["Count the chunks.", [0, 1]]  # as if the call had chosen other chunks
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    code, _, err = run_cli(["exec", sub_run_transcript, "--turn", "t1.c2/1"])
    assert code == 2
    assert "the chunks the call t1.c2 gave its sub-run differ from the ones it recorded" in err


def test_show_turn_shows_a_sub_run_s_turn(sub_run_transcript):
    code, out, err = run_cli(["show", sub_run_transcript, "--turn", "t1.c1/2"])
    assert code == 0, err
    head, goal = out.splitlines()[:2]
    assert head.startswith(f"a sub-run (depth 1) of run {Path(sub_run_transcript).parent.name}: done · 2 turns · ")
    assert goal == "goal: Shout the chunk."
    assert "── turn 2 ── done" in out and "done(x + '!')" in out and "── turn 1 ──" not in out
    code, _, err = run_cli(["show", sub_run_transcript, "--turn", "t2.c1/1"])
    assert code == 2 and "the run has no sub-run of call t2.c1; its sub-runs: t1.c1, t1.c2" in err
