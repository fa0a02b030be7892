"""The Sandbox as users drive it: persistence, results, errors, tools, budget, events."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import trio

from ptcrun import errors
from ptcrun.sandbox import Sandbox, execute

from .conftest import limits


async def test_top_level_names_persist_between_programs():
    async with Sandbox(limits=limits()) as sandbox:
        first = await sandbox.execute("counts = {'a': 1}\ndef bump(k):\n    counts[k] = counts.get(k, 0) + 1")
        second = await sandbox.execute("bump('a'); bump('b')\ndone(counts)")
    assert first.status == "ok"
    assert second.answer == {"a": 2, "b": 1}


async def test_print_output_is_captured_in_order_including_helpers():
    program = """
def show(x):
    print('item', x)
print('start')
for i in range(3):
    show(i)
print('a', 'b', sep='-', end='!\\n')
"""
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.output == "start\nitem 0\nitem 1\nitem 2\na-b!\n"


async def test_runtime_error_is_structured_with_line_and_source():
    program = "x = 1\ny = [1, 2]\nz = y[5]\n"
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "error"
    assert result.error.kind == "IndexError"
    assert result.error.line == 3
    assert result.error.source_line == "z = y[5]"
    assert "Traceback" not in str(result.error)
    assert str(result.error) == "line 3: IndexError: list index out of range\n    z = y[5]"


async def test_error_inside_a_helper_points_at_the_failing_line():
    program = "def f(d):\n    return d['missing']\n\nf({})\n"
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.error.kind == "KeyError"
    assert result.error.line == 2


async def test_syntax_error_is_structured():
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute("x = 1\nif x\n    print(x)\n")
    assert result.status == "error"
    assert result.error.kind == "SyntaxError"
    assert result.error.line == 2


async def test_done_inside_try_except_exception_still_ends_the_program():
    program = """
try:
    done({'ok': True})
except Exception as e:
    print('caught', e)
print('after')
"""
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done"
    assert result.answer == {"ok": True}
    assert result.output == ""


async def test_fail_ends_the_program_with_its_reason():
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute("fail('the corpus has no dates')\nprint('never')")
    assert result.status == "failed"
    assert result.answer == "the corpus has no dates"


async def test_done_converts_tuples_sets_and_counters_to_json():
    program = "from collections import Counter\ndone({'t': (1, 2), 's': {3, 1}, 'c': Counter('aab')})"
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.answer == {"t": [1, 2], "s": [1, 3], "c": {"a": 2, "b": 1}}


async def test_tool_is_called_with_validated_arguments():
    def lookup(name: str, limit: int = 2) -> list:
        """Find people by name."""
        return [name] * limit

    async with Sandbox(tools=[lookup], limits=limits()) as sandbox:
        ok = await sandbox.execute("done(tool.lookup('ann', limit=3))")
        bad = await sandbox.execute("tool.lookup(17)")
    assert ok.answer == ["ann", "ann", "ann"]
    assert bad.error.kind == "ToolArgumentError"
    assert "tool 'lookup' takes (name: str, limit: int = 2); got name=17 (int)" in bad.error.message


async def test_tool_that_raises_gives_a_catchable_error_naming_the_tool():
    def explode() -> str:
        raise LookupError("database is down")

    program = """
try:
    tool.explode()
except ToolError as e:
    done([e.tool, str(e)])
"""
    async with Sandbox(tools=[explode], limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.answer[0] == "explode"
    assert "LookupError: database is down" in result.answer[1]


async def test_unknown_tool_lists_the_tools():
    def a() -> int:
        return 1

    async with Sandbox(tools=[a], limits=limits()) as sandbox:
        result = await sandbox.execute("tool.nope()")
    assert result.error.kind == "AttributeError"
    assert "there is no tool named 'nope'; tools: a" in result.error.message


async def test_budget_remaining_is_asked_live():
    state = {"tokens": 1000}

    def snapshot():
        return {"tokens": state["tokens"], "turns": 3, "seconds": 12.5, "cost": None}

    async with Sandbox(budget=snapshot, limits=limits()) as sandbox:
        first = await sandbox.execute("done(budget.remaining.tokens)")
        state["tokens"] = 400
        second = await sandbox.execute("r = budget.remaining\ndone([r.tokens, r.turns, r.seconds])")
    assert first.answer == 1000
    assert second.answer == [400, 3, 12.5]


async def test_data_mapping_is_offered_by_name():
    async with Sandbox(data={"logs": ["a", "b"], "docs": ["c"]}, limits=limits()) as sandbox:
        result = await sandbox.execute("done([len(data['logs']), data['docs'][0], sorted(data)])")
    assert result.answer == [2, "c", ["docs", "logs"]]


def test_data_given_as_one_string_is_refused_with_the_fix():
    with pytest.raises(errors.ConfigError, match="pass a list of chunk strings"):
        Sandbox(data="a whole corpus")


def test_sync_execute_runs_one_program():
    result = execute("done(sum(len(c) for c in data))", data=["ab", "cde"], limits=limits())
    assert result.status == "done"
    assert result.answer == 5


async def test_child_does_not_import_trio_or_provider_sdks():
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        result = await sandbox.execute(
            "import sys\ndone(sorted(m for m in ('trio', 'anthropic', 'httpx', 'ptcrun.runtime') if m in sys.modules))"
        )
    assert result.status == "done", result
    assert result.answer == []


async def test_a_program_that_ends_the_child_leaves_the_host_working():
    async with Sandbox(limits=limits(), _language_layer=False, _os_layers=False) as sandbox:
        crashed = await sandbox.execute("import os\nos._exit(3)")
        after = await sandbox.execute("done(1 + 1)")
    assert crashed.restarted and crashed.error.kind == "SandboxError"
    assert "exit code 3" in crashed.error.message
    assert after.answer == 2
    assert "earlier variables are gone" in after.note


async def test_turn_clock_stops_a_sleeping_program_and_restarts_the_child():
    async with Sandbox(limits=limits(turn_timeout=1, pmap_timeout=1, call_timeout=1), _language_layer=False, _os_layers=False) as sandbox:
        await sandbox.execute("kept = 1")
        with trio.fail_after(10):
            slow = await sandbox.execute("import time\ntime.sleep(30)")
        after = await sandbox.execute("done(kept)")
    assert slow.error.kind == "TimeLimitExceeded"
    assert isinstance(slow.limit, errors.TimeLimitExceeded)
    assert slow.limit.clock == "turn" and slow.limit.setting == "Limits.turn_timeout"
    assert "turn clock expired after 1 s (Limits.turn_timeout)" in slow.error.message
    assert slow.restarted
    assert after.error.kind == "NameError"  # `kept` went with the old child
    assert "earlier variables are gone" in after.note


async def test_execute_timeout_argument_is_capped_by_turn_timeout():
    async with Sandbox(limits=limits(turn_timeout=1, pmap_timeout=1, call_timeout=1), _language_layer=False, _os_layers=False) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute("import time\ntime.sleep(30)", timeout=100)
    assert result.limit.clock == "turn"


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and rlimits as on Linux")
async def test_sandbox_reports_active_layers():
    async with Sandbox(limits=limits()) as sandbox:
        layers = sandbox.layers
    assert layers is not None
    assert layers["rlimits"] is True


async def test_done_still_ends_the_program_when_a_finally_block_raises_over_it():
    program = """
