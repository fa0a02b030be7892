"""``ptcrun bench``: run with --reference, list, compare, and what bad input gets."""

from __future__ import annotations

import json

from ptcrun.cli import EXIT_CODES

from ..clirun import run_cli


def _run(tmp_path, *extra, out="a.json"):
    return run_cli([
        "bench", "run", "--reference", "--size", "4k", "--out", str(tmp_path / out),
        "--transcripts", str(tmp_path / "runs"), *extra,
    ])


def test_reference_run_writes_results_and_a_table_and_exits_0(tmp_path):
    code, out, err = _run(tmp_path, "--tasks", "niah-single,niah-none", "--markdown", str(tmp_path / "t.md"))
    assert code == EXIT_CODES["done"]
    body = json.loads((tmp_path / "a.json").read_text())
    assert [t["task"] for t in body["tasks"]] == ["niah-single", "niah-none"]
    assert body["totals"]["passed"] == 2 and body["planner"] == "reference" and body["worker"] == "rules"
    first = body["tasks"][0]
    assert first["size"] == 4096 and first["turns"] == 1 and first["worker_calls"] >= 1
    assert "| niah-single | 2^12 | " in out and first["corpus_tokens"] >= 4096
    assert (tmp_path / "t.md").read_text() in out
    assert "niah-none" in err  # a line per task on standard error
    assert first["transcript"].startswith(str(tmp_path / "runs"))


def test_list_names_every_task(tmp_path):
    from ptcrun.bench import TASKS

    code, out, _ = run_cli(["bench", "list"])
    assert code == 0
    assert all(t.name in out for t in TASKS)
    code, out, _ = run_cli(["bench", "list", "--json"])
    assert [json.loads(line)["name"] for line in out.splitlines()] == [t.name for t in TASKS]


def test_compare_shows_each_task_and_what_changed(tmp_path):
    _run(tmp_path, "--tasks", "niah-single,niah-entry", out="a.json")
    body = json.loads((tmp_path / "a.json").read_text())
    body["tasks"][1]["passed"] = False
    body["tasks"][1]["score"] = 0.0
    (tmp_path / "b.json").write_text(json.dumps(body))
    code, out, _ = run_cli(["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert code == 0
    assert "| niah-entry | 2^12 | pass | fail | 1.00 → 0.00 |" in out
    assert "niah-entry (2^12): pass → fail" in out


def test_a_task_glob_that_matches_nothing_is_a_config_error(tmp_path):
    code, _, err = _run(tmp_path, "--tasks", "nope-*")
    assert code == EXIT_CODES["config"]
    assert "no task matches 'nope-*'" in err and "ptcrun bench list" in err


def test_bad_sizes_seeds_and_flag_mixes_are_refused_with_usage(tmp_path):
    for argv in (
        ["bench", "run", "--reference", "--size", "12"],
        ["bench", "run", "--reference", "--size", "lots"],
        ["bench", "run", "--reference", "--seed", "x"],
        ["bench", "run", "--reference", "--planner", "anthropic:claude-haiku-4-5"],
        ["bench", "run", "--reference", "--concurency", "3"],
        ["bench", "compare", "only-one.json"],
    ):
        code, _, err = run_cli(argv)
        assert code == EXIT_CODES["config"], argv
        assert "usage: ptcrun bench" in err, argv
    _, _, err = run_cli(["bench", "run", "--reference", "--size", "12"])
    assert "sizes are tokens, at least 1k" in err
    _, _, err = run_cli(["bench", "run", "--reference", "--concurency", "3"])
    assert "usage: ptcrun bench run" in err and "did you mean --concurrency?" in err


def test_compare_refuses_files_that_are_not_results(tmp_path):
    (tmp_path / "x.json").write_text('{"status": "done"}')
    (tmp_path / "y.json").write_text("not json")
    for a in ("missing.json", "x.json", "y.json"):
        code, _, err = run_cli(["bench", "compare", str(tmp_path / a), str(tmp_path / "x.json")])
        assert code == EXIT_CODES["config"]
        assert "ptcrun bench run --out FILE" in err


def test_out_that_is_a_folder_is_refused_before_any_task_runs(tmp_path):
    code, _, err = run_cli(["bench", "run", "--reference", "--out", str(tmp_path), "--transcripts", str(tmp_path / "r")])
    assert code == EXIT_CODES["config"]
    assert "is a folder" in err
    assert not (tmp_path / "r").exists()


def test_a_run_against_an_openai_compatible_server_with_the_rule_based_workers(tmp_path):
    from ptcrun.bench import TASKS

    from ..runtime.providers.fakeservers import FakeServer, openai_completion

    case = next(t for t in TASKS if t.name == "niah-single").build(3, 4096)
    reply = f"```python\n{case.reference[0]}\n```"
    with FakeServer() as server:
        server.queue(openai_completion("Let me look.\n```python\nprint(len(data))\n```", prompt_tokens=900,
                                       completion_tokens=20))
        server.always(openai_completion(reply, prompt_tokens=1200, completion_tokens=300))
        code, out, err = run_cli([
            "bench", "run", "--planner", f"openai:local-coder@{server.url}/v1", "--worker", "rules",
            "--tasks", "niah-single", "--size", "4k", "--seed", "3", "--out", str(tmp_path / "r.json"),
            "--transcripts", str(tmp_path / "runs"),
        ])
        planner_requests = [r for r in server.received if r.path.endswith("/chat/completions")]
    assert code == EXIT_CODES["done"], err
    (task,) = json.loads((tmp_path / "r.json").read_text())["tasks"]
    body = json.loads((tmp_path / "r.json").read_text())
    assert (body["planner"], body["worker"]) == ("openai:local-coder", "rules")
    assert task["passed"] and task["turns"] == 2 and task["attempts"] == 0
    assert (task["planner_input_tokens"], task["planner_output_tokens"]) == (2100, 320)
    assert task["worker_calls"] >= 1 and len(planner_requests) == 2
    assert "| niah-single | 2^12 |" in out


def test_a_suite_with_a_failed_task_exits_1_and_says_why(tmp_path):
    script = tmp_path / "planner.json"
    script.write_text(json.dumps(["```python\ndone('0000-0000')\n```"]))
    code, out, err = run_cli([
        "bench", "run", "--planner", f"scripted:{script}", "--worker", "rules", "--tasks", "niah-single",
        "--size", "4k", "--out", str(tmp_path / "r.json"), "--transcripts", str(tmp_path / "runs"),
    ])
    assert code == EXIT_CODES["failed"] == 1
    assert "**fail** (done)" in out and "code '0000-0000', expected" in out
    assert "FAIL (done: code '0000-0000'" in err
    assert json.loads((tmp_path / "r.json").read_text())["totals"]["passed"] == 0


def test_run_settings_from_the_environment_do_not_reach_a_suite(tmp_path, monkeypatch):
    # PTCRUN_OUT names a folder of runs: it must not become the suite's results file.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PTCRUN_OUT", str(tmp_path))
    code, _, err = run_cli(["bench", "run", "--reference", "--size", "4k", "--tasks", "niah-single",
                            "--transcripts", str(tmp_path / "runs")])
    assert code == EXIT_CODES["done"], err
    [results] = (tmp_path / "runs").glob("bench-*.json")
    assert json.loads(results.read_text())["planner"] == "reference"
