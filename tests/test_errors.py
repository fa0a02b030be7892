"""One error payload at every boundary: ``errors.to_payload`` writes it, ``errors.from_payload`` reads it.

The payload round trip is checked for every class of ``ptcrun.errors``; then one run shows that
an error keeps its type, message and fields from the tool that raised it to the program that
caught it, into the transcript, and out of the CLI (``show``, ``exec --turn``, ``run --json``).
"""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import ptcrun
from ptcrun import Limits, Runtime, ScriptedProvider, Transcript, errors
from ptcrun._json import to_json
from ptcrun.cli import EXIT_CODES
from ptcrun.sandbox import ProgramError

from .clirun import run_cli

DATA = Path(__file__).parent / "transcript" / "data"
KEYS = {"type", "message", "fields", "line", "source_line"}

text = st.text(max_size=30)
limit = st.floats(min_value=0, allow_nan=False)  # math.inf: no limit
observed = st.none() | st.floats(allow_nan=False, allow_infinity=False)

#: One strategy per class of ptcrun.errors, built through its own constructor.
ERRORS: dict[type[errors.PtcrunError], st.SearchStrategy[errors.PtcrunError]] = {
    errors.PtcrunError: st.builds(errors.PtcrunError, text),
    errors.ConfigError: st.builds(errors.ConfigError, text),
    errors.SandboxError: st.builds(errors.SandboxError, text),
    errors.TranscriptError: st.builds(errors.TranscriptError, text),
    errors.LimitExceeded: st.builds(
        errors.LimitExceeded, text, setting=text, limit=limit, observed=observed
    ),
    errors.BudgetExceeded: st.builds(
        errors.BudgetExceeded.for_request,
        what=text,
        needed=st.integers(0, 10**9),
        remaining=st.integers(0, 10**9),
        limit=st.integers(0, 10**9),
    ),
    errors.TimeLimitExceeded: st.builds(
        errors.TimeLimitExceeded,
        st.sampled_from(["call", "pmap", "turn", "run"]),
        st.floats(min_value=0.001, max_value=1e6),
        text,
        argument=st.booleans(),
    ),
    errors.SandboxLimitExceeded: st.builds(
        errors.SandboxLimitExceeded, text, setting=text, limit=limit, observed=observed, restarted=st.booleans()
    ),
    errors.ToolError: st.builds(errors.ToolError, text, tool=text),
    errors.ToolArgumentError: st.builds(errors.ToolArgumentError, text, tool=text),
    errors.ProviderError: st.builds(
        errors.ProviderError,
        text,
        provider=text,
        status=st.none() | st.integers(100, 599),
        request_id=st.none() | text,
    ),
}


def test_every_error_class_has_a_payload_round_trip_below():
    exported = {getattr(errors, name) for name in errors.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, BaseException)}
    assert classes == set(ERRORS)


def fields_of(exc: errors.PtcrunError) -> dict[str, Any]:
    return {name: getattr(exc, name) for name in type(exc).payload_fields}


