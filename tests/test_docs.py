"""Drift guards: the docs and prompts say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from ptcrun import errors
from ptcrun._limits import Limits
from ptcrun.prompts._render import error_hint, render, template_names

ROOT = Path(__file__).resolve().parents[1]


def _limits_table(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", path.read_text(), flags=re.M))


@pytest.mark.parametrize("doc", ["docs/limits.md", "README.md"])
def test_limits_tables_list_every_setting_with_its_default(doc):
    table = _limits_table(ROOT / doc)
    fields = {f.name: f.default for f in attrs.fields(Limits)}
    assert list(table) == list(fields)
    for name, default in fields.items():
        assert eval(table[name]) == default, name  # the docs write defaults as Python literals


def test_every_error_class_has_a_hint_for_the_planner():
    classes = [getattr(errors, name) for name in errors.__all__]
    assert classes
    for cls in classes:
        assert error_hint(cls.__name__), f"prompts/errors.md has no section for {cls.__name__}"


def test_every_prompt_template_renders_with_its_values():
    values = {
        "planner_system": {"allowed_modules": "re"},
        "planner_first": {"goal": "g", "inventory": "i", "tools": "t", "budget": "b", "schema_note": ""},
        "turn_feedback": {"note": "", "turn": 1, "output": "o", "error": "", "next_turn": 2, "max_turns": 3, "budget": "b"},
        "no_code": {"count": 0, "next_turn": 2, "max_turns": 3, "budget": "b"},
        "schema_failed": {"problem": "p", "next_turn": 2, "max_turns": 3, "budget": "b"},
        "worker_system": {},
        "worker_request": {"instruction": "i", "text": "t", "schema_note": ""},
        "worker_schema_note": {"schema": "{}"},
        "worker_repair": {"problem": "p"},
        "errors": {},
    }
    assert sorted(values) == template_names()
    for name, given in values.items():
        text = render(name, **given)
        assert "$" not in text.replace("$$", ""), name


def test_readme_python_example_runs(tmp_path):
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^````python\n(.*?)^````", text, flags=re.M | re.S)
    assert blocks, "the README lost its Python example"
    for code in blocks:
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "done {'Acme': 'gold', 'Globex': 'silver'}" in run.stdout


def test_readme_has_exactly_three_commands_near_the_top():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Three commands", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^```\n(.*?)^```", section, flags=re.M | re.S)[0].strip().splitlines()
    assert commands == ["pip install -e '.[dev]'", "python examples/log_audit/run.py", "pytest -q"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest -q" in ci and "pip install" in ci and "-e '.[dev]'" in ci
