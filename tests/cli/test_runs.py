"""``ptcrun runs`` lists run folders newest first, whatever else the folder holds; ``latest`` (or
no transcript at all) names the newest run for every command that reads one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from ptcrun.cli import EXIT_CODES

from ..clirun import run_cli
from .test_cli import block, run_args, write_files


def _transcript(out: str) -> Path:
    return Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """An output folder with two runs (the second ends failed), plus a killed one and clutter."""
    folder = tmp_path_factory.mktemp("runs")
    out = folder / "runs"
    files = write_files(folder / "a", [block("print(len(data))"), block("done(len(data))")])
    code, stdout, _ = run_cli(run_args(files, out, "--quiet", "--goal", "First goal"))
    assert code == 0, stdout
    first = _transcript(stdout)
    files = write_files(folder / "b", [block("fail('nothing here')")])
    code, stdout, _ = run_cli(run_args(files, out, "--quiet", "--goal", "Second goal"))
    assert code == EXIT_CODES["failed"]
    second = _transcript(stdout)
    return {"out": out, "first": first.parent, "second": second.parent}


def test_runs_lists_newest_first_with_what_each_run_did(two_runs):
    code, out, _ = run_cli(["runs", "--out", str(two_runs["out"])])
    assert code == 0
    header, newer, older = out.splitlines()
    assert header.split() == ["id", "when", "status", "turns", "tokens", "cost", "wall", "failed", "sub-runs", "goal"]
    assert newer.startswith(two_runs["second"].name) and "failed" in newer and newer.endswith("Second goal")
    assert older.startswith(two_runs["first"].name) and " done " in older and older.endswith("First goal")


def test_runs_json_gives_one_object_per_run(two_runs):
    code, out, _ = run_cli(["runs", "--out", str(two_runs["out"]), "--json"])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [two_runs["second"].name, two_runs["first"].name]
    first = rows[1]
    assert (first["status"], first["turns"], first["goal"]) == ("done", 2, "First goal")
    assert first["tokens"] > 0 and first["seconds"] > 0 and first["cost"] is None
    assert Path(first["transcript"]).is_file()


def test_runs_limit_shows_the_newest_and_says_how_many_were_left_out(two_runs):
    code, out, _ = run_cli(["runs", "--out", str(two_runs["out"]), "--limit", "1"])
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith(two_runs["second"].name)
    assert lines[-1] == "(1 older runs not shown; --limit 0 shows all)"


def test_runs_reads_the_output_folder_from_ptcrun_out(two_runs, monkeypatch):
    monkeypatch.setenv("PTCRUN_OUT", str(two_runs["out"]))
    code, out, _ = run_cli(["runs", "--json"])
    assert code == 0 and len(out.splitlines()) == 2


def test_a_killed_run_and_foreign_folders_do_not_break_the_list(two_runs, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    # A killed run: its transcript stops after turn 1, mid-line, with no run.end.
    killed = out / "20991231T235959Z-dead00"
    killed.mkdir()
    lines = (two_runs["first"] / "transcript.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"turn.start"' in line and '"turn": 2' in line)
    (killed / "transcript.jsonl").write_text("".join(lines[:cut]) + '{"v": 1, "type": "turn.st')
    (out / "notes").mkdir()  # a folder with no transcript: not a run
    (out / "garbage").mkdir()
    (out / "garbage" / "transcript.jsonl").write_bytes(b"\xff\xfe not json\n")
    (out / "README.txt").write_text("a file, not a folder")
    code, text, _ = run_cli(["runs", "--out", str(out), "--json"])
    assert code == 0
    rows = {row["id"]: row for row in map(json.loads, text.splitlines())}
    assert set(rows) == {"20991231T235959Z-dead00", "garbage"}
    assert rows["20991231T235959Z-dead00"]["status"] == "interrupted"
    assert rows["20991231T235959Z-dead00"]["turns"] == 1
    assert rows["garbage"]["status"] == "unreadable" and rows["garbage"]["problem"]
    code, text, _ = run_cli(["runs", "--out", str(out)])
    assert code == 0 and "interrupted" in text and "unreadable" in text
    # latest skips what cannot be read, and takes the interrupted run.
    code, text, _ = run_cli(["show", "--out", str(out)])
    assert code == 0 and text.startswith("run 20991231T235959Z-dead00: interrupted")


def test_runs_of_a_folder_with_no_runs(tmp_path):
    code, out, _ = run_cli(["runs", "--out", str(tmp_path / "none")])
    assert (code, out) == (0, f"no runs in {str(tmp_path / 'none')!r}\n")


@pytest.mark.parametrize("argv", [["show"], ["show", "latest"], ["tree"], ["tree", "latest"]])
def test_latest_or_nothing_names_the_newest_run(two_runs, argv):
    code, out, _ = run_cli([*argv, "--out", str(two_runs["out"])])
    assert code == 0
    assert "Second goal" in out and "First goal" not in out


def test_latest_works_for_export_view_and_exec_turn(two_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("PTCRUN_OUT", str(two_runs["out"]))
    code, out, _ = run_cli(["export", "-o", str(tmp_path / "t.json")])
    assert code == 0 and json.loads((tmp_path / "t.json").read_text())
    code, out, _ = run_cli(["view", "latest", "-o", str(tmp_path / "v.html")])
    assert code == 0 and (tmp_path / "v.html").read_text().startswith("<!DOCTYPE html>")
    code, out, err = run_cli(["exec", "--turn", "1"])
    assert code == EXIT_CODES["failed"] and out == "failed: nothing here\n"
    assert "turn 1: the same output and outcome as the recorded run" in err


def test_a_path_named_latest_is_taken_as_a_path(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink(two_runs["first"], tmp_path / "latest")
    code, out, _ = run_cli(["show", "latest", "--out", str(two_runs["out"])])
    assert code == 0 and "goal: First goal" in out


def test_latest_with_no_runs_says_where_it_looked(tmp_path):
    code, _, err = run_cli(["show", "--out", str(tmp_path)])
    assert code == EXIT_CODES["config"]
    assert err == (f"ptcrun: there is no run in {str(tmp_path)!r} to take as the latest; pass a transcript "
                   f"or run folder, or the output folder the runs were written to.\n")


def test_show_of_a_folder_of_runs_points_at_runs_and_latest(two_runs):
    out = str(two_runs["out"])
    code, _, err = run_cli(["show", out])
    assert code == EXIT_CODES["config"]
    assert err == (f"ptcrun: {out!r} is a folder of runs, not one run; `ptcrun runs --out {out}` lists them, "
                   f"and latest --out {out} names the newest.\n")


def test_a_run_id_from_the_list_names_that_run(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["show", two_runs["first"].name, "--out", str(two_runs["out"])])
    assert code == 0 and "goal: First goal" in out


def test_a_run_whose_writer_holds_its_lock_reads_running(two_runs, tmp_path):
    from ptcrun.transcript._runs import lock_transcript

    out = tmp_path / "runs"
    going = out / "20991231T235959Z-a11ve0"
    going.mkdir(parents=True)
    lines = (two_runs["first"] / "transcript.jsonl").read_text().splitlines(keepends=True)
    (going / "transcript.jsonl").write_text("".join(lines[:3]))
    lock = lock_transcript(going / "transcript.jsonl")
    assert lock is not None
    try:
        _, text, _ = run_cli(["runs", "--out", str(out), "--json"])
        assert json.loads(text)["status"] == "running"
    finally:
        lock.close()
    _, text, _ = run_cli(["runs", "--out", str(out), "--json"])
    assert json.loads(text)["status"] == "interrupted"


def test_a_finished_run_holds_no_lock(two_runs):
    from ptcrun.transcript._runs import lock_transcript

    lock = lock_transcript(two_runs["first"] / "transcript.jsonl")
    assert lock is not None  # ptcrun run let go of it when the run ended
    lock.close()


@pytest.mark.parametrize("alive", [False, True])
def test_every_view_words_a_run_with_no_end_as_runs_does(two_runs, tmp_path, alive):
    from ptcrun.transcript._runs import lock_transcript

    out = tmp_path / "runs"
    cut = out / "20991231T235959Z-c0ffee"
    cut.mkdir(parents=True)
    lines = (two_runs["first"] / "transcript.jsonl").read_text().splitlines(keepends=True)
    (cut / "transcript.jsonl").write_text("".join(lines[:4]))
    word = "running" if alive else "interrupted"
    lock = lock_transcript(cut / "transcript.jsonl") if alive else None
    try:
        _, listed, _ = run_cli(["runs", "--out", str(out), "--json"])
        assert json.loads(listed)["status"] == word
        _, shown, _ = run_cli(["show", "--out", str(out)])
        assert shown.startswith(f"run {cut.name}: {word} · ")
        assert f"\nstatus     {word}\n" in shown
        _, tree, _ = run_cli(["tree", "--out", str(out)])
        assert tree.startswith(f"run: First goal  {word}  ")
        assert run_cli(["view", "--out", str(out)])[0] == 0
        page = (cut / "timeline.html").read_text()
        assert f'class="status {word}" id="status">{word}<' in page
        assert run_cli(["export", "--out", str(out), "--format", "chrome"])[0] == 0
        assert json.loads((cut / "trace.chrome.json").read_text())["otherData"]["status"] == word
        for text in (shown, tree, page):
            assert "incomplete" not in text
    finally:
        if lock is not None:
            lock.close()
