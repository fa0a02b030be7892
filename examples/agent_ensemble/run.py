"""An ensemble of specialist reviewers (seeds 002 and 004): same input, in parallel, then a synthesis.

Four specialists (security, performance, reliability, tests) review the same pull request at
the same time with ``pcalls``; one more worker call combines their findings into a verdict. To
show what running them together buys, the run is repeated with ``Limits(max_concurrency=1)``,
which makes the same program call the same specialists one after the other, and the two times
are compared (``--no-baseline`` skips the second run).

Usage::

    python examples/agent_ensemble/run.py             # offline without ANTHROPIC_API_KEY
    python examples/agent_ensemble/run.py --no-baseline
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common  # examples/ is not a package

import ptcrun

worker_rules = _common.load_module(HERE / "worker_rules.py")

GOAL = (HERE / "goal.md").read_text(encoding="utf-8")
PROGRAMS = HERE / "programs"
PULL_REQUEST = _common.number_lines((HERE / "pull_request.diff").read_text(encoding="utf-8"))
TRUTH = json.loads((HERE / "ground_truth.json").read_text(encoding="utf-8"))

_FINDING = {
    "type": "object",
    "properties": {"line": {"type": "integer"}, "severity": {"enum": ["high", "medium", "low"]}, "issue": {"type": "string"}},
    "required": ["line", "issue"],
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["approve", "comment", "request_changes"]},
        "summary": {"type": "string"},
        "findings": {"type": "object", "additionalProperties": {"type": "array", "items": _FINDING}},
        "failed": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["verdict", "summary", "findings"],
}


@attrs.frozen
class Outcome:
    """One run of the ensemble and how long its specialists took."""

    result: Any
    events: _common.EventLog
    #: wall seconds of the fan-out that ran the specialists
    specialists_seconds: float
    #: seconds each specialist's call took
    agent_seconds: tuple[float, ...]
    concurrency: int


def run_ensemble(
    *,
    providers: _common.Providers,
    max_concurrency: int = 16,
    transcript_dir: Path | None = Path("runs"),
) -> Outcome:
    """Review the pull request; ``max_concurrency=1`` runs the specialists one after the other."""
    events = _common.EventLog()
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=providers.worker,
        limits=ptcrun.Limits(max_tokens=150_000, max_concurrency=max_concurrency),
        transcript_dir=transcript_dir,
        observers=[events],
    )
    result = runtime.run(GOAL, [PULL_REQUEST], schema=ANSWER_SCHEMA)
    fanouts = events.fanouts()
    if not fanouts:
        return Outcome(result, events, 0.0, (), max_concurrency)
    specialists = max(fanouts, key=lambda f: f["total"] or 0)
    agents = tuple(events.llm_seconds_within(specialists["span"]))
    return Outcome(result, events, specialists["seconds"], agents, max_concurrency)


def expected_findings() -> list[dict[str, Any]]:
    """The ground truth with line numbers: each expected finding at the line holding its marker."""
    lines = PULL_REQUEST.splitlines()
    out = []
    for finding in TRUTH["findings"]:
        number = next(i for i, line in enumerate(lines, 1) if finding["line_contains"] in line)
        out.append({**finding, "line": number})
    return out


def missing_findings(answer: Any) -> list[dict[str, Any]]:
    """The expected findings the answer lacks (same specialist, same line)."""
    findings = answer.get("findings", {}) if isinstance(answer, dict) else {}
    return [
        f
        for f in expected_findings()
        if not any(g.get("line") == f["line"] for g in findings.get(f["specialist"], []))
    ]


def report(parallel: Outcome, sequential: Outcome | None) -> None:
    result = parallel.result
    print(f"\nrun ended: {result.status}" + (f" ({result.error})" if result.error else ""))
    answer = result.answer if isinstance(result.answer, dict) else {}
    findings = answer.get("findings", {})
    lines = []
    for name, items in findings.items():
        lines.append(f"{name:<12} {len(items)} finding{'s' * (len(items) != 1)}")
        lines += [f"    line {f.get('line'):>3} [{f.get('severity')}] {f.get('issue', '')[:90]}" for f in items]
    lines += [f"{name:<12} FAILED" for name in answer.get("failed", [])]
    _common.print_block("Specialists", lines)
    _common.print_block("Synthesis", [f"verdict: {answer.get('verdict')}", *_wrap(answer.get("summary", ""))])
    missing = missing_findings(answer)
    expected = expected_findings()
    _common.print_block(
        "Against the ground truth",
        [
            f"{len(expected) - len(missing)} of {len(expected)} expected findings reported by the right specialist",
            *(f"missed: {m['specialist']} at line {m['line']}" for m in missing),
            f"verdict {answer.get('verdict')}, expected {TRUTH['verdict']}",
        ],
    )
    speed = [f"{len(parallel.agent_seconds)} specialists together (pcalls): {parallel.specialists_seconds:.2f} s"]
    if parallel.specialists_seconds:
        estimate = sum(parallel.agent_seconds) / parallel.specialists_seconds
        speed.append(f"estimated speed-up from this run (sum of their times / wall): {estimate:.1f}x")
    if sequential is not None and sequential.specialists_seconds:
        speed += [
            (
                "the same specialists one after the other (second run, Limits(max_concurrency=1)): "
                f"{sequential.specialists_seconds:.2f} s"
            ),
            f"measured speed-up: {sequential.specialists_seconds / parallel.specialists_seconds:.1f}x",
        ]
    _common.print_block("Parallel against one after the other", speed)
    _common.print_block("Run", [*_common.usage_lines(result), *_common.transcript_lines(result)])


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Review a pull request with an ensemble of specialists.")
    parser.add_argument("--no-baseline", action="store_true", help="skip the second run that calls the specialists one by one")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)

    def providers() -> _common.Providers:
        # A fresh pair per run: the scripted planner replays its programs from the first.
        return _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)

    first = providers()
    print(first.describe())
    parallel = run_ensemble(providers=first, transcript_dir=args.transcripts)
    sequential = None
    if not args.no_baseline and parallel.result.status == "done":
        print("running again with Limits(max_concurrency=1) to time the specialists one after the other ...")
        sequential = run_ensemble(providers=providers(), max_concurrency=1, transcript_dir=args.transcripts)
    report(parallel, sequential)
    return 0 if parallel.result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
