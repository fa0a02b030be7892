"""One JSON rule at every boundary: the program, the transcript and a replay see the same value.

Each boundary (tool argument, tool result, worker result, ``done()`` answer) gets one real run
through ``Runtime`` with scripted LLMs, whose program tries every item of the rule (see
``ptcrun._json``) and prints what it got back: the converted value, or the refusal. The test then
checks the value against the rule, against the transcript (``Transcript.load``), and against a
replay of the turn (``ptcrun exec TRANSCRIPT --turn N``), which must print the same output.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import trio

import ptcrun
from ptcrun import Limits, Runtime, ScriptedProvider, Transcript, errors
from ptcrun._json import MAX_DEPTH, NotJSON, for_event, to_json
from ptcrun.cli import EXIT_CODES, main
from ptcrun.runtime.providers._base import Request
from ptcrun.sandbox import Sandbox, _protocol

LIMITS = Limits(call_timeout=10, pmap_timeout=20, turn_timeout=30, run_timeout=60, worker_max_tokens=8_000)
BIG = 9_000_000  # characters: more than the 8 MiB a message from the sandbox may hold

# -- the rule, as (Python source a program runs, the value a host tool returns) ---------------------

PRELUDE = '''
import json

class LyingDict(dict):
    def items(self):
        return [("evil", 1)]
    def keys(self):
        return ["evil"]
    def values(self):
        return [1]

class LyingList(list):
    def copy(self):
        return ["evil"]

class LyingInt(int):
    def bit_length(self):
        return 1

class LyingStr(str):
    def isascii(self):
        return True

cyc = []
cyc.append(cyc)
deep = []
for level in range(MAX_DEPTH + 1):
    deep = [deep]
'''.replace("MAX_DEPTH", str(MAX_DEPTH))


class LyingDict(dict):
    def items(self):
        return [("evil", 1)]

    def keys(self):
        return ["evil"]

    def __iter__(self):
        return iter(["evil"])


class LyingList(list):
    def __iter__(self):
        return iter(["evil"])


class LyingInt(int):
    def __index__(self) -> int:
        return 666

    def __repr__(self) -> str:
        return "666"

    __str__ = __repr__


class LyingStr(str):
    def __str__(self) -> str:
        return "evil"


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


#: name: (program source, host value, what crosses)
ACCEPTED: dict[str, tuple[str, Any, Any]] = {
    "set": ("{3, 1, 2}", {3, 1, 2}, [1, 2, 3]),
    "frozenset": ("frozenset({'b', 'a'})", frozenset({"b", "a"}), ["a", "b"]),
    "tuple": ("(1, (2, 'x'))", (1, (2, "x")), [1, [2, "x"]]),
    "int keys": ("{1: 'a', -2: 'b'}", {1: "a", -2: "b"}, {"1": "a", "-2": "b"}),
    "nested": (
        "{'a': [(1, {2: {3}})], 'b': None}",
        {"a": [(1, {2: {3}})], "b": None},
        {"a": [[1, {"2": [3]}]], "b": None},
    ),
    "as deep as allowed": (
        f"json.loads('[' * {MAX_DEPTH} + ']' * {MAX_DEPTH})", _deep(MAX_DEPTH - 1), _deep(MAX_DEPTH - 1)
    ),
    "long int": ("10 ** 4000", 10**4000, 10**4000),
    "lying dict": ("LyingDict({'real': 1})", LyingDict(real=1), {"real": 1}),
    "lying list": ("LyingList([1, 2])", LyingList([1, 2]), [1, 2]),
    "lying int": ("LyingInt(7)", LyingInt(7), 7),
    "lying str": ("LyingStr('real')", LyingStr("real"), "real"),
    "plain": ("[True, None, 1.5, 'é']", [True, None, 1.5, "é"], [True, None, 1.5, "é"]),
}

#: name: (program source, host value, the problem the refusal names)
REFUSED: dict[str, tuple[str, Any, str]] = {
    "nan": ("float('nan')", math.nan, "is the float nan"),
    "+inf": ("float('inf')", math.inf, "is the float inf"),
    "-inf": ("[float('-inf')]", [-math.inf], "at [0] is the float -inf"),
    "None key": ("{None: 1}", {None: 1}, "is a dict with a key of type NoneType (None)"),
    "float key": ("{'a': {1.5: 1}}", {"a": {1.5: 1}}, "at ['a'] is a dict with a key of type float (1.5)"),
    "tuple key": ("{(1, 2): 1}", {(1, 2): 1}, "is a dict with a key of type tuple ((1, 2))"),
    "bool key": ("{True: 1}", {True: 1}, "is a dict with a key of type bool (True)"),
    "colliding keys": ("{1: 'a', '1': 'b'}", {1: "a", "1": "b"}, "two keys that both become '1'"),
    "cycle": ("cyc", _cycle(), "at [0] is a value that contains itself"),
    # Where: the end of the path, "at ...[0][0][0] is nested ...".
    "too deep": ("deep", _deep(MAX_DEPTH + 1), f"[0][0] is nested deeper than {MAX_DEPTH} levels"),
    "huge int": ("10 ** 5000", 10**5000, "is an integer of more than 4300 digits"),
    "lying huge int": ("LyingInt(10 ** 5000)", LyingInt(10**5000), "is an integer of more than 4300 digits"),
    "lone surrogate": ("LyingStr('a\\ud800')", "a\ud800", "a lone surrogate ('\\ud800' at index 1)"),
    "unsortable set": ("{1, 'a'}", {1, "a"}, "is a set whose items cannot be sorted"),
    "bytes": ("b'x'", b"x", "is a value of type bytes"),
}


def refused(message: str, what: str, problem: str) -> bool:
    """Whether ``message`` is the rule's refusal of ``what`` for ``problem`` (path included)."""
    return message.startswith(f"{what} ") and f"{problem}, which JSON cannot carry; " in message


