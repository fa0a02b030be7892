"""Tools that raise anything at all: each failure stays that call's, and the run goes on.

A tool is the user's code. Whatever it raises (``SystemExit`` as argparse does, ``GeneratorExit``,
a ``BaseException`` subclass, an exception whose ``__str__`` or ``__repr__`` itself raises, an
exception group) becomes that call's failure: an error value in its pmap slot, or a ``ToolError``
the program can catch. Only trio's cancellation and ``KeyboardInterrupt`` pass through, the
latter as the interrupt it is.
"""

from __future__ import annotations

import pytest
import trio

from ptcrun import Limits, Runtime, ScriptedProvider
from ptcrun._tools import Tool, describe_exception
from ptcrun.errors import ToolError

from .conftest import assert_ends, block, events_of, finished_calls, transcript_of


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise ValueError("no text for you")


class BrokenRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class StrNotStr(Exception):
    def __str__(self):  # type: ignore[override]
        return 42  # noqa: PLE0307 - the fault under test


class BrokenBoth(Exception):
    def __str__(self) -> str:
        raise SystemExit(9)  # even a BaseException from __str__

    def __repr__(self) -> str:
        raise SystemExit(9)


class Stop(BaseException):
    """A BaseException of the user's own."""


def _raise(kind: str) -> BaseException | None:
    return {
        "system_exit": SystemExit(4),
        "system_exit_none": SystemExit(),
        "generator_exit": GeneratorExit(),
        "base_exception": Stop("custom stop"),
        "broken_str": BrokenStr(),
        "broken_repr": BrokenRepr("plain text"),
        "str_not_str": StrNotStr(),
        "broken_both": BrokenBoth(),
        "exception_group": ExceptionGroup("two failed", [ValueError("a"), KeyError("b")]),
        "base_group": BaseExceptionGroup("stopped", [SystemExit(3), ValueError("v")]),
        "huge_message": ValueError("x" * 50_000),
        "ok": None,
    }[kind]


#: What each call's error message must hold.
EXPECTED = {
    "system_exit": "failed: SystemExit: 4 (the tool called sys.exit(), as argparse does on a bad argument)",
    "system_exit_none": "failed: SystemExit (the tool called sys.exit()",
    "generator_exit": "failed: GeneratorExit",
    "base_exception": "failed: Stop: custom stop",
    "broken_str": "failed: <BrokenStr; its message could not be rendered: ValueError in its __str__>",
    "broken_repr": "failed: BrokenRepr: plain text",
    "str_not_str": "failed: <StrNotStr; its message could not be rendered: TypeError in its __str__>",
    "broken_both": "failed: <BrokenBoth; its message could not be rendered: SystemExit in its __str__>",
    "exception_group": "failed: ExceptionGroup: two failed (2 sub-exceptions): ValueError: a; KeyError: 'b'",
    "base_group": "failed: BaseExceptionGroup: stopped (2 sub-exceptions): SystemExit: 3",
    "huge_message": "... (49,000 more characters)",
}
KINDS = [*EXPECTED, "ok"]


def explode(kind: str) -> str:
    """Raise the exception named by kind."""
    exc = _raise(kind)
    if exc is not None:
        raise exc
    return "fine"


async def explode_async(kind: str) -> str:
    """Raise the exception named by kind, after a checkpoint."""
    await trio.lowlevel.checkpoint()
    return explode(kind)


PROGRAM = f"""
kinds = {KINDS!r}
results = pmap(lambda k: tool.TOOL(k), kinds)
caught = []
for k in ["system_exit", "broken_str", "base_group"]:
    try:
        tool.TOOL(k)
    except ToolError as e:
        caught.append(k)
done({{"slots": [r if isinstance(r, str) else r.kind for r in results], "caught": caught}})
"""


@pytest.mark.parametrize("fn", [explode, explode_async], ids=["sync", "async"])
def test_every_exception_a_tool_raises_is_that_calls_failure(tmp_path, fn):
    name = fn.__name__
    rt = Runtime(
        planner=ScriptedProvider([block(PROGRAM.replace("TOOL", name))]),
        tools=[fn],
        limits=Limits(max_concurrency=4),
        transcript_dir=tmp_path,
    )
    result = rt.run("Call the tool with every kind.", ["a chunk"])
    assert result.status == "done", result.error
    assert result.answer == {
        "slots": ["ToolError"] * len(EXPECTED) + ["fine"],
        "caught": ["system_exit", "broken_str", "base_group"],
    }
    events = events_of(transcript_of(tmp_path))
    assert_ends(events, "done")
    calls = finished_calls(events)
    assert len(calls) == len(KINDS) + 3  # every call that finished is in the transcript
    by_kind = {e["args"][0]: e["call"] for e in events if e["type"] == "call.start" and e["pmap"] is not None}
    for kind, expected in EXPECTED.items():
        end = calls[by_kind[kind]]
        assert not end["ok"]
        assert end["error"]["type"] == "ToolError"
        assert end["error"]["message"].startswith(f"tool {name!r} failed:")
        assert expected in end["error"]["message"], (kind, end["error"]["message"])
    assert calls[by_kind["ok"]]["value"] == "fine"


def test_a_long_message_is_cut_and_says_how_much_was_cut():
    text = describe_exception(ValueError("x" * 50_000))
    assert len(text) < 1_100
    assert text.endswith("... (49,000 more characters)")


async def test_a_tool_that_raises_keyboard_interrupt_still_interrupts():
    def ctrl_c(x: int) -> int:
        """Raise KeyboardInterrupt."""
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await Tool.from_function(ctrl_c).call([1], {})


async def test_a_cancel_scope_of_ours_still_cancels_an_async_tool():
    async def slow(x: int) -> int:
        """Wait long in a nursery of its own, as a tool may."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 30)
        return x

    with trio.move_on_after(0.05) as scope:
        await Tool.from_function(slow).call([1], {})
    assert scope.cancelled_caught  # the cancellation reached our scope, not a ToolError


async def test_a_tool_error_keeps_the_original_exception_as_its_cause():
    def leave(x: int) -> int:
        """Exit as argparse does."""
        raise SystemExit(2)

    with pytest.raises(ToolError) as caught:
        await Tool.from_function(leave).call([1], {})
    assert isinstance(caught.value.__cause__, SystemExit)


def test_a_keyboard_interrupt_in_a_pmap_of_tools_ends_the_run_as_cancelled(tmp_path):
    def ctrl_c(x: int) -> int:
        """Raise KeyboardInterrupt for one item, as a Ctrl-C landing in a tool would."""
        if x == 2:
            raise KeyboardInterrupt
        return x

    rt = Runtime(
        planner=ScriptedProvider([block("pmap(lambda i: tool.ctrl_c(i), range(4))")]),
        tools=[ctrl_c],
        transcript_dir=tmp_path,
    )
    result = rt.run("Anything.", ["a chunk"])
    assert result.status == "cancelled"
    assert result.signal is not None and result.signal.name == "SIGINT"
    assert "interrupted by SIGINT (Ctrl-C)" in str(result.error)
    last = assert_ends(events_of(transcript_of(tmp_path)), "cancelled")
    assert "SIGINT" in last["error"]["message"]
