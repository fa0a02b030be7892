"""The offline workers of the ensemble: four specialist reviewers and a synthesis, by rule.

They stand in for the model behind ``tool.worker`` when the example runs offline. The
instruction says which specialist is asked (security, performance, reliability, tests) or that
findings are to be combined into a verdict; each specialist reads the numbered diff and reports
what its rules find, as ``{"findings": [{"line", "severity", "issue"}]}``; the synthesis reads
the specialists' findings (JSON) and answers ``{"verdict", "summary", "priorities"}``.

Also usable as ``--worker scripted:examples/agent_ensemble/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

Finding = dict[str, Any]
_NUMBERED = re.compile(r"^\s*(\d+)\| ?(.*)$")
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _lines(text: str) -> list[tuple[int, str]]:
    out = []
    for raw in text.splitlines():
        match = _NUMBERED.match(raw)
        if match:
            out.append((int(match.group(1)), match.group(2)))
    return out


def _added(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The lines the diff adds, without their ``+``."""
    return [(n, code[1:]) for n, code in lines if code.startswith("+") and not code.startswith("+++")]


def security(lines: list[tuple[int, str]]) -> list[Finding]:
    found = []
    for n, code in _added(lines):
        if re.search(r"execute\(\s*f[\"']", code):
            found.append({"line": n, "severity": "high", "issue": "SQL built with an f-string from customer_id: SQL injection; pass parameters"})
        if re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\s*=\s*[\"'][^\"']{12,}[\"']", code):
            found.append({"line": n, "severity": "high", "issue": "credential committed in source; load it from the environment or a secret store"})
    return found


def performance(lines: list[tuple[int, str]]) -> list[Finding]:
    found = []
    loop_indent: int | None = None
    for n, code in _added(lines):
        indent = len(code) - len(code.lstrip())
        if loop_indent is not None and code.strip() and indent <= loop_indent:
            loop_indent = None
        if re.match(r"\s*for .+ in .+:\s*$", code):
            loop_indent = indent
        elif loop_indent is not None and re.search(r"\.execute\(", code):
            found.append({"line": n, "severity": "medium", "issue": "one query per order inside the loop (N+1); fetch the items of all orders in one query"})
    return found


def reliability(lines: list[tuple[int, str]]) -> list[Finding]:
    found = []
    added = _added(lines)
    for i, (n, code) in enumerate(added):
        if re.match(r"\s*except( Exception)?:\s*$", code) and i + 1 < len(added) and added[i + 1][1].strip() == "pass":
            found.append({"line": n, "severity": "medium", "issue": "the exception is swallowed: a failed CRM call leaves no trace; log it"})
        call = re.search(r"requests\.(get|post|put|delete)\(", code)
        if call:
            # The call may run over several lines: read on until its parentheses close.
            whole, j = code[call.start() :], i
            while whole.count("(") > whole.count(")") and j + 1 < len(added):
                j += 1
                whole += added[j][1]
            if "timeout=" not in whole:
                found.append({"line": n, "severity": "medium", "issue": "HTTP call without a timeout can hang the request; pass timeout="})
    return found


def tests(lines: list[tuple[int, str]]) -> list[Finding]:
    files = [(n, m.group(1)) for n, code in lines if (m := re.match(r"diff --git a/(\S+) b/", code))]
    if any("test" in path for _, path in files):
        return []
    return [
        {"line": n, "severity": "medium", "issue": f"{path} changes with no test added or changed"}
        for n, path in files
        if path.endswith(".py")
    ][:1]  # the new module is the one that matters; one finding says it


SPECIALISTS: dict[str, Callable[[list[tuple[int, str]]], list[Finding]]] = {
    "security": security,
    "performance": performance,
    "reliability": reliability,
    "tests": tests,
}


def synthesise(findings: dict[str, list[Finding]]) -> dict[str, Any]:
    """A verdict from the specialists' findings: any high-severity one requests changes."""
    priorities = sorted(
        ({"specialist": name, **f} for name, items in findings.items() for f in items),
        key=lambda f: (_SEVERITY_ORDER.get(f.get("severity"), 3), f.get("line", 0)),
    )
    highs = [f for f in priorities if f.get("severity") == "high"]
    verdict = "request_changes" if highs else ("comment" if priorities else "approve")
    counts = {s: sum(f.get("severity") == s for f in priorities) for s in ("high", "medium", "low")}
    summary = (
        f"{len(priorities)} findings ({counts['high']} high, {counts['medium']} medium, {counts['low']} low). "
        + (f"Fix first: {'; '.join(f['issue'] for f in highs)}." if highs else "Nothing blocks the merge.")
    )
    return {"verdict": verdict, "summary": summary, "priorities": priorities}


def respond(request: Any) -> str:
    """Answer one worker request of the ensemble."""
    prompt = read_worker_prompt(request)
    instruction = prompt.instruction.lower()
    if "verdict" in instruction:
        try:
            findings = json.loads(prompt.text)
        except json.JSONDecodeError:
            findings = {}
        return json.dumps(synthesise(findings if isinstance(findings, dict) else {}))
    # The specialist named first in the instruction is the one asked.
    named = [(instruction.find(name), name) for name in SPECIALISTS if name in instruction]
    if not named:
        return json.dumps({"findings": []})
    review = SPECIALISTS[min(named)[1]]
    return json.dumps({"findings": review(_lines(prompt.text))})
