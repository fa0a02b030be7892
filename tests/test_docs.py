"""Drift guards: the docs and prompts say what the code does."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
from pathlib import Path

import attrs
import pytest

from ptcrun import errors
from ptcrun._limits import Limits
from ptcrun.prompts._render import error_hint, render, template_names
from ptcrun.sandbox._language import ALLOWED_MODULES

ROOT = Path(__file__).resolve().parents[1]


def _limits_table(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", path.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("doc", ["docs/limits.md", "README.md"])
def test_limits_tables_list_every_setting_with_its_default(doc):
    table = _limits_table(ROOT / doc)
    fields = {f.name: f.default for f in attrs.fields(Limits)}
    assert list(table) == list(fields)
    for name, default in fields.items():
        assert eval(table[name]) == default, name  # the docs write defaults as Python literals


def test_every_error_class_has_a_hint_for_the_planner():
    exported = [getattr(errors, name) for name in errors.__all__]
    classes = [value for value in exported if isinstance(value, type) and issubclass(value, Exception)]
    assert classes
    for cls in classes:
        assert error_hint(cls.__name__), f"prompts/errors.md has no section for {cls.__name__}"


def test_every_prompt_template_renders_with_its_values():
    values = {
        "planner_system": {"allowed_modules": "re", "agent": ""},
        "planner_agent": {},
        "planner_first": {
            "goal": "g", "inventory": "i", "tools": "t", "budget": "b", "worker_max_tokens": "1,024",
            "max_concurrency": 16, "call_timeout": 60, "pmap_timeout": 300, "schema_note": "",
            "corpus_tokens": "9", "pass_tokens": "2,000", "pass_share": "1%", "agent_note": "",
        },
        "planner_agent_budget": {"tokens": "19,866"},
        "planner_schema_note": {"schema": "{}"},
        "inventory_chunks": {"label": "data", "chunks": 3, "tokens": 9, "smallest": 1, "median": 3, "largest": 5},
        "inventory_empty": {"label": "data"},
        "inventory_datasets": {"count": 2, "names": "'a', 'b'"},
        "turn_feedback": {"note": "", "turn": 1, "output": "o", "error": "", "calls": "", "next_turn": 2, "max_turns": 3, "budget": "b"},
        "turn_calls": {"lines": "l", "why": "", "advice": ""},
        "turn_calls_pmap": {"total": 3, "nested": "", "ok": 2, "failed": 1, "kinds": " (1 ToolError)"},
        "turn_calls_nested": {},
        "turn_calls_more": {"count": 2, "total": 9, "ok": 8, "failed": 1, "kinds": " (1 ToolError)"},
        "turn_calls_loose": {"failed": 1, "kinds": " (1 ToolError)"},
        "turn_calls_caught": {"failed": 1, "kinds": " (1 ToolError)"},
        "turn_calls_sub": {"count": 1, "failed": 2, "kinds": " (2 ToolError)"},
        "turn_calls_why": {"examples": "- ToolError: bad"},
        "turn_calls_advice": {"failed": 1},
        "turn_error": {"error": "e"},
        "turn_hint": {"hint": "h"},
        "turn_note": {"note": "n"},
        "output_cut": {"cut": 1, "total": 2},
        "no_output": {},
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
    import sys

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^````python\n(.*?)^````", text, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "the README lost its Python example"
    for code in blocks:
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        assert "done {'Acme': 'gold', 'Globex': 'silver'}" in run.stdout


def _fenced_blocks(section: str) -> list[list[str]]:
    fenced = re.findall(r"^```\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    return [block.strip().splitlines() for block in fenced]


def _commands(script: Path) -> list[str]:
    """A shell script's command lines: no comments, no shell set-up."""
    lines = [line.strip() for line in script.read_text().splitlines()]
    skip = ("#", "set ", "cd ", "export ", ". ")
    return [line for line in lines if line and not line.startswith(skip)]


def test_readme_gives_two_commands_that_set_up_and_run_everything():
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands, by_hand = _fenced_blocks(section)
    assert commands == ["scripts/log-audit", "scripts/test"]
    for command in commands:
        script = ROOT / command
        assert script.is_file() and script.stat().st_mode & 0o111, f"{command} is not an executable file"
        subprocess.run(["bash", "-n", str(script)], check=True)
    # The by-hand steps are what the scripts do.
    test_script, main_job = (ROOT / "scripts" / "test").read_text(), (ROOT / "scripts" / "log-audit").read_text()
    install, run_example, checks = by_hand
    assert install == "pip install -e '.[dev]'" and "install_ptcrun '.[dev]'" in test_script
    assert run_example == "python examples/log_audit/run.py" and "examples/log_audit/run.py" in main_job
    assert checks.split(" && ") == ["mypy", "ruff check .", "lint-imports", "pytest -q"]
    assert _commands(ROOT / "scripts" / "test")[-4:] == ["mypy", "ruff check .", "lint-imports", 'pytest -q "$@"']


def test_ci_runs_exactly_the_readme_test_command():
    assert _commands(ROOT / ".ci" / "run") == ["scripts/test"]


def test_readme_lists_the_modules_a_program_may_import():
    text = (ROOT / "README.md").read_text()
    listed = re.search(r"^Imports: (.*?)\. ", text, flags=re.MULTILINE | re.DOTALL).group(1)
    assert sorted(re.findall(r"`(\w+)`", listed)) == sorted(ALLOWED_MODULES)


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        fenced = re.findall(r"^(`{3,})python\n(.*?)^\1$", text, flags=re.MULTILINE | re.DOTALL)
        blocks += [(doc.name, code) for _fence, code in fenced]
    return blocks


@pytest.mark.parametrize(("doc", "code"), _python_blocks(), ids=lambda value: value if value.endswith(".md") else "")
def test_docs_examples_import_only_public_names_that_exist(doc, code):
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ptcrun"):
            assert "._" not in f".{node.module}", f"{doc} imports the private module {node.module}"
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert alias.name in module.__all__, f"{doc}: {node.module}.{alias.name} is not public"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert "._" not in f".{alias.name}", f"{doc} imports the private module {alias.name}"
