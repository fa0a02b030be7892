"""``ptcrun export --format otlp-json``: a transcript as the OTLP/JSON body a collector takes, with
the same span tree the run made live."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from ptcrun import Transcript
from ptcrun.telemetry._otlp import otlp_json, run_id_of

from ..clirun import run_cli
from ..transcript.example_runs import example_run
from .conftest import ptcrun_span

_KINDS = {trace.SpanKind.INTERNAL: 1, trace.SpanKind.CLIENT: 3}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    _, transcript = example_run(tmp_path_factory.mktemp("runs"))
    return transcript


def live_tree(spans: tuple[ReadableSpan, ...]) -> dict[str, dict[str, Any]]:
    """Each ptcrun span by its transcript id: everything the export writes of it."""
    ids = {span.context.span_id: ptcrun_span(span) for span in spans}
    tree = {}
    for span in spans:
        status = None
        if span.status.status_code is trace.StatusCode.ERROR:
            status = {"code": 2, "message": span.status.description}
        tree[ptcrun_span(span)] = {
            "name": span.name,
            "parent": ids[span.parent.span_id] if span.parent else None,
            "kind": _KINDS[span.kind],
            "start": span.start_time,
            "end": span.end_time,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()},
            "events": [(e.name, e.timestamp, dict(e.attributes)) for e in span.events],
            "status": status,
        }
    return tree


def exported_tree(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (resource,) = body["resourceSpans"]
    (scope,) = resource["scopeSpans"]
    spans = scope["spans"]
    names = {s["spanId"]: attribute_values(s["attributes"])["ptcrun.span"] for s in spans}
    return {
        names[s["spanId"]]: {
            "name": s["name"],
            "parent": names[s["parentSpanId"]] if "parentSpanId" in s else None,
            "kind": s["kind"],
            "start": int(s["startTimeUnixNano"]),
            "end": int(s["endTimeUnixNano"]),
            "attributes": attribute_values(s["attributes"]),
            "events": [(e["name"], int(e["timeUnixNano"]), attribute_values(e["attributes"]))
                       for e in s.get("events", [])],
            "status": s.get("status"),
        }
        for s in spans
    }


def attribute_values(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in attributes}


def any_value(value: dict[str, Any]) -> Any:
    ((kind, v),) = value.items()
    if kind == "intValue":
        return int(v)
    if kind == "arrayValue":
        return [any_value(x) for x in v["values"]]
    return v


def test_the_export_has_the_live_runs_span_tree(exporter, tmp_path):
    _, transcript = example_run(tmp_path)
    live = live_tree(exporter.get_finished_spans())
    exported = exported_tree(otlp_json(transcript))
    assert exported == live
    # The run as the transcript tells it: two turns, 15 calls (12 workers and 3 lookups, one
    # failed), a worker request that was retried once.
    assert sum(1 for s in live.values() if s["name"].startswith("execute_tool")) == 15
    assert live["t2.c15"]["status"]["message"].startswith("tool 'lookup' failed")
    retried = [s for s in live.values() if s["events"] and s["events"][0][0] == "ptcrun.llm.retry"]
    assert len(retried) == 1 and retried[0]["attributes"]["ptcrun.llm.retries"] == 1


def test_the_export_is_an_ExportTraceServiceRequest(recorded):
    body = otlp_json(recorded, version="1.2.3")
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    # OTLP/JSON writes ids in hex where protobuf's own JSON mapping reads base64: convert them
    # before parsing with the protobuf classes, which reject any unknown or mistyped field.
    for span in spans:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                assert len(span[key]) == {"traceId": 32}.get(key, 16)
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    message = json_format.ParseDict(body, ExportTraceServiceRequest())
    (resource,) = message.resource_spans
    assert resource.resource.attributes[0].key == "service.name"
    (scope,) = resource.scope_spans
    assert (scope.scope.name, scope.scope.version) == ("ptcrun", "1.2.3")
    parsed = scope.spans
    assert len(parsed) == len(recorded.spans()) - sum(1 for s in recorded.spans() if s.kind == "sandbox")
    ids = {s.span_id for s in parsed}
    assert len({s.trace_id for s in parsed}) == 1
    roots = [s for s in parsed if not s.parent_span_id]
    assert [r.name for r in roots] == ["invoke_agent ptcrun"]
    assert all(s.parent_span_id in ids for s in parsed if s.parent_span_id)
    chat = next(s for s in parsed if s.name == "chat scripted")
    assert chat.kind == chat.SPAN_KIND_CLIENT
    assert {a.key for a in chat.attributes} >= {"gen_ai.operation.name", "gen_ai.usage.input_tokens"}


def test_the_ids_come_from_the_run_id(recorded, tmp_path):
    one, two = otlp_json(recorded), otlp_json(recorded)
    assert one == two
    copy = tmp_path / "20990101T000000Z-abcdef"
    copy.mkdir()
    (copy / "transcript.jsonl").write_bytes(recorded.path.read_bytes())
    other = otlp_json(Transcript.load(copy))
    first = one["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    moved = other["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert run_id_of(recorded) == recorded.path.parent.name
    assert first["traceId"] != moved["traceId"] and first["spanId"] != moved["spanId"]
    assert first["name"] == moved["name"]


def test_a_killed_runs_open_spans_end_at_its_last_event(recorded, tmp_path):
    lines = recorded.path.read_text().splitlines()
    # Killed in the middle of the fan-out: no program.end, turn.end or run.end.
    cut = next(i for i, line in enumerate(lines) if '"type": "call.end"' in line and '"t2.c6"' in line)
    killed = tmp_path / "killed" / "transcript.jsonl"
    killed.parent.mkdir()
    killed.write_text("\n".join(lines[:cut]) + "\n")
    t = Transcript.load(killed)
    tree = exported_tree(otlp_json(t))
    last = round(t.ended * 1e9)
    for span in ("run", "t2", "t2.program", "t2.m1", "t2.c6"):
        assert tree[span]["attributes"]["ptcrun.status"] == "unfinished"
        assert tree[span]["end"] == last
        assert tree[span]["status"] is None  # unfinished is not an error: nobody knows how it ended
    assert tree["t1"]["attributes"]["ptcrun.status"] == "ok"


def test_cli_exports_otlp_json_to_the_run_folder_or_stdout(recorded):
    code, out, _ = run_cli(["export", str(recorded.path), "--format", "otlp-json"])
    assert code == 0
    written = Path(out.strip())
    assert written == recorded.path.parent / "trace.otlp.json"
    body = json.loads(written.read_text())
    assert body["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"] == "ptcrun"
    code, out, _ = run_cli(["export", str(recorded.path), "--format", "otlp-json", "-o", "-"])
    assert code == 0 and json.loads(out) == body


def test_cli_names_the_formats_it_knows(recorded):
    code, _, err = run_cli(["export", str(recorded.path), "--format", "otlp"])
    assert code == 2
    assert "chrome" in err and "otlp-json" in err
