"""Attacks on the host's state and secrets, through the real sandbox child."""

from __future__ import annotations

import pytest

from ptcrun.sandbox import Sandbox

from .conftest import limits

CHUNKS = ["first chunk", "second chunk"]


@pytest.mark.parametrize(
    "attack",
    [
        "data[0] = 'owned'",
        "data.append('owned')",
        "del data[0]",
        "data.clear()",
        "data[0] += 'owned'",
    ],
)
async def test_data_cannot_be_mutated(attack):
    original = list(CHUNKS)
    async with Sandbox(data=original, limits=limits()) as sandbox:
        attacked = await sandbox.execute(attack)
        after = await sandbox.execute("done(list(data))")
    assert attacked.status == "error"
    assert attacked.error.kind in ("TypeError", "AttributeError")
    assert after.answer == CHUNKS
    assert original == CHUNKS


async def test_rebinding_data_changes_only_the_programs_own_name():
    async with Sandbox(data=CHUNKS, limits=limits()) as sandbox:
        await sandbox.execute("data = data + ('extra',)")
        result = await sandbox.execute("done(len(data))")
    assert result.answer == 3  # the program's own variable; the host's corpus is untouched


@pytest.mark.parametrize(
    "attack",
    [
        "tool.worker = lambda *a: 'fake'",
        "del tool.lookup",
        "budget.remaining = 10 ** 9",
        "budget.remaining += 1",
        "budget.remaining.tokens = 10 ** 9",
        "setattr(budget, 'remaining', 1)",
    ],
)
async def test_tool_and_budget_are_read_only(attack):
    def lookup(name: str) -> str:
        return name

    async with Sandbox(tools=[lookup], limits=limits(), budget=lambda: {"tokens": 5}) as sandbox:
        attacked = await sandbox.execute(attack)
        after = await sandbox.execute("done([tool.lookup('a'), budget.remaining.tokens])")
    assert attacked.status == "error"
    assert after.answer == ["a", 5]


async def test_host_environment_is_not_readable(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-do-not-leak")
    # Language layer off: the program may import os, and must still find no secret.
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        result = await sandbox.execute("import os\ndone(dict(os.environ))")
    assert result.status == "done"
    assert "ANTHROPIC_API_KEY" not in result.answer
    assert "sk-secret-do-not-leak" not in repr(result.answer)


async def test_host_environment_is_not_reachable_through_the_language_layer():
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute("import os")
    assert result.error.kind == "ImportError"
    assert "allowed" in result.error.message


async def test_tool_arguments_must_be_json_data():
    def echo(x: str) -> str:
        return x

    async with Sandbox(tools=[echo], limits=limits()) as sandbox:
        result = await sandbox.execute("tool.echo(object)")
    assert result.error.kind == "NotJSON"  # a ValueError: ptcrun's one JSON rule refused it
    assert "argument 0 of tool.echo is a value of type type, which JSON cannot carry" in result.error.message
