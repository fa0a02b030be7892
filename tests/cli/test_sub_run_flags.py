"""The command line's side of sub-runs: --max-depth, --sub-planner, errors in flag words."""

from __future__ import annotations

import json

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
