"""Every error message in ptcrun that names a setting names, in the CLI's words, a flag the CLI has.

The messages are found by reading the package's source, not from a list: every string literal and
f-string outside docstrings is a candidate, and one names a setting when it holds ``Limits.X``, a
clock (``turn_timeout``), "raise X" / "lower X" for a ``Limits`` field, or a provider's setting
(``AnthropicProvider(timeout=...)``). The holes of an f-string are filled with every value they
may take where they stand for a setting (``Limits.{attribute.name}``, ``{clock}_timeout``,
``{cls_name}(max_retries=...)``). A new message that names a setting the CLI cannot set fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attrs
import pytest

from ptcrun import Limits
from ptcrun.cli._parser import LIMIT_FLAGS, build_parser, in_cli_words

ROOT = Path(__file__).resolve().parents[2] / "ptcrun"
FIELDS = {f.name for f in attrs.fields(Limits)}
CLOCKS = ("call", "pmap", "turn", "run")
PROVIDER_SETTINGS = ("timeout", "max_retries", "max_retry_wait", "api_key", "base_url")
PROVIDERS = ("AnthropicProvider", "OpenAICompatProvider")
HOLE = "\x00"

_NAMES_A_SETTING = re.compile(
    r"\bLimits\.\w"
    rf"|\b(?:{'|'.join(f'{c}_timeout' for c in CLOCKS)})\b"
    rf"|\b(?:[Rr]aise|[Ll]ower) (?:{'|'.join(sorted(FIELDS, key=len, reverse=True))})\b(?<!ower max_tokens)"
    rf"|\w*Provider\((?:{'|'.join(PROVIDER_SETTINGS)})="
)


def _flags(parser) -> set[str]:
    flags = {flag for action in parser._actions for flag in action.option_strings}
    for action in parser._actions:
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                flags |= _flags(action.choices[sub])
    return flags


def _subcommand_flags(name: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(getattr(a, "choices", None), dict))
    return {flag for action in sub.choices[name]._actions for flag in action.option_strings}


ALL_FLAGS = _flags(build_parser())


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) or "" if isinstance(v, ast.Constant) else HOLE for v in node.values)
    return None


def source_strings() -> list[tuple[str, str]]:
    """``(where, text)`` for every string literal and f-string in the package but docstrings."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                skip |= {id(v) for v in node.values}
        for node in ast.walk(tree):
            text = _text(node)
            if text is not None and id(node) not in skip:
                found.append((f"{path.relative_to(ROOT.parent)}:{node.lineno}", text))
    return found


def variants(text: str) -> list[str]:
    """The texts an f-string can become where its holes stand for a setting; other holes are 7."""
    texts = [text]
    for hole, values in (
        (f"{HOLE}_timeout", [f"{clock}_timeout" for clock in CLOCKS]),
        (f"Limits.{HOLE}", [f"Limits.{field}" for field in sorted(FIELDS)]),
        (f"{HOLE}(", [f"{provider}(" for provider in PROVIDERS]),
    ):
        while any(hole in t for t in texts):
            texts = list(dict.fromkeys(t.replace(hole, v, 1) if hole in t else t for t in texts for v in values))
    return [t.replace(HOLE, "7") for t in texts]


MESSAGES = [
    (where, variant)
    for where, text in source_strings()
    for variant in variants(text)
    if _NAMES_A_SETTING.search(variant)
]


def test_the_scan_finds_the_messages_it_must():
    """Without this, a scan that found nothing would pass every test below."""
    texts = [text for _, text in MESSAGES]
    assert any("is longer than pmap_timeout=7, so it could never fire" in t for t in texts)  # Limits
    assert any(t.startswith("Limits.sandbox_threads must be a positive whole number") for t in texts)
    assert any("export it or pass AnthropicProvider(api_key=...)" in t for t in texts)  # a provider
    assert any("OpenAICompatProvider(max_retry_wait=...) must be seconds" in t for t in texts)
    assert any("Raise worker_max_tokens." in t for t in texts)  # the worker tool
    assert any("(Limits.turn_timeout)" in t for t in texts)  # errors.py's clock messages
    assert len({where for where, _ in MESSAGES}) >= 20


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_limits_field_a_message_may_name_has_a_flag_on_run_and_exec(field):
    assert field in LIMIT_FLAGS
    flag = LIMIT_FLAGS[field][0]
    assert flag in _subcommand_flags("run") and flag in _subcommand_flags("exec")


@pytest.mark.parametrize(("where", "message"), MESSAGES, ids=[f"{w}#{i}" for i, (w, _) in enumerate(MESSAGES)])
def test_a_message_that_names_a_setting_names_a_real_flag_in_cli_words(where, message):
    cli = in_cli_words(message)
    assert "Limits." not in cli, f"{where}: {cli}"
    assert not re.search(rf"\w*Provider\((?:{'|'.join(PROVIDER_SETTINGS)})=", cli), f"{where}: {cli}"
    # "lower max_tokens" names a call's own max_tokens= argument: lowering the budget is no fix.
    assert not re.search(rf"\b(?:[Rr]aise|[Ll]ower) (?:{'|'.join(FIELDS)})\b(?<!ower max_tokens)", cli), (
        f"{where}: {cli}")
    assert not re.search(rf"\b(?:{'|'.join(c + '_timeout' for c in CLOCKS)})\b", cli), f"{where}: {cli}"
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", cli):
        assert flag in ALL_FLAGS, f"{where}: {flag} is not a flag of ptcrun: {cli}"
    # The message keeps saying the same thing: only the setting's spelling changed.
    if not re.search(r"\w*Provider\((?:api_key|base_url)=", message):
        assert re.sub(r"--[a-z-]+", "X", cli).count("X") >= 1, f"{where}: {cli}"


def test_the_python_api_keeps_the_limits_field_names():
    """The same messages reach a Python user as they are written: in Limits' own words."""
    with pytest.raises(Exception, match=r"Limits\.max_concurrency must be a positive whole number; got 0\."):
        Limits(max_concurrency=0)
