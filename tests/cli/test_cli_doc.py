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