try:
    try:
        done('the answer')
    finally:
        raise ValueError('raised over done')
except ValueError:
    print('swallowed')
"""
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "done"
    assert result.answer == "the answer"


EVENT_FIELDS = {
    "sandbox.start": {"pid", "layers", "seed"},
    "call.start": {"call", "tool", "args", "kwargs", "pmap", "item"},
    "call.end": {"call", "tool", "ok", "value", "error", "seconds", "pmap", "item"},
    "pmap.start": {"pmap", "total", "concurrency", "parent_pmap", "parent_item"},
    "item.start": {"pmap", "item", "slot"},
    "item.end": {"pmap", "item", "slot", "ok", "error"},
    "pmap.end": {"pmap", "done", "failed", "timed_out"},
    "output": {"text", "pmap", "item"},
}


async def test_events_keep_their_names_and_fields():
    def lookup(x: int) -> int:
        return x * 2

    events: list[dict] = []
    program = "r = pmap(lambda i: tool.lookup(i), range(2))\nprint(r)\ntool.lookup(5)"
    async with Sandbox(tools=[lookup], limits=limits(), on_event=events.append) as sandbox:
        result = await sandbox.execute(program)
    assert result.status == "ok", result.error
    assert {e["type"] for e in events} == set(EVENT_FIELDS)
    for event in events:
        assert set(event) - {"type"} == EVENT_FIELDS[event["type"]], event
    json.dumps(events)  # plain JSON data: no frame object reaches on_event
    last_call = [e for e in events if e["type"] == "call.end"][-1]
    assert last_call["value"] == 10 and last_call["pmap"] is None and last_call["item"] is None


def forged(message: str) -> str:
    """A program (language layer off) that writes a raw frame on the child's pipe, then waits."""
    return (
        "import os, struct, sys, time\n"
        f"body = {message!r}.encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(body)) + body)\n"
        "time.sleep(5)\n"
    )


@pytest.mark.parametrize(
    "message",
    [
        '{"op": "output", "text": NaN, "pmap": null, "item": null}',
        '{"op": "output", "text": "x", "pmap": null, "item": null, "secret": 1}',
        '{"op": "reply", "id": 1, "ok": true, "value": 1, "error": null}',
        '{"op": "ready", "layers": null}',
        "[" * 50_000 + "]" * 50_000,
    ],
    ids=["nan", "extra-field", "host-op", "out-of-place", "deep-nesting"],
)
async def test_any_bad_frame_is_one_protocol_error_and_a_fresh_child(message):
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(forged(message))
            after = await sandbox.execute("print('fresh child')")
    assert result.error.kind == "SandboxError"
    assert "broke the protocol" in result.error.message
    assert result.restarted
    assert after.output == "fresh child\n"


def test_host_objects_use_only_each_others_public_names():
    """Each host object keeps its state to itself: ``x._name`` appears only as ``self._name``."""
    host = Path(__file__).parents[2] / "ptcrun" / "sandbox" / "host"
    reaching = []
    for module in sorted(host.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                reaching.append(f"{module.name}:{node.lineno}: {ast.unparse(node)}")
    assert reaching == []


def _children() -> set[str]:
    """The ids of this process's children (zombies too, until they are reaped)."""
    found: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update((task / "children").read_text().split())
    return found


@pytest.mark.parametrize("after", [0.0, 0.01, 0.05, 0.1, 0.2])
async def test_a_start_cancelled_midway_leaves_no_child_behind(after):
    # A sub-run's clock can run out while its sandbox starts: the child must not outlive it.
    before = _children()
    sandbox = Sandbox(limits=limits())
    with trio.move_on_after(after) as scope:
        await sandbox.__aenter__()
    if not scope.cancelled_caught:  # started before the clock ran out: an ordinary close
        await sandbox.aclose()
    assert _children() - before == set()