def test_the_rule_itself():
    for name, (_, value, crossed) in ACCEPTED.items():
        assert to_json(value, what="v") == crossed, name
    for name, (_, value, problem) in REFUSED.items():
        with pytest.raises(NotJSON) as info:
            to_json(value, what="the value")
        assert refused(str(info.value), "the value", problem), name


def test_events_use_the_rule_with_documented_stand_ins():
    converted = for_event({"run_timeout": math.inf, "set": {2, 1}, 1: (1,)})
    assert converted == {"run_timeout": None, "set": [1, 2], "1": [1]}
    assert for_event([math.nan, b"x", {(1, 2): 3}, "a\ud800", _cycle()]) == [
        None,
        "<not JSON: a value of type bytes>",
        "<not JSON: a dict with a key of type tuple ((1, 2))>",
        "a\ufffd",
        ["<not JSON: a value that contains itself>"],
    ]


# -- running, reading back, replaying -------------------------------------------------------------


def block(code: str) -> str:
    return f"Here is the program.\n```python\n{code.strip()}\n```"


def cases_source(cases: dict[str, str]) -> str:
    """A program dict of name to a function making the value, written in the program's language."""
    items = "".join(f"    {name!r}: lambda: {source},\n" for name, source in cases.items())
    return f"cases = {{\n{items}}}\n"


def run(tmp_path: Path, replies: list[str], **kwargs: Any) -> tuple[Path, Transcript, Path]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\ntwo\n")
    chunks = list(ptcrun.chunk_by_lines(corpus.read_text(), 1))
    runtime = Runtime(
        planner=ScriptedProvider([block(r) for r in replies]),
        limits=LIMITS,
        transcript_dir=tmp_path,
        **kwargs,
    )
    result = runtime.run("Try every value.", chunks)
    return result.transcript, Transcript.load(result.transcript), corpus


