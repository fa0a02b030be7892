"""A staged workflow (seed 003): steps with depends_on, each started as soon as its inputs are ready.

``workflow.json`` lists the steps of writing the documents of a release from its changelog:
three lists (features, fixes, breaking changes), then release notes (after all three), an
upgrade guide (after the breaking changes only), FAQ entries (after the guide) and an
announcement (after the notes). Its
``execution`` block holds the settings: ``parallel`` (false runs one step at a time, in
dependency order, for debugging), ``max_workers`` and ``timeout_per_step``.

The scheduler is not a builtin: it is the planner's program (``programs/turn2.py``), written with
``pmap``. See the README for why.

Usage::

    python examples/staged_workflow/run.py                         # offline without ANTHROPIC_API_KEY
    python examples/staged_workflow/run.py --sequential            # one step at a time
    python examples/staged_workflow/run.py --slow breaking=5 --step-timeout 2   # a step times out
    python examples/staged_workflow/run.py --workflow examples/staged_workflow/workflow_cycle.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common  # examples/ is not a package

import ptcrun

worker_rules = _common.load_module(HERE / "worker_rules.py")

GOAL = (HERE / "goal.md").read_text(encoding="utf-8")
PROGRAMS = HERE / "programs"
WORKFLOW = HERE / "workflow.json"
CHANGELOG = (HERE / "changelog.txt").read_text(encoding="utf-8")
TRUTH = json.loads((HERE / "ground_truth.json").read_text(encoding="utf-8"))

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["parallel", "sequential"]},
        "order": {"type": "array", "items": {"type": "string"}},
        "steps": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"status": {"enum": ["done", "failed", "timeout", "skipped"]}},
                "required": ["status"],
            },
        },
    },
    "required": ["order", "steps"],
}


def load_workflow(
    path: Path = WORKFLOW,
    *,
    sequential: bool = False,
    step_timeout: float | None = None,
    max_workers: int | None = None,
) -> dict[str, Any]:
    """Read a workflow file and apply the command line's overrides to its ``execution``."""
    workflow = json.loads(Path(path).read_text(encoding="utf-8"))
    execution = workflow.setdefault("execution", {})
    if sequential:
        execution["parallel"] = False
    if step_timeout is not None:
        execution["timeout_per_step"] = step_timeout
    if max_workers is not None:
        execution["max_workers"] = max_workers
    return workflow


class SlowSteps:
    """A provider that makes some steps' worker calls slower, to show the per-step timeout.

    The step is recognised by its instruction. The extra wait is a ``trio.sleep``, so the
    step's clock cancels it like a slow model's reply.
    """

    def __init__(self, inner: Any, workflow: Mapping[str, Any], delays: Mapping[str, float]) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.price = inner.price
        self._delays = {s["instruction"]: delays[s["id"]] for s in workflow["steps"] if s["id"] in delays}

    async def complete(self, request: Any) -> Any:
        delay = self._delays.get(_common.read_worker_prompt(request).instruction, 0.0)
        if delay:
            await trio.sleep(delay)
        return await self.inner.complete(request)


@attrs.frozen
class Outcome:
    result: Any
    events: _common.EventLog
    workflow: dict[str, Any]

    def step_spans(self) -> dict[str, tuple[float, float]]:
        """When each step's worker call started and ended, in seconds from the run's start."""
        by_instruction = {s["instruction"]: s["id"] for s in self.workflow["steps"]}
        step_of_call = {}
        for event in self.events.of_type("call.start"):
            args = event.get("args") or []
            instruction = args[1] if len(args) > 1 else (event.get("kwargs") or {}).get("instruction")
            if instruction in by_instruction:
                step_of_call[event["span"]] = by_instruction[instruction]
        origin = self.events.events[0]["ts"] if self.events.events else 0.0
        starts: dict[str, float] = {}
        spans: dict[str, tuple[float, float]] = {}
        for event in self.events.events:
            step = step_of_call.get(event.get("parent"))
            if step is None or event.get("role") != "worker":
                continue
            if event["type"] == "llm.start":
                starts.setdefault(step, event["ts"] - origin)
            elif event["type"] == "llm.end" and step in starts:
                spans[step] = (starts[step], event["ts"] - origin)
        return spans


