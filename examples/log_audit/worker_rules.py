"""The offline worker of the log audit: finds incidents in a chunk by pattern, as a model would.

It stands in for the small model behind ``tool.worker`` when the example runs offline. It reads
the worker prompt the runtime renders (instruction, then the chunk between ``<text>`` tags),
finds the records that start an incident (a numbered line at level ERROR, CRITICAL or FATAL
whose message matches one of the five kinds) and answers with the JSON the program's schema
asks for. Continuation lines of a stack trace whose first record is not in the chunk are not
incidents of their own, and are skipped, as the instruction asks.

Also usable as ``--worker scripted:examples/log_audit/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

_RECORD = re.compile(
    r"^\s*(?P<line>\d+)\| (?P<stamp>\d{4}-\d\d-\d\dT[\d:.]+Z) "
    r"(?P<level>DEBUG|INFO|WARN|ERROR|CRITICAL|FATAL) \[(?P<service>[\w-]+)\] (?P<message>.*)$"
)
_INCIDENT_LEVELS = {"ERROR", "CRITICAL", "FATAL"}
# The first matching rule names the kind; a record that matches none (a declined card) is not
# an incident.
_KINDS = (
    ("oom", re.compile(r"OutOfMemoryError")),
    ("db_timeout", re.compile(r"database connection timeout|connection .* timed out", re.IGNORECASE)),
    ("auth_failure", re.compile(r"authentication failed", re.IGNORECASE)),
    ("disk_full", re.compile(r"No space left on device", re.IGNORECASE)),
    ("segfault", re.compile(r"Segmentation fault|SIGSEGV|signal 11")),
)
_SUMMARY_CHARS = 90
_REQUEST_ID = re.compile(r" req=\w+$")


def find_incidents(text: str) -> list[dict[str, Any]]:
    """Every incident whose first record is in ``text``: line, kind and a one-line summary."""
    found = []
    for raw in text.splitlines():
        match = _RECORD.match(raw)
        if match is None or match["level"] not in _INCIDENT_LEVELS:
            continue
        message = match["message"]
        kind = next((name for name, rule in _KINDS if rule.search(message)), None)
        if kind is None:
            continue
        summary = f"{match['service']}: {_REQUEST_ID.sub('', message)}"
        found.append({"line": int(match["line"]), "kind": kind, "summary": summary[:_SUMMARY_CHARS]})
    return found


def respond(request: Any) -> str:
    """Answer one worker request of the log audit."""
    prompt = read_worker_prompt(request)
    incidents = find_incidents(prompt.text)
    schema = prompt.schema or {}
    # Answer in the shape the program asked for: a bare array, or an object holding one.
    if schema.get("type") == "array":
        return json.dumps(incidents)
    key = next(iter(schema.get("required", []) or ["incidents"]))
    return json.dumps({key: incidents})