def replay(transcript: Path, corpus: Path, turn: int) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["exec", str(transcript), "--turn", str(turn), "--fresh", "--data", str(corpus)]
    argv += ["--chunk-lines", "1"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def seen_by_program(output: str) -> dict[str, Any]:
    """``name => JSON`` or ``name => refused: message`` lines, as printed by the programs below."""
    seen: dict[str, Any] = {}
    for line in output.splitlines():
        name, _, shown = line.partition(" => ")
        seen[name] = shown if shown.startswith("refused: ") else json.loads(shown)
    return seen


def assert_replay_sees_the_same(transcript: Path, t: Transcript, corpus: Path, *, calls: int) -> None:
    code, out, err = replay(transcript, corpus, 1)
    assert code == EXIT_CODES["done"]
    assert out == t.turns[0].output
    assert f"the same output and outcome as the recorded run ({calls} tool calls replayed, 0 live)" in err


LOOP = """
for name, make in cases.items():
    try:
        value = CALL
        print(name, "=>", json.dumps(len(value) if name == "huge" else value))
    except CAUGHT as e:
        print(name, "=>", "refused:", str(e))
"""


def loop(call: str, caught: str) -> str:
    """Call ``call`` for each of the program's ``cases``; print what came back, or the refusal."""
    return LOOP.replace("CALL", call).replace("CAUGHT", caught)


# -- tool arguments -------------------------------------------------------------------------------


def echo(value: Any = None) -> Any:
    """Give back what was given."""
    return value


def test_tool_arguments(tmp_path):
    cases = {n: s for n, (s, _, _) in ACCEPTED.items()} | {n: s for n, (s, _, _) in REFUSED.items()}
    cases["huge"] = f"'x' * {BIG}"
    program = PRELUDE + cases_source(cases) + loop("tool.echo(make())", "ValueError")
    path, t, corpus = run(tmp_path, [program, "done(1)"], tools=[echo])

    seen = seen_by_program(t.turns[0].output)
    assert {n: seen[n] for n in ACCEPTED} == {n: crossed for n, (_, _, crossed) in ACCEPTED.items()}
    for name, (_, _, problem) in REFUSED.items():
        assert refused(seen[name], "refused: argument 0 of tool.echo", problem), name
    assert seen["huge"] == (
        f"refused: the arguments of tool.echo are too big: {BIG + 9:,} bytes of JSON cannot leave the "
        "sandbox in one message (at most 8,388,608); send less: a summary, or the data in parts."
    )
    # The host got, recorded and gave back exactly the converted values; refused ones never left.
    assert [c.args for c in t.calls] == [(crossed,) for _, _, crossed in ACCEPTED.values()]
    assert [c.value for c in t.calls] == [crossed for _, _, crossed in ACCEPTED.values()]
    assert_replay_sees_the_same(path, t, corpus, calls=len(ACCEPTED))


# -- tool results ---------------------------------------------------------------------------------


HOST_VALUES = {n: v for n, (_, v, _) in ACCEPTED.items()} | {n: v for n, (_, v, _) in REFUSED.items()}
HOST_VALUES["huge"] = "é" * BIG


def give(name: str) -> Any:
    """Return the value called ``name``."""
    return HOST_VALUES[name]


def test_tool_results(tmp_path):
    program = f"import json\ncases = {{name: name for name in {list(HOST_VALUES)!r}}}\n" + loop(
        "tool.give(make)", "ToolError"
    )
    path, t, corpus = run(tmp_path, [program, "done(1)"], tools=[give])

    seen = seen_by_program(t.turns[0].output)
    calls = {c.args[0]: c for c in t.calls}
    for name, (_, _, crossed) in ACCEPTED.items():
        assert seen[name] == crossed, name
        assert (calls[name].status, calls[name].value) == ("ok", crossed), name
    for name, (_, _, problem) in REFUSED.items():
        assert refused(seen[name], "refused: the result of tool 'give'", problem), name
        # Recorded as the failed call the program saw, never as an ok call with the raw value.
        assert calls[name].status == "error" and calls[name].value is None, name
        message = seen[name].removeprefix("refused: ")
        assert calls[name].error == {"type": "ToolError", "message": message, "fields": {"tool": "give"}}
    assert seen["huge"] == BIG and calls["huge"].value == HOST_VALUES["huge"]
    assert_replay_sees_the_same(path, t, corpus, calls=len(HOST_VALUES))


def test_a_tool_result_too_big_for_one_message_is_a_failed_call(tmp_path, monkeypatch):
    monkeypatch.setattr(_protocol, "MAX_HOST_FRAME_BYTES", 1 << 20)  # the host's copy only

    def dump() -> str:
        """Return two megabytes."""
        return "x" * (2 << 20)

    program = "try:\n    tool.dump()\nexcept ToolError as e:\n    print(str(e))"
    _, t, _ = run(tmp_path, [program, "done(1)"], tools=[dump])
    (call,) = t.calls
    assert call.status == "error" and call.value is None
    assert call.error["message"] == (
        "the result of tool 'dump' is too big: 2,097,154 bytes of JSON cannot reach the sandbox in one "
        "message (at most 1,047,552); return less: a summary, or the data in parts."
    )
    assert t.turns[0].output == call.error["message"] + "\n"


# -- worker results -------------------------------------------------------------------------------


#: name: (the worker's reply text, what crosses, or None when the rule refuses it)
WORKER_REPLIES: dict[str, tuple[str, Any]] = {
    "nested": (
        '{"a": [1, {"b": [true, null, 2.5]}], "c": "é"}', {"a": [1, {"b": [True, None, 2.5]}], "c": "é"},
    ),
    "repeated key": ('{"a": 1, "a": 2}', {"a": 2}),
    "long int": ("1" * 4000, int("1" * 4000)),
    "as deep as allowed": ("[" * MAX_DEPTH + "]" * MAX_DEPTH, _deep(MAX_DEPTH - 1)),
    "nan": ("NaN", "the worker's answer is the float nan"),
    "+inf": ('{"x": Infinity}', "the worker's answer at ['x'] is the float inf"),
    "-inf": ("[-Infinity]", "the worker's answer at [0] is the float -inf"),
    "too deep": ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"is nested deeper than {MAX_DEPTH} levels"),
    "huge int": ("1" * 5000, "a number in the worker's answer is an integer of more than 4300 digits"),
}
WORKER_REFUSED = {"nan", "+inf", "-inf", "too deep", "huge int"}


def scripted_worker(request: Request) -> str:
    name = re.search(r"case=([\w +-]+)\.", request.messages[0].content).group(1)
    return WORKER_REPLIES[name][0]