def run_workflow(
    workflow: dict[str, Any],
    *,
    providers: _common.Providers,
    slow: Mapping[str, float] | None = None,
    transcript_dir: Path | None = Path("runs"),
) -> Outcome:
    """Run the workflow over the changelog."""
    events = _common.EventLog()
    worker = SlowSteps(providers.worker, workflow, slow) if slow else providers.worker
    execution = workflow.get("execution", {})
    limits = ptcrun.Limits(max_tokens=100_000, max_concurrency=int(execution.get("max_workers", 16)))
    runtime = ptcrun.Runtime(
        planner=providers.planner, worker=worker, limits=limits, transcript_dir=transcript_dir, observers=[events]
    )
    data = {"workflow": [json.dumps(workflow, indent=2)], "document": [CHANGELOG]}
    result = runtime.run(GOAL, data, schema=ANSWER_SCHEMA)
    return Outcome(result, events, workflow)


def problems(answer: Any) -> list[str]:
    """Where the workflow's outputs differ from the ground truth."""
    steps = answer.get("steps", {}) if isinstance(answer, dict) else {}
    out = []

    def output(step: str) -> Any:
        entry = steps.get(step) or {}
        if entry.get("status") != "done":
            out.append(f"{step} is {entry.get('status')}")
            return None
        return entry.get("output")

    for name in ("features", "fixes", "breaking"):
        got = output(name)
        if got is not None:
            prs = sorted(i.get("pr") for i in got.get("items", []))
            if prs != TRUTH[name]:
                out.append(f"{name}: {prs}, expected {TRUTH[name]}")
    notes = output("release_notes")
    if notes is not None:
        wanted = set(TRUTH["features"] + TRUTH["fixes"])
        out += [f"release notes lack #{pr}" for pr in sorted(wanted) if f"#{pr}" not in notes.get("text", "")]
    guide = output("upgrade_guide")
    if guide is not None:
        text = " ".join(guide.get("steps", []))
        out += [f"upgrade guide lacks #{pr}" for pr in TRUTH["breaking"] if f"#{pr}" not in text]
    entries = output("faq")
    if entries is not None:
        text = json.dumps(entries.get("entries", []))
        out += [f"FAQ lacks #{pr}" for pr in TRUTH["faq_mentions"] if f"#{pr}" not in text]
    news = output("announcement")
    if news is not None:
        out += [f"announcement lacks '{m}'" for m in TRUTH["announcement_mentions"] if m not in news.get("text", "")]
    return out


def critical_path(workflow: Mapping[str, Any], seconds: Mapping[str, float]) -> float:
    """The longest chain of step durations through the dependencies: the best any schedule can do."""
    steps = {s["id"]: s for s in workflow["steps"]}
    finish: dict[str, float] = {}

    def end(step: str) -> float:
        if step not in finish:
            finish[step] = seconds.get(step, 0.0) + max((end(d) for d in steps[step]["depends_on"]), default=0.0)
        return finish[step]

    return max((end(s) for s in steps), default=0.0)


def waves(workflow: Mapping[str, Any], seconds: Mapping[str, float]) -> float:
    """How long running level by level would take: each level waits for the slowest step of the
    level before it (a step's level is one more than its deepest dependency's)."""
    steps = {s["id"]: s for s in workflow["steps"]}
    level: dict[str, int] = {}

    def depth(step: str) -> int:
        if step not in level:
            level[step] = 1 + max((depth(d) for d in steps[step]["depends_on"]), default=-1)
        return level[step]

    by_level: dict[int, float] = {}
    for step in steps:
        by_level[depth(step)] = max(by_level.get(depth(step), 0.0), seconds.get(step, 0.0))
    return sum(by_level.values())


