"""The event schema: what is written, what the docs say, and what the reader accepts."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun._json import for_event
from ptcrun.errors import TranscriptError
from ptcrun.transcript._events import EventStream
from ptcrun.transcript._parsing import _from_v1, parse_event
from ptcrun.transcript._schema import (
    ENVELOPE,
    EVENT_TYPES,
    SCHEMA_VERSION,
    CallEnd,
    RunStart,
    describe_type,
    event_fields,
)

from ..runtime.batch_runs import batched_run
from .example_runs import example_run

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(\w+)` \| ([^|]+) \|", re.MULTILINE)


def documented() -> tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]]]:
    """The envelope's rows and each event type's rows in docs/transcript.md: (field, type)."""
    text = (ROOT / "docs" / "transcript.md").read_text(encoding="utf-8")
    section = text[text.index("## Events (schema version") : text.index("## Reading a transcript")]
    head, *types = re.split(r"^### ", section, flags=re.MULTILINE)

    def rows(part: str) -> list[tuple[str, str]]:
        return [(name, kind.strip()) for name, kind in ROW.findall(part)]

    by_type = {}
    for part in types:
        name = re.match(r"`([\w.]+)`", part)
        assert name is not None, part[:60]
        by_type[name.group(1)] = rows(part)
    return rows(head), by_type


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result, _ = example_run(tmp_path_factory.mktemp("runs"))
    # The batch events come from a pmap(batch=True) against the local fake Message Batches API.
    batched, _ = batched_run(tmp_path_factory.mktemp("batched"), ["x", "xx"])
    return [json.loads(line) for r in (result, batched) for line in r.transcript.read_text().splitlines()]


def test_docs_document_the_envelope():
    envelope, _ = documented()
    assert [name for name, _ in envelope] == list(ENVELOPE)
    assert dict(envelope) == {"v": "int", "type": "str", "ts": "float", "span": "str", "parent": "str or null"}
    assert f"## Events (schema version {SCHEMA_VERSION})" in (ROOT / "docs" / "transcript.md").read_text()


def test_docs_document_every_event_type_and_field_and_nothing_else():
    _, by_type = documented()
    assert sorted(by_type) == sorted(EVENT_TYPES)
    for name, cls in EVENT_TYPES.items():
        schema = [(field, describe_type(hint)) for field, hint in event_fields(cls).items()]
        assert by_type[name] == schema, name


def test_every_event_type_is_written_and_parses_back_into_its_class(written):
    assert {e["type"] for e in written} == set(EVENT_TYPES)
    for event in written:
        assert event["v"] == SCHEMA_VERSION
        cls = EVENT_TYPES[event["type"]]
        assert list(event) == [*ENVELOPE, *event_fields(cls)]
        parsed = parse_event(event)
        assert type(parsed) is cls
        assert parsed.as_json() == event


def test_observers_get_the_json_object_that_is_written(tmp_path):
    seen = []
    stream = EventStream(tmp_path / "t.jsonl", [seen.append])
    returned = stream.emit(CallEnd(span="t1.c1", parent="t1.program", call=1, tool="lookup", ok=True,
                                   value=("a", 1), error=None, seconds=0.5, pmap=None, item=None))
    stream.close()
    line = json.loads((tmp_path / "t.jsonl").read_text())
    assert seen == [returned] == [line]
    assert line["value"] == ["a", 1] and line["type"] == "call.end" and line["v"] == SCHEMA_VERSION


def test_values_follow_the_json_rule_and_what_it_refuses_is_still_written():
    class Odd:
        pass

    loop: list = []
    loop.append(loop)
    event = RunStart(span="run", parent=None, goal="g", planner="p", worker="w", tools=["worker"],
                     limits={"max_tokens": 10, "run_timeout": math.inf},
                     data={"sets": {3, 1, 2}, "odd": Odd(), "nan": [math.nan], "loop": loop})
    data = event.as_json()
    assert data["limits"] == {"max_tokens": 10, "run_timeout": None}  # null = no limit
    assert data["data"]["sets"] == [1, 2, 3]
    assert data["data"]["odd"] == "<not JSON: a value of type Odd>"
    assert data["data"]["nan"] == [None]
    json.dumps(data, allow_nan=False)  # the cycle was cut too


@pytest.mark.parametrize("value", [
    [], {}, ["chunk é", 1, 2.5, None, True], ("a", "b"), [{"role": "user", "content": "ü"}],
    [math.nan], [math.inf, "x"], {1: "a"}, {"k": -math.inf}, [[1]], [{"a": [1]}], [2**70], {"a": "\ud800"},
    ["\udfff"], {"\ud800": 1}, "\ud800x", 2**64, math.nan, [True, {"k": None}],
])
def test_every_field_is_written_as_the_json_rule_gives_it(value):
    # Calls' arguments and requests' messages skip the converter when they are plain: the
    # skip must give what the converter would, lone surrogates and non-finite floats included.
    event = CallEnd(span="t1.c1", parent="t1.program", call=1, tool="t", ok=True, value=value,
                    error=None, seconds=0.5, pmap=None, item=None)
    written = event.as_json()["value"]
    assert written == for_event(value)
    if isinstance(value, (list, tuple, dict)):
        assert written is not value  # a copy: the caller may change its value later
    json.dumps(written, allow_nan=False)


def test_events_of_a_type_this_ptcrun_does_not_know_are_skipped(written, tmp_path):
    newer = {"v": SCHEMA_VERSION, "type": "cache.hit", "ts": written[3]["ts"], "span": "t1.c9", "parent": "t1"}
    extra = dict(written[2], mood="calm")  # a field added later within the version
    path = tmp_path / "transcript.jsonl"
    events = [*written[:2], extra, newer, *written[3:]]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    t = Transcript.load(path)
    assert t.status == "done" and len(t.turns) == 2
    assert t.events[3]["type"] == "cache.hit"  # kept as written


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("call.end", {"ok": "yes"}, r"line \d+: the call.end event has ok='yes', which is not bool"),
        ("turn.start", {"turn": True}, r"the turn.start event has turn=True, which is not int"),
        ("llm.end", {"text": 5}, r"has text=5, which is not str or null"),
        ("call.start", {"kwargs": {"a": float}}, r"has kwargs=.*, which is not dict\[str, JSON\]"),
        ("call.end", {"value": [math.nan]}, r"has value=\[nan\], which is not JSON"),
        ("run.end", {"seconds": math.inf}, r"has seconds=inf, which is not float"),
        ("item.start", {"span": None}, r"has span=None, which is not str"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_with_its_line(written, tmp_path, kind, change, message):
    index = next(i for i, e in enumerate(written) if e["type"] == kind)
    events = [*written[:index], {**written[index], **change}, *written[index + 1 :]]
    if kind == "call.start":  # JSON cannot hold a class: hand the events over in memory instead
        with pytest.raises(TranscriptError, match=message.replace("line \\d+", "event \\d+ of the events")):
            Transcript.from_events(events)
        return
    path = tmp_path / "transcript.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(TranscriptError, match=message):
        Transcript.load(path)


def test_a_missing_field_is_refused(written):
    index = next(i for i, e in enumerate(written) if e["type"] == "pmap.start")
    broken = {k: v for k, v in written[index].items() if k != "total"}
    events = [*written[:index], broken, *written[index + 1 :]]
    with pytest.raises(TranscriptError, match=rf"event {index + 1} of the events: the pmap.start event has no 'total' field"):
        Transcript.from_events(events)


@pytest.mark.parametrize(
    ("v1", "payload"),
    [
        ({"type": "llm.end", "error": "ProviderError: 529 overloaded"}, {"type": "ProviderError", "message": "529 overloaded"}),
        ({"type": "llm.end", "error": "no colon here"}, {"type": "Error", "message": "no colon here"}),
        ({"type": "item.end", "error": "cancelled"}, {"type": "Cancelled", "message": "cancelled"}),
        ({"type": "item.end", "error": "Failure(item 2: ToolError: tool 'x' failed: a: b)"},
         {"type": "ToolError", "message": "tool 'x' failed: a: b"}),
        ({"type": "program.end", "error": {"kind": "NameError", "message": "name 'x'", "line": 2, "source_line": None}},
         {"type": "NameError", "message": "name 'x'", "line": 2}),
        ({"type": "call.end", "error": {"type": "ToolError", "message": "m", "fields": {"tool": "x"}}},
         {"type": "ToolError", "message": "m", "fields": {"tool": "x"}}),
    ],
)
def test_version_1_errors_read_as_error_payloads(v1, payload):
    assert _from_v1({"v": 1, **v1}) == {"v": 2, **v1, "error": payload}


def test_a_version_ptcrun_never_wrote_is_refused(written):
    events = [dict(written[0], v=0), *written[1:]]
    with pytest.raises(TranscriptError, match=r"event 1 of the events: the run.start event has v=0, a schema version ptcrun never wrote"):
        Transcript.from_events(events)
