"""The offline worker of the staged workflow: each step's task done by rule.

It stands in for the model behind ``tool.worker`` when the example runs offline. The step is
recognised from its instruction (see ``workflow.json``): the three list steps read changelog
entries (``#812 feat(export): ...``); the writing steps read the JSON of the steps they depend
on and write release notes, an upgrade guide or an announcement from it.

Also usable as ``--worker scripted:examples/staged_workflow/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

_ENTRY = re.compile(r"^#(?P<pr>\d+) (?P<type>\w+)(?:\((?P<scope>[\w-]+)\))?(?P<bang>!)?: (?P<title>.+)$")


def entries(changelog: str) -> list[dict[str, Any]]:
    out = []
    for line in changelog.splitlines():
        match = _ENTRY.match(line.strip())
        if match:
            out.append({**match.groupdict(), "pr": int(match["pr"]), "breaking": bool(match["bang"])})
    return out


def _items(changelog: str, keep) -> dict[str, Any]:
    return {"items": [{"pr": e["pr"], "title": e["title"]} for e in entries(changelog) if keep(e)]}


def _inputs(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _list(inputs: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = inputs.get(name)
    return value.get("items", []) if isinstance(value, dict) else []


def release_notes(inputs: dict[str, Any]) -> dict[str, str]:
    sections = [("Breaking changes", "breaking"), ("New features", "features"), ("Fixes", "fixes")]
    parts = []
    for title, name in sections:
        items = _list(inputs, name)
        if items:
            parts.append(f"## {title}\n" + "\n".join(f"- {i['title']} (#{i['pr']})" for i in items))
    return {"text": "\n\n".join(parts)}


def upgrade_guide(inputs: dict[str, Any]) -> dict[str, list[str]]:
    return {"steps": [f"Check your use of: {i['title']} (#{i['pr']})" for i in _list(inputs, "breaking")]}


def faq(inputs: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    steps = (inputs.get("upgrade_guide") or {}).get("steps", [])
    entries = []
    for step in steps:
        number = re.search(r"#\d+", step)
        what = step.removeprefix("Check your use of: ")
        entries.append({
            "question": f"What changes for me with {number.group(0) if number else 'this release'}?",
            "answer": f"{what}. Update your code before upgrading.",
        })
    return {"entries": entries}


def announcement(inputs: dict[str, Any]) -> dict[str, str]:
    notes = (inputs.get("release_notes") or {}).get("text", "")
    counts = {}
    for section in re.split(r"^## ", notes, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        counts[title.strip()] = sum(1 for line in body.splitlines() if line.startswith("- "))
    features, fixes, breaking = (counts.get(k, 0) for k in ("New features", "Fixes", "Breaking changes"))
    return {
        "text": f"Version 2.4.0 is out, with {features} new features, {fixes} fixes and "
        f"{breaking} breaking changes. Read the release notes and the upgrade guide before you upgrade."
    }


def respond(request: Any) -> str:
    """Answer one worker request of the workflow."""
    prompt = read_worker_prompt(request)
    instruction = prompt.instruction.lower()
    if "release notes" in instruction and "announcement" not in instruction:
        return json.dumps(release_notes(_inputs(prompt.text)))
    if "faq" in instruction:
        return json.dumps(faq(_inputs(prompt.text)))
    if "upgrade guide" in instruction:
        return json.dumps(upgrade_guide(_inputs(prompt.text)))
    if "announcement" in instruction:
        return json.dumps(announcement(_inputs(prompt.text)))
    if "new features" in instruction:
        return json.dumps(_items(prompt.text, lambda e: e["type"] == "feat"))
    if "bug fixes" in instruction:
        return json.dumps(_items(prompt.text, lambda e: e["type"] == "fix"))
    if "breaking changes" in instruction:
        return json.dumps(_items(prompt.text, lambda e: e["breaking"]))
    return json.dumps({"text": ""})