@pytest.mark.parametrize("cls", list(ERRORS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_payload_round_trip_keeps_class_message_and_fields(cls, data):
    exc = data.draw(ERRORS[cls])
    payload = errors.to_payload(exc)
    assert set(payload) <= KEYS
    assert payload["type"] == cls.__name__
    assert payload["message"] == str(exc)
    assert to_json(payload, what="a payload") == payload  # JSON data under the one rule
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    back = errors.from_payload(json.loads(json.dumps(payload)))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert fields_of(back) == fields_of(exc)
    assert back.exit_code == exc.exit_code
    copied = pickle.loads(pickle.dumps(back))
    assert (type(copied), str(copied), fields_of(copied)) == (cls, str(exc), fields_of(exc))


def test_fields_are_the_classes_own_and_no_limit_is_written_null():
    exc = errors.TimeLimitExceeded("pmap", 30, "3 of 10 items done")
    assert errors.to_payload(exc) == {
        "type": "TimeLimitExceeded",
        "message": "pmap clock expired after 30 s (Limits.pmap_timeout); 3 of 10 items done. "
        "Raise pmap_timeout.",
        "fields": {
            "setting": "Limits.pmap_timeout", "limit": 30, "observed": None, "clock": "pmap", "seconds": 30,
        },
    }
    unlimited = errors.LimitExceeded("x", setting="Limits.max_tokens", limit=math.inf)
    assert errors.to_payload(unlimited)["fields"]["limit"] is None
    assert errors.from_payload(errors.to_payload(unlimited)).limit == math.inf
    assert errors.to_payload(errors.ConfigError("bad")) == {"type": "ConfigError", "message": "bad"}


def test_any_exception_has_a_payload_with_the_same_keys():
    assert errors.to_payload(NameError("name 'x' is not defined"), line=3, source_line="y = x") == {
        "type": "NameError",
        "message": "name 'x' is not defined",
        "line": 3,
        "source_line": "y = x",
    }

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    broken = {"type": "Broken", "message": "<Broken whose message could not be read>"}
    assert errors.to_payload(Broken()) == broken


@pytest.mark.parametrize(
    ("payload", "cls", "message", "fields"),
    [
        ({"type": "ToolError", "message": "m", "fields": {"tool": ["a", "list"]}}, errors.ToolError, "m", {"tool": None}),
        ({"type": "ToolError", "message": "m", "fields": {"tool": "t", "__class__": 1}}, errors.ToolError, "m", {"tool": "t"}),
        ({"type": "NameError", "message": "m"}, errors.PtcrunError, "NameError: m", {}),
        ({"type": 7, "message": None}, errors.PtcrunError, "", {}),
        ("not a payload", errors.PtcrunError, "", {}),
    ],
)
def test_from_payload_trusts_only_the_classes_own_fields(payload, cls, message, fields):
    exc = errors.from_payload(payload)
    assert (type(exc), str(exc), fields_of(exc)) == (cls, message, fields)
    assert "__class__" not in vars(exc)


def test_a_program_error_crosses_as_the_same_payload():
    payload = {"type": "SandboxLimitExceeded", "message": "m", "fields": {"setting": "Limits.x"}, "line": 2}
    error = ProgramError.from_payload(payload)
    assert (error.kind, error.message, error.line) == ("SandboxLimitExceeded", "m", 2)
    assert error.source_line is None
    assert error.to_payload() == payload
    hostile = ProgramError.from_payload({"type": ["x"], "message": 3, "line": True, "source_line": 4})
    assert hostile.to_payload() == {"type": "Error", "message": ""}
    stopped = ProgramError.from_exception(errors.TimeLimitExceeded("turn", 2))
    assert stopped.kind == "TimeLimitExceeded" and stopped.fields["clock"] == "turn"


# -- version 1 transcripts: the old shapes read as payloads ----------------------------------------


@pytest.mark.parametrize("name", ["v1_run.jsonl", "v1_restart_timeout.jsonl"])
def test_version_1_errors_read_as_payloads(name):
    t = Transcript.load(DATA / name)
    found = [c.error for c in t.calls if c.error]
    found += [t.error] if t.error else []
    found += [turn.error for turn in t.turns if turn.error]
    found += [r.error for r in t.llm_calls if r.error]
    found += [i.error for p in t.pmaps for i in p.items if i.error]
    assert found
    for payload in found:
        assert set(payload) <= KEYS and {"type", "message"} <= set(payload), payload
        assert isinstance(payload["type"], str) and isinstance(payload["message"], str)


def test_version_1_error_shapes_keep_their_meaning():
    run = Transcript.load(DATA / "v1_run.jsonl")
    (bad,) = [i for p in run.pmaps for i in p.items if i.error]
    assert bad.error == {"type": "ToolError", "message": "tool 'lookup' failed: ValueError: unknown level BAD"}
    restarted = Transcript.load(DATA / "v1_restart_timeout.jsonl")
    assert restarted.turns[0].error["type"] == "TimeLimitExceeded"  # written as {"kind": ...}
    (outage,) = [r.error for r in restarted.llm_calls if r.error]
    assert outage == {"type": "ProviderError", "message": "scripted outage"}  # written as text


# -- one error across every boundary ---------------------------------------------------------------


def block(code: str) -> str:
    return f"Here is the program.\n```python\n{code.strip()}\n```"


def lookup(level: str) -> str:
    """Describe a log level."""
    if level == "BAD":
        raise ValueError("unknown level BAD")
    return "fine"


async def slow() -> str:
    """Take too long."""
    await trio.sleep(30)
    return "late"


PROGRAM = """
try:
    tool.lookup("BAD")
except ToolError as e:
    print("caught ToolError", e.tool, str(e))
try:
    tool.slow()
except TimeLimitExceeded as e:
    print("caught TimeLimitExceeded", e.clock, e.setting, e.limit, e.seconds, str(e))
results = pmap(lambda level: tool.lookup(level), ["OK", "BAD"])
print("failure", results[1].kind, results[1].message)
tool.lookup("BAD")
"""


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("errors")
    corpus = folder / "corpus.txt"
    corpus.write_text("one\ntwo\n")
    chunks = list(ptcrun.chunk_by_lines(corpus.read_text(), 1))
    runtime = Runtime(
        planner=ScriptedProvider([block(PROGRAM), block("done(1)")]),
        tools=[lookup, slow],
        limits=Limits(call_timeout=0.5, pmap_timeout=5, turn_timeout=20, run_timeout=60),
        transcript_dir=folder,
    )
    result = runtime.run("Look things up.", chunks)
    return result, Transcript.load(result.transcript), corpus




def test_a_tool_error_reaches_the_program_and_the_transcript_as_one_payload(failed_run):
    _, t, _ = failed_run
    turn = t.turns[0]
    lines = turn.output.splitlines()
    bad_calls = [c for c in t.calls if c.tool == "lookup" and c.args == ("BAD",)]
    raised = errors.ToolError("tool 'lookup' failed: ValueError: unknown level BAD", tool="lookup")
    assert [c.error for c in bad_calls] == [errors.to_payload(raised)] * 3
    assert lines[0] == f"caught ToolError lookup {raised}"
    (late,) = [c for c in t.calls if c.tool == "slow"]
    clock = errors.from_payload(late.error)
    assert isinstance(clock, errors.TimeLimitExceeded)
    assert late.error == errors.to_payload(clock)
    assert lines[1] == f"caught TimeLimitExceeded call Limits.call_timeout 0.5 0.5 {clock}"
    # The pmap item's Failure and its item.end event carry the same payload.
    (item,) = [i for p in t.pmaps for i in p.items if i.error]
    assert item.error == errors.to_payload(raised)
    assert lines[2] == f"failure ToolError {raised}"
    # Uncaught, the same error is the program's error, with where it happened.
    assert turn.error == {**errors.to_payload(raised), "line": 11, "source_line": 'tool.lookup("BAD")'}


def test_the_cli_shows_the_recorded_error_and_a_replay_raises_it_again(failed_run):
    result, t, corpus = failed_run
    turn = t.turns[0]
    message = turn.error["message"]
    code, out, _ = run_cli(["show", str(result.transcript), "--turn", "1", "--calls"])
    assert code == 0
    assert f"line 11: ToolError: {message}" in out
    replay = ["exec", str(result.transcript), "--turn", "1", "--data", str(corpus), "--chunk-lines", "1"]
    code, out, err = run_cli(replay)
    assert code == EXIT_CODES["error"]
    assert out == turn.output  # the replayed calls raised the same errors, caught the same way
    assert f"error: line 11: ToolError: {message}" in err
    assert "the same output and outcome as the recorded run" in err


def test_the_error_that_ends_a_run_is_the_same_payload_in_result_transcript_and_cli(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one\n")
    planner = tmp_path / "planner.json"
    planner.write_text(json.dumps([block("done(1)")]))
    code, out, _ = run_cli([
        "run", str(corpus), "--goal", "Anything.", "--chunk-lines", "1", "--planner", f"scripted:{planner}",
        "--out", str(tmp_path / "runs"), "--token-limit", "100", "--quiet", "--json",
    ])
    shown = json.loads(out)
    t = Transcript.load(shown["transcript"])
    assert t.status == "budget_exceeded"
    assert t.error["type"] == shown["error"]["type"] == "BudgetExceeded"
    assert t.error["fields"] == shown["error"]["fields"]
    assert t.error["fields"]["setting"] == "Limits.max_tokens"
    assert set(shown["error"]) == set(t.error)
    # The message is the same sentence, with the setting spelled as the CLI user sets it.
    assert re.sub(r"--token-limit|Limits\.max_tokens|max_tokens", "X", shown["error"]["message"]) == re.sub(
        r"--token-limit|Limits\.max_tokens|max_tokens", "X", t.error["message"]
    )
    assert code == errors.BudgetExceeded.exit_code
