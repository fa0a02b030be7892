"""A staged workflow (the fourth seed job): steps with ``depends_on``, each started when its inputs
are ready; a cycle is refused before anything runs.

``data["workflow"]`` holds the workflow as JSON, ``data["document"]`` a changelog the first steps
read. Later steps work on the JSON of their dependencies' outputs. The rule-based worker does
each step's job by its instruction.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from ._task import Case, Score, Task, when_done
from ._text import rng
from ._worker import Prompt, rule_worker

__all__ = ["TASKS"]

_STEPS = {
    "versions": ([], "List every version number in this changelog, newest first.",
                 {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
                  "required": ["items"]}),
    "breaking": ([], "List the version numbers that have a BREAKING entry.",
                 {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
                  "required": ["items"]}),
    "dates": ([], ("Give the release date of every version: an object `dates` from version number to date "
              "(YYYY-MM-DD)."), {"type": "object", "required": ["dates"]}),
    "latest": (["versions", "dates"], ("From the versions (newest first) and their dates, give the newest "
               "version and its release date."),
               {"type": "object", "properties": {"version": {"type": "string"}, "date": {"type": "string"}},
                "required": ["version", "date"]}),
    "report": (["latest", "breaking"], ("Say whether the newest version has breaking changes: give its "
               "version, its date, and `breaking` (true or false)."),
               {"type": "object", "required": ["version", "date", "breaking"]}),
}
_ENTRIES = ("feat: add export to CSV", "fix: crash on an empty cart", "feat: dark mode", "fix: slow search",
            "docs: a guide to webhooks", "fix: wrong totals in invoices", "feat: bulk edit of prices")


def _changelog(r: random.Random) -> tuple[str, list[tuple[str, str, bool]]]:
    major, minor, patch = 2, r.randint(2, 6), 0
    releases = []
    day = 0
    for _ in range(r.randint(5, 9)):
        day += r.randint(9, 40)
        patch += 1 if r.random() < 0.5 else 0
        if r.random() < 0.5:
            minor, patch = minor + 1, 0
        month, dom = 1 + (day // 28) % 12, 1 + day % 28
        releases.append((f"{major}.{minor}.{patch}", f"2024-{month:02d}-{dom:02d}", r.random() < 0.35))
    releases = list({v: (v, d, b) for v, d, b in releases}.values())[::-1]  # newest first
    lines = ["# Changelog", ""]
    for version, date, breaking in releases:
        lines.append(f"## {version} ({date})")
        lines += [f"- {e} (#{r.randint(100, 999)})" for e in r.sample(_ENTRIES, 2)]
        if breaking:
            lines.append(f"- BREAKING: remove the v{r.randint(1, 3)} endpoints (#{r.randint(100, 999)})")
        lines.append("")
    return "\n".join(lines), releases


_RELEASE = re.compile(r"^## (\S+) \((\d{4}-\d\d-\d\d)\)$", re.MULTILINE)


def _worker(prompt: Prompt) -> Any:
    text, ask = prompt.text, prompt.instruction
    if ask.startswith("List every version"):
        return {"items": [m.group(1) for m in _RELEASE.finditer(text)]}
    if ask.startswith("List the version numbers that have a BREAKING"):
        parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
        return {"items": [p.split()[0] for p in parts if "BREAKING:" in p]}
    if ask.startswith("Give the release date"):
        return {"dates": {m.group(1): m.group(2) for m in _RELEASE.finditer(text)}}
    inputs = json.loads(text)
    if ask.startswith("From the versions"):
        newest = inputs["versions"]["items"][0]
        return {"version": newest, "date": inputs["dates"]["dates"][newest]}
    latest = inputs["latest"]
    return {"version": latest["version"], "date": latest["date"],
            "breaking": latest["version"] in inputs["breaking"]["items"]}


WORKER = rule_worker(_worker)

_REFERENCE = '''import json

workflow = json.loads(data["workflow"][0])
document = data["document"][0]
steps = {step["id"]: step for step in workflow["steps"]}
settings = workflow.get("execution", {})
STEP_TIMEOUT = settings.get("timeout_per_step", 60)

# Check the graph before anything runs: an unknown step or a cycle ends the run here.
for sid, step in steps.items():
    for dep in step["depends_on"]:
        if dep not in steps:
            fail(f"step {sid!r} depends on {dep!r}, which is not a step; nothing was run")
order = []
waiting = {sid: set(step["depends_on"]) for sid, step in steps.items()}
while True:
    ready = sorted(sid for sid, deps in waiting.items() if not deps)
    if not ready:
        break
    for sid in ready:
        order.append(sid)
        waiting.pop(sid)
        for deps in waiting.values():
            deps.discard(sid)
if waiting:
    node, path = min(waiting), []
    while node not in path:
        path.append(node)
        node = min(waiting[node])
    cycle = [*path[path.index(node):], node]
    fail("the workflow has a cycle: " + " -> ".join(cycle) + "; nothing was run")

dependents = {sid: [t for t in order if sid in steps[t]["depends_on"]] for sid in steps}
results = {}
claims = {}


def call(sid):
    step = steps[sid]
    deps = step["depends_on"]
    text = json.dumps({d: results[d]["output"] for d in deps}) if deps else document
    return tool.worker(text, step["instruction"], schema=step.get("schema"), max_tokens=600)


def execute(sid):
    broken = [d for d in steps[sid]["depends_on"] if results[d]["status"] != "done"]
    if broken:
        return {"status": "skipped", "because": f"{broken[0]} {results[broken[0]]['status']}"}
    got = pmap(call, [sid], timeout=STEP_TIMEOUT)[0]
    if isinstance(got, Failure):
        return {"status": "timeout" if got.kind == "TimeLimitExceeded" else "failed", "error": got.message}
    return {"status": "done", "output": got}


def run_step(sid):
    results[sid] = execute(sid)
    # Record, then claim: the last input to finish sees them all done, and setdefault lets
    # exactly one of the inputs that see it start the step.
    ready = [
        t for t in dependents[sid]
        if all(d in results for d in steps[t]["depends_on"]) and claims.setdefault(t, sid) == sid
    ]
    if ready:
        pmap(run_step, ready)


pmap(run_step, [sid for sid in order if not steps[sid]["depends_on"]])
for sid in order:
    print(sid, results[sid]["status"])
done({"order": order, "steps": {sid: results[sid] for sid in order}})
'''

_GOAL = (
    "Run the workflow in `data[\"workflow\"]` (one chunk of JSON) over the document in "
    "`data[\"document\"]`. Its `steps` each have an `id`, an `instruction` for a worker, a JSON "
    "`schema` for the worker's answer and `depends_on` (the ids of the steps whose outputs it "
    "needs); `execution` has `timeout_per_step` (seconds). A step with no dependencies works on the "
    "document; any other works on the JSON object of its dependencies' outputs, keyed by step id. "
    "Start each step as soon as all its dependencies are done. If the steps form a cycle, run "
    "nothing and fail, naming the steps of the cycle. Answer with an object: `order` (the step ids "
    "in a dependency order) and `steps` (step id to `{\"status\": \"done\", \"output\": ...}`)."
)


def _workflow(r: random.Random, cycle: bool) -> str:
    ids = list(_STEPS)
    r.shuffle(ids)
    steps = []
    for sid in ids:
        deps, instruction, schema = _STEPS[sid]
        deps = [*deps, "report"] if cycle and sid == "latest" else list(deps)
        steps.append({"id": sid, "depends_on": deps, "instruction": instruction, "schema": schema})
    return json.dumps({"name": "release notes", "execution": {"parallel": True, "timeout_per_step": 60},
                       "steps": steps}, indent=1)


def _valid_order(order: Any) -> bool:
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(_STEPS):
        return False
    seen: set[str] = set()
    for sid in order:
        if not set(_STEPS[sid][0]) <= seen:
            return False
        seen.add(sid)
    return True


def _run(seed: int, size: int) -> Case:
    r = rng("staged-workflow", seed, 0)
    document, releases = _changelog(r)
    version, date, breaking = releases[0]
    report = {"version": version, "date": date, "breaking": breaking}

    @when_done
    def check(answer: Any) -> Score:
        if not isinstance(answer, dict) or not isinstance(answer.get("steps"), dict):
            return Score(False, 0.0, "the answer has no steps")
        if not _valid_order(answer.get("order")):
            return Score(False, 0.3, f"order {answer.get('order')!r} is not a dependency order of every step")
        not_done = [s for s in _STEPS if (answer["steps"].get(s) or {}).get("status") != "done"]
        if not_done:
            return Score(False, 0.5, f"steps not done: {not_done}")
        got = answer["steps"]["report"].get("output")
        if not isinstance(got, dict) or {k: got.get(k) for k in report} != report:
            return Score(False, 0.7, f"report {got!r}, expected {report!r}")
        return Score(True, 1.0)

    done_steps = {s: {"status": "done", "output": None} for s in _STEPS}
    flipped = {**report, "breaking": not breaking}
    good = {**done_steps, "report": {"status": "done", "output": report}}
    return Case(
        goal=_GOAL,
        data={"workflow": [_workflow(r, cycle=False)], "document": [document]},
        schema={"type": "object", "required": ["order", "steps"]},
        check=check,
        reference=(_REFERENCE,),
        worker=WORKER,
        wrong=(
            ("done", {"order": ["report", "latest", "versions", "dates", "breaking"], "steps": good}),
            ("done", {"order": ["versions", "dates", "breaking", "latest", "report"],
                      "steps": {**good, "report": {"status": "done", "output": flipped}}}),
            ("done", {"order": ["versions", "dates", "breaking", "latest", "report"],
                      "steps": {**good, "latest": {"status": "failed", "error": "x"}}}),
        ),
        truth=report,
    )


def _cycle(seed: int, size: int) -> Case:
    r = rng("staged-cycle", seed, 0)
    document, _ = _changelog(r)

    def check(status: str, answer: Any) -> Score:
        if status != "failed":
            return Score(False, 0.0, f"the run ended {status}; it should fail, naming the cycle")
        text = str(answer)
        if "cycle" in text.lower() and "latest" in text and "report" in text:
            return Score(True, 1.0)
        return Score(False, 0.5, f"the failure {text[:80]!r} does not name the cycle latest -> report")

    return Case(
        goal=_GOAL,
        data={"workflow": [_workflow(r, cycle=True)], "document": [document]},
        schema={"type": "object", "required": ["order", "steps"]},
        check=check,
        reference=(_REFERENCE,),
        worker=WORKER,
        wrong=(("done", {"order": list(_STEPS), "steps": {}}), ("failed", "a step failed")),
        truth="a cycle: latest -> report -> latest",
    )


_SEED = "seed 003: a multi-step workstream with depends_on, run in parallel"
TASKS = (
    Task("staged-workflow", "seed", "run five steps in dependency order, each as soon as it can start",
         _SEED, _run, scales=False),
    Task("staged-cycle", "seed", "refuse a workflow whose steps form a cycle, naming it", _SEED, _cycle,
         scales=False),
)
