"""docs/cli.md keeps up with the parser: every flag is documented, and the settings table gives
each setting's flag, variable and config key as the code reads them."""

from __future__ import annotations

import re
from pathlib import Path

from ptcrun.cli._parser import build_parser
from ptcrun.cli._settings import SETTINGS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def _all_flags() -> set[str]:
    parser = build_parser()
    flags = {f for a in parser._actions for f in a.option_strings}
    for action in parser._actions:
        if isinstance(getattr(action, "choices", None), dict):
            for sub in action.choices.values():
                flags |= {f for a in sub._actions for f in a.option_strings}
    return flags - {"-h", "--help"}


def test_every_flag_of_every_command_is_documented():
    missing = sorted(flag for flag in _all_flags() if not re.search(rf"`[^`]*{re.escape(flag)}\b", DOC))
    assert not missing, f"docs/cli.md does not mention {missing}"


def test_the_settings_table_is_the_codes():
    rows = re.findall(r"^\| `(--[a-z-]+) [A-Z]+` \| `(PTCRUN_\w+)` \| `([^`]+)` \|", DOC, flags=re.MULTILINE)
    assert rows == [(s.flag, s.env, s.where) for s in SETTINGS]


def test_the_comparison_with_llm_and_the_sdk_is_kept():
    table = DOC.split("## Beside `llm` and the `anthropic` SDK", 1)[1]
    for row in ("API keys", "environment variables", "config file", "listing them", "the latest",
                "output formats", "version"):
        assert f"\n| {row} |" in table


def _shape(text: str) -> list[str]:
    """The lines of a view with every number, duration and run id masked and spaces collapsed,
    in sorted order: what stays the same from one run of the same program to the next."""
    text = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{6}", "RUN", text)
    text = re.sub(r"\d[\d,.]*( ms| s)?", "N", text)
    return sorted(" ".join(line.split()) for line in text.splitlines())


def test_the_show_calls_sample_is_what_show_prints_today(tmp_path):
    from ..clirun import run_cli
    from ..transcript.example_runs import example_run

    _, transcript = example_run(tmp_path)
    code, out, err = run_cli(["show", str(transcript.path), "--turn", "2", "--calls"])
    assert code == 0, err
    sample = (Path(__file__).resolve().parents[2] / "docs" / "show-calls-example.txt").read_text()
    assert _shape(sample) == _shape(out), "re-run the command the sample's paragraph in docs/cli.md names"


def _documented_commands() -> list[tuple[str, str]]:
    """``(doc, command)`` for each whole ``ptcrun`` command line in a code block of the README and
    docs/ (a synopsis with ``[...]`` or ``(a | b)`` is not one), cut before its comment column."""
    root = Path(__file__).resolve().parents[2]
    found = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        fence = None  # the fence of the code block we are in: ``` or ````
        for raw in doc.read_text(encoding="utf-8").splitlines():
            if raw.startswith("```"):
                mark = re.match(r"`+", raw).group(0)
                fence = mark if fence is None else (None if mark == fence else fence)
                continue
            if fence is not None:
                line = re.sub(r"^(\$ |opentelemetry-instrument )", "", raw.strip())
                command = re.split(r"\s{2,}| \| | \\$", line)[0].strip()
                if not command.startswith("ptcrun ") or re.search(r"[\[\](|]|\.\.\.", command):
                    continue
                if command.split()[1].endswith(":"):  # an error message the command printed
                    continue
                found.append((doc.name, command))
    return found


def test_every_command_the_docs_give_is_one_the_parser_takes():
    import shlex

    commands = _documented_commands()
    assert len(commands) >= 10
    refused = []
    for doc, command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit:
            refused.append(f"{doc}: {command}")
    assert not refused, refused


def test_the_exec_example_prints_what_the_doc_shows(monkeypatch):
    from ..clirun import run_cli

    example = re.search(r"```\n\$ (ptcrun exec examples/hello/\S+ [^\n]+)\n(.*?)```", DOC, flags=re.DOTALL)
    assert example is not None
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    code, out, err = run_cli(example.group(1).split()[1:])
    assert (code, out) == (0, example.group(2)), err
