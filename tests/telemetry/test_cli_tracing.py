"""The CLI is traced the documented way: ``opentelemetry-instrument ptcrun run ...``, configured by
OpenTelemetry's own environment variables (here: spans printed to stdout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..runtime.providers.fakeservers import FakeServer, anthropic_message

PROGRAM = "Counting.\n```python\nprint(len(data))\ndone(1)\n```"


def printed_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed, each a JSON object over several lines."""
    decoder = json.JSONDecoder()
    spans, at = [], text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and "context" in value:
            spans.append(value)
        at = text.find("{", end)
    return spans


def test_opentelemetry_instrument_traces_a_cli_run(tmp_path):
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument is not None, "the otel extra (in dev) installs opentelemetry-distro"
    corpus = tmp_path / "log.txt"
    corpus.write_text("ERROR a\nINFO b\n")
    with FakeServer() as api:
        api.queue(anthropic_message(PROGRAM, input_tokens=900, output_tokens=60))
        env = {
            **os.environ, "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api.url,
            "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "audit-job",
        }
        done = subprocess.run(
            [instrument, str(Path(sys.executable).parent / "ptcrun"), "run", "--goal", "Count.", "--quiet",
             "--out", str(tmp_path / "runs"), str(corpus)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
    assert done.returncode == 0, done.stderr
    spans = {s["name"]: s for s in printed_spans(done.stdout)}
    assert {"invoke_agent ptcrun", "turn", "chat claude-sonnet-4-6", "program",
            "anthropic.messages.create"} <= set(spans)
    chat, sdk = spans["chat claude-sonnet-4-6"], spans["anthropic.messages.create"]
    assert sdk["parent_id"] == chat["context"]["span_id"]
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 900
    assert spans["invoke_agent ptcrun"]["resource"]["attributes"]["service.name"] == "audit-job"