def gantt(spans: Mapping[str, tuple[float, float]], order: Sequence[str], width: int = 48) -> list[str]:
    if not spans:
        return []
    first = min(a for a, _ in spans.values())
    total = max(b for _, b in spans.values()) - first or 1.0
    lines = []
    for step in order:
        if step not in spans:
            lines.append(f"{step:<14} |{' ' * width}| (did not run)")
            continue
        a, b = spans[step]
        left = round((a - first) / total * width)
        right = max(round((b - first) / total * width), left + 1)
        bar = " " * left + "#" * (right - left) + " " * (width - right)
        lines.append(f"{step:<14} |{bar}| {a - first:5.2f} - {b - first:5.2f} s")
    return lines


def report(outcome: Outcome) -> None:
    result = outcome.result
    print(f"\nrun ended: {result.status}" + (f": {result.answer}" if result.status == "failed" else "") + (f" ({result.error})" if result.error else ""))
    if result.status != "done":
        calls = result.usage.worker_calls
        print(f"worker calls made: {calls}" + (" (the check ran before any step)" if calls == 0 else ""))
        _common.print_block("Run", [*_common.usage_lines(result), *_common.transcript_lines(result)])
        return
    answer = result.answer
    steps = answer["steps"]
    lines = []
    for step in answer["order"]:
        entry = steps[step]
        detail = entry.get("error") or entry.get("because") or ""
        lines.append(f"{step:<14} {entry['status']:<8} {detail}"[:110])
    _common.print_block(f"Steps ({answer.get('mode')})", lines)
    spans = outcome.step_spans()
    _common.print_block("When each step ran", gantt(spans, answer["order"]))
    durations = {step: b - a for step, (a, b) in spans.items()}
    if spans:
        wall = max(b for _, b in spans.values()) - min(a for a, _ in spans.values())
        path = critical_path(outcome.workflow, durations)
        _common.print_block(
            "Time",
            [
                f"workflow: {wall:.2f} s",
                f"critical path (the longest chain of steps, the best any schedule can do): {path:.2f} s",
                f"level by level, each level waiting for the slowest step of the one before: {waves(outcome.workflow, durations):.2f} s",
                f"all steps one after the other: {sum(durations.values()):.2f} s",
            ],
        )
    outputs = []
    for step, key in (("release_notes", "text"), ("upgrade_guide", "steps"), ("faq", "entries"), ("announcement", "text")):
        entry = steps.get(step, {})
        if entry.get("status") == "done":
            value = entry["output"].get(key)
            if isinstance(value, list):
                text = "\n".join(f"{v.get('question')} {v.get('answer')}" if isinstance(v, dict) else str(v) for v in value)
            else:
                text = str(value)
            outputs += [f"[{step}]", *(f"  {line}" for line in text.splitlines())]
    _common.print_block("Outputs", outputs)
    wrong = problems(answer)
    _common.print_block("Against the ground truth", wrong or ["every output matches"])
    _common.print_block("Run", [*_common.usage_lines(result), *_common.transcript_lines(result)])


def _slow(text: str) -> tuple[str, float]:
    step, _, seconds = text.partition("=")
    try:
        return step, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slow takes STEP=SECONDS, e.g. breaking=5; got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a workflow of dependent steps.")
    parser.add_argument("--workflow", type=Path, default=WORKFLOW, help="the workflow file (default workflow.json)")
    parser.add_argument("--sequential", action="store_true", help="one step at a time, in dependency order (for debugging)")
    parser.add_argument("--step-timeout", type=float, help="seconds each step may take (overrides timeout_per_step)")
    parser.add_argument("--max-workers", type=int, help="worker calls at once (overrides max_workers)")
    parser.add_argument("--slow", type=_slow, action="append", default=[], metavar="STEP=SECONDS", help="make a step's worker call slower by SECONDS")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)
    workflow = load_workflow(args.workflow, sequential=args.sequential, step_timeout=args.step_timeout, max_workers=args.max_workers)
    providers = _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)
    print(providers.describe())
    print(f"workflow: {workflow['name']} ({len(workflow['steps'])} steps); execution: {json.dumps(workflow['execution'])}")
    outcome = run_workflow(workflow, providers=providers, slow=dict(args.slow), transcript_dir=args.transcripts)
    report(outcome)
    return 0 if outcome.result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