def test_worker_results(tmp_path):
    program = f"import json\ncases = {{name: name for name in {list(WORKER_REPLIES)!r}}}\n" + loop(
        'tool.worker(f"case={make}.", "Answer.", schema={})', "ToolError"
    )
    path, t, corpus = run(tmp_path, [program, "done(1)"], worker=ScriptedProvider(scripted_worker))

    seen = seen_by_program(t.turns[0].output)
    calls = {re.search(r"case=(.+)\.", c.args[0]).group(1): c for c in t.calls}
    for name, (reply, expected) in WORKER_REPLIES.items():
        call = calls[name]
        assert call.llm[0].text == reply  # the model's words are kept as they came
        if name in WORKER_REFUSED:
            twice = "refused: tool 'worker' answered with JSON that does not match the schema, twice:"
            assert seen[name].startswith(twice), name
            assert f"{expected}, which JSON cannot carry; " in seen[name], name
            assert call.status == "error" and call.value is None
            message = seen[name].removeprefix("refused: ")
            assert call.error == {"type": "ToolError", "message": message, "fields": {"tool": "worker"}}
        else:
            assert seen[name] == expected == call.value, name
    assert_replay_sees_the_same(path, t, corpus, calls=len(WORKER_REPLIES))


# -- done() answers -------------------------------------------------------------------------------


def test_done_answers(tmp_path):
    refusals = cases_source({n: s for n, (s, _, _) in REFUSED.items()}) + loop("done(make())", "ValueError")
    # One answer holds every accepted value, one level down: all but the one as deep as allowed.
    kept = {n: case for n, case in ACCEPTED.items() if n != "as deep as allowed"}
    accepted = cases_source({n: s for n, (s, _, _) in kept.items()})
    program = PRELUDE + refusals + accepted + "done({name: make() for name, make in cases.items()})"
    path, t, corpus = run(tmp_path, [program])

    expected = {n: crossed for n, (_, _, crossed) in kept.items()}
    seen = seen_by_program(t.turns[0].output)
    for name, (_, _, problem) in REFUSED.items():
        assert refused(seen[name], "refused: the answer given to done()", problem), name
    assert t.status == "done"
    assert t.answer == t.turns[0].answer == expected
    code, out, err = replay(path, corpus, 1)
    assert code == EXIT_CODES["done"]
    assert out == t.turns[0].output + f"done: {json.dumps(expected, ensure_ascii=False, indent=2)}\n"
    assert "the same output and outcome as the recorded run" in err


def test_a_refused_or_too_big_answer_is_the_programs_error(tmp_path):
    path, t, corpus = run(tmp_path, ["done({'a': float('nan')})", f"done('x' * {BIG})", "done('small')"])
    nan, huge, _ = t.turns
    assert nan.error == {
        "type": "NotJSON",
        "message": "the answer given to done() at ['a'] is the float nan, which JSON cannot carry; "
        "use None or a string such as 'inf'",
        "line": 1,
        "source_line": "done({'a': float('nan')})",
    }
    assert huge.error == {
        "type": "FrameTooLarge",
        "message": f"the answer given to done() is too big: {BIG + 2:,} bytes of JSON cannot leave the "
        "sandbox in one message (at most 8,388,608); send less: a summary, or the data in parts.",
    }
    assert (t.status, t.answer) == ("done", "small")
    for number, recorded in ((1, nan), (2, huge)):
        code, out, err = replay(path, corpus, number)
        assert (code, out) == (EXIT_CODES["error"], "")
        shown = err.replace(f"line {recorded.error.get('line')}: ", "")
        assert f"error: {recorded.error['type']}: {recorded.error['message']}" in shown
        assert "the same output and outcome as the recorded run" in err


# -- the child stays free of the host's dependencies ----------------------------------------------


async def test_the_child_imports_the_codec_but_no_host_dependency():
    async with Sandbox(limits=LIMITS, _language_layer=False) as sandbox:
        names = ("trio", "anthropic", "httpx", "ptcrun.runtime", "ptcrun._json", "ptcrun.errors")
        result = await sandbox.execute(f"import sys\ndone([m for m in {names!r} if m in sys.modules])")
    assert result.answer == ["ptcrun._json", "ptcrun.errors"]


def test_errors_cross_back_into_the_program_as_their_class(tmp_path):
    async def refuse(code: int) -> int:
        """Fail with a provider error."""
        await trio.lowlevel.checkpoint()
        raise errors.ProviderError("upstream said no", provider="acme", status=code)

    program = "try:\n    tool.refuse(503)\nexcept Exception as e:\n    print(e.provider, e.status, str(e))"
    _, t, _ = run(tmp_path, [program, "done(1)"], tools=[refuse])
    assert t.turns[0].output == "acme 503 upstream said no\n"
    raised = errors.ProviderError("upstream said no", provider="acme", status=503)
    assert t.calls[0].error == errors.to_payload(raised)
