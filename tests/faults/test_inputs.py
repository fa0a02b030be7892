"""Bad input: a ConfigError (exit code 2) that names the argument and the fix, before anything runs.

Nothing is written for a refused run: no run folder, no transcript with only ``run.start``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptcrun import Limits, Runtime, ScriptedProvider
from ptcrun.cli import EXIT_CODES
from ptcrun.errors import ConfigError

from ..clirun import run_cli
from .conftest import block


def lookup(order_id: str) -> str:
    """Look an order up."""
    return order_id


def planner() -> ScriptedProvider:
    return ScriptedProvider([block("done(len(data))")])


# (what is wrong, Runtime arguments, run() arguments, the message: argument named, then the fix)
RUN_CASES = [
    ("data None", {}, {"data": None}, r"^data is None; pass the corpus as a list of chunk strings"),
    ("data a generator", {}, {"data": (c for c in ["a"])}, r"^data is a generator, not a list: .*Pass list\(\.\.\.\) of it\."),
    ("data a set", {}, {"data": {"a", "b"}}, r"^data is a set, not a list: .*Pass list\(\.\.\.\)"),
    ("data one str", {}, {"data": "all my text"}, r"^data is one str; pass a list of chunk strings"),
    ("data bytes chunk", {}, {"data": ["ok", b"raw"]}, r"^data\[1\] is bytes; decode it to str first"),
    ("data int chunk", {}, {"data": ["ok", 3]}, r"^data\[1\] is int; every chunk must be a str\."),
    ("data lone surrogate", {}, {"data": ["ok", "caf\udce9"]},
     r"^data\[1\] holds a lone surrogate \(U\+DCE9\) at offset 3, .*decode the source with errors='replace'"),
    ("data empty", {}, {"data": []}, r"^data holds no text, .*billed for nothing; pass at least one chunk of text"),
    ("data only empty chunks", {}, {"data": ["", ""]}, r"^data holds no text"),
    ("data empty mapping", {}, {"data": {}}, r"^data holds no datasets"),
    ("data mapping int key", {}, {"data": {1: ["a"]}}, r"^data names must be str; got 1 \(int\)\. Name each dataset with a str key"),
    ("data mapping str chunks", {}, {"data": {"logs": "text"}}, r"^data\['logs'\] is one str; pass a list"),
    ("data mapping chunk", {}, {"data": {"logs": ["a", None]}}, r"^data\['logs'\]\[1\] is NoneType; every chunk must be a str"),
    ("goal None", {}, {"goal": None}, r"^goal must be a non-empty str; got NoneType\. Pass a sentence"),
    ("goal empty", {}, {"goal": "  "}, r"^goal must be a non-empty str; got an empty str\."),
    ("goal bytes", {}, {"goal": b"find"}, r"^goal must be a non-empty str; got bytes\."),
    ("goal surrogate", {}, {"goal": "find \ud800"}, r"^goal holds a lone surrogate \(U\+D800\)"),
    ("schema text", {}, {"schema": '{"type": "object"}'}, r"^schema is a str; pass a JSON Schema as a dict \(json\.loads it first\)"),
    ("schema number", {}, {"schema": 5}, r"^schema 5 cannot be checked: .* Use str, int"),
    ("schema invalid", {}, {"schema": {"type": "bogus"}}, r"^schema is not a valid JSON Schema"),
]

RUNTIME_CASES = [
    ("planner None", {"planner": None}, r"^planner is None; pass the provider that writes the programs"),
    ("planner a str", {"planner": "anthropic:claude"}, r"^planner must be a provider .* Use e\.g\."),
    ("worker a function", {"worker": print}, r"^worker must be a provider"),
    ("tools an int", {"tools": 5}, r"^tools must be a list or a dict of functions; got one int\. Pass tools="),
    ("tools one function", {"tools": lookup}, r"^tools must be a list or a dict of functions; got one function\. Pass tools=\[lookup\]"),
    ("tools holding an int", {"tools": [5]}, r"^tools must be functions; item 0 is 5 \(int\)\. Pass a function"),
    ("tools a class", {"tools": [Limits]}, r"tool 'Limits' is a class; register a function"),
    ("limits a dict", {"limits": {"max_turns": 2}}, r"^limits must be a ptcrun\.Limits; got dict\."),
    ("transcript_dir an int", {"transcript_dir": 5}, r"^transcript_dir must be a folder path \(str or os\.PathLike\) or None; got int\. Pass"),
    ("observers one function", {"observers": print}, r"^observers must be a list of functions; got one builtin_function_or_method\. Pass observers=\[\.\.\.\]"),
    ("observers holding an int", {"observers": [1]}, r"^observers\[0\] is int, not a function; pass functions"),
]


@pytest.mark.parametrize(("case", "rt_args", "run_args", "message"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_run_arguments_are_config_errors_before_anything_runs(tmp_path, case, rt_args, run_args, message):
    provider = planner()
    rt = Runtime(planner=provider, transcript_dir=tmp_path / "runs", **rt_args)
    arguments = {"goal": "Count the chunks.", "data": ["a chunk"], **run_args}
    with pytest.raises(ConfigError) as caught:
        rt.run(arguments.pop("goal"), arguments.pop("data"), **arguments)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert not (tmp_path / "runs").exists()  # no run folder, no transcript with only run.start
    assert provider.requests == []  # nothing was billed


@pytest.mark.parametrize(("case", "rt_args", "message"), RUNTIME_CASES, ids=[c[0] for c in RUNTIME_CASES])
def test_bad_runtime_arguments_are_config_errors(tmp_path, case, rt_args, message):
    arguments = {"planner": planner(), "transcript_dir": tmp_path, **rt_args}
    with pytest.raises(ConfigError) as caught:
        Runtime(**arguments)
    assert re.search(message, str(caught.value)), str(caught.value)


def test_worker_none_uses_the_planner_for_tool_worker(tmp_path):
    provider = ScriptedProvider([block("done(tool.worker(data[0], 'Say it.'))"), "echo"])
    result = Runtime(planner=provider, worker=None, transcript_dir=tmp_path).run("Anything.", ["a chunk"])
    assert result.status == "done" and result.answer == "echo"


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_files(tmp_path) -> dict[str, Path]:
    (tmp_path / "c.log").write_text("ERROR one\nINFO two\n")
    (tmp_path / "planner.json").write_text(json.dumps([block("done(len(data))")]))
    (tmp_path / "folder").mkdir()
    (tmp_path / "latin1.json").write_bytes('{"description": "caf\u00e9"}'.encode("latin-1"))
    (tmp_path / "broken.json").write_text('{"type": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bogus.json").write_text('{"type": "bogus"}')
    return {"corpus": tmp_path / "c.log", "planner": tmp_path / "planner.json", "root": tmp_path}


SCHEMA_CASES = [
    ("missing.json", r"--schema '.*missing\.json' does not exist; pass the path of a JSON Schema file\."),
    ("folder", r"--schema '.*folder' is a directory, not a file; pass the path of a JSON Schema file\."),
    ("latin1.json", r"--schema '.*latin1\.json' is not UTF-8 text: byte 0xe9 at byte offset 20; save it as UTF-8 JSON\."),
    ("broken.json", r"--schema '.*broken\.json' is not valid JSON: Expecting value at line 1, column 10; fix the file\."),
    ("list.json", r"--schema '.*list\.json' holds a JSON list, not an object; a JSON Schema is an object"),
    ("bogus.json", r"--schema '.*bogus\.json': schema is not a valid JSON Schema: .*; fix the file\."),
]


@pytest.mark.parametrize(("name", "message"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_a_schema_file_that_cannot_be_used_is_a_config_error(cli_files, name, message):
    out = cli_files["root"] / "runs"
    code, _, err = run_cli([
        "run", str(cli_files["corpus"]), "--goal", "g", "--planner", f"scripted:{cli_files['planner']}",
        "--out", str(out), "--schema", str(cli_files["root"] / name),
    ])
    assert code == EXIT_CODES["config"]
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not list(out.glob("*/transcript.jsonl"))  # refused before the run


@pytest.fixture
def transcript(cli_files) -> Path:
    code, out, err = run_cli([
        "run", str(cli_files["corpus"]), "--goal", "g", "--planner", f"scripted:{cli_files['planner']}",
        "--out", str(cli_files["root"] / "runs"), "--quiet",
    ])
    assert code == 0, err
    return Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))


@pytest.mark.parametrize(("command", "name"), [("view", "timeline.html"), ("export", "trace.chrome.json")])
def test_view_and_export_make_a_missing_output_folder_or_write_into_a_folder(transcript, tmp_path, command, name):
    target = tmp_path / "new" / "deeper" / f"out-{name}"
    code, out, _ = run_cli([command, str(transcript), "-o", str(target)])
    assert code == EXIT_CODES["done"] and out.strip() == str(target) and target.stat().st_size > 0
    folder = tmp_path / "existing"
    folder.mkdir()
    code, out, _ = run_cli([command, str(transcript), "-o", str(folder)])
    assert code == EXIT_CODES["done"] and out.strip() == str(folder / name) and (folder / name).exists()


@pytest.mark.parametrize("command", ["view", "export"])
def test_view_and_export_into_a_path_that_cannot_be_written_are_config_errors(transcript, tmp_path, command):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli([command, str(transcript), "-o", str(tmp_path / "afile" / "out.html")])
    assert code == EXIT_CODES["config"]
    assert "(-o " in err and "a file is in the way" in err and "pass -o a file path in a folder you can write to" in err
    assert "Traceback" not in err
