"""The command line reads only whole flags, names its version, and points at the flag meant."""

from __future__ import annotations

import importlib.metadata

import pytest

from ..clirun import run_cli


def test_version_names_the_installed_release():
    code, out, _ = run_cli(["--version"])
    assert code == 0
    assert out.strip() == f"ptcrun {importlib.metadata.version('ptcrun')}"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["run", "app.log", "--goal", "g", "--plan", "scripted:p.json"], "--plan"),
        (["run", "app.log", "--goal", "g", "--concur", "4"], "--concur"),
        (["exec", "p.py", "--dat", "app.log"], "--dat"),
    ],
)
def test_an_abbreviated_flag_is_refused_not_guessed(argv, flag):
    code, _, err = run_cli(argv)
    assert code == 2
    assert f"unrecognized arguments: {flag}" in err


@pytest.mark.parametrize(
    ("argv", "command", "meant"),
    [
        (["run", "app.log", "--goal", "g", "--planer", "scripted:p.json"], "run", "--planner"),
        (["show", "t.jsonl", "--turns", "2"], "show", "--turn"),
        (["export", "t.jsonl", "--formatt", "chrome"], "export", "--format"),
    ],
)
def test_a_mistyped_flag_gets_its_subcommands_usage_and_a_suggestion(argv, command, meant):
    code, _, err = run_cli(argv)
    assert code == 2
    assert err.startswith(f"usage: ptcrun {command} ")
    assert f"did you mean {meant}?" in err


def test_an_unknown_flag_far_from_any_gets_no_suggestion():
    code, _, err = run_cli(["tree", "t.jsonl", "--zzzzzz"])
    assert code == 2
    assert err.startswith("usage: ptcrun tree ")
    assert "did you mean" not in err
