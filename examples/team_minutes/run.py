"""Team minutes: one sub-run per document, and a top program that compares their reports.

``minutes.txt`` holds a year of meeting minutes of five teams, a dozen meetings each. The
question is per team (its decisions, its open action items) and then across teams (which made
the most decisions): the natural shape is recursive. The run's program starts one
``tool.agent`` sub-run per team, each over that team's document only and on a slice of the
budget; each sub-run's own program fans worker calls out over the team's meetings and adds up
what they found; the run's program compares the five reports.

Usage::

    python examples/team_minutes/run.py              # offline without ANTHROPIC_API_KEY
    python examples/team_minutes/run.py --slice 3000 # slices too small: every sub-run runs out
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common  # examples/ is not a package

import ptcrun

worker_rules = _common.load_module(HERE / "worker_rules.py")
minutes = _common.load_module(HERE / "generate.py")

GOAL = (HERE / "goal.md").read_text(encoding="utf-8")
PROGRAMS = HERE / "programs"
SUB_PROGRAMS = HERE / "sub_programs"
DOCUMENTS = minutes.read((HERE / "minutes.txt").read_text(encoding="utf-8"))
TRUTH = json.loads((HERE / "ground_truth.json").read_text(encoding="utf-8"))

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "decisions": {"type": "object", "additionalProperties": {"type": "integer"}},
        "open_actions": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "most_decisions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["decisions", "open_actions", "most_decisions"],
}


def run_minutes(
    *,
    providers: _common.Providers,
    slice_tokens: int | None = None,
    transcript_dir: Path | None = Path("runs"),
    limits: ptcrun.Limits | None = None,
) -> tuple[ptcrun.Result, _common.EventLog]:
    """Run the question over the five documents.

    Offline, the sub-runs' planner replays ``sub_programs/`` (the program a planner writes for
    one team); with a real planner, the same model writes the sub-runs' programs too.
    ``slice_tokens`` replaces the 40,000 tokens the top program gives each sub-run.
    """
    events = _common.EventLog()
    sub_planner = _common.scripted_planner(SUB_PROGRAMS) if providers.offline_planner else None
    planner = providers.planner
    if slice_tokens is not None and providers.offline_planner:
        replies = [r.replace("max_tokens=40_000", f"max_tokens={slice_tokens}") for r in _common.planner_replies(PROGRAMS)]
        planner = ptcrun.ScriptedProvider(replies, name="scripted-planner")
    runtime = ptcrun.Runtime(
        planner=planner,
        worker=providers.worker,
        sub_planner=sub_planner,
        limits=limits or ptcrun.Limits(max_tokens=400_000, max_concurrency=8, max_depth=1),
        transcript_dir=transcript_dir,
        observers=[events],
    )
    return runtime.run(GOAL, DOCUMENTS, schema=ANSWER_SCHEMA), events


def problems(answer: Any) -> list[str]:
    """Where the answer differs from the ground truth."""
    if not isinstance(answer, dict):
        return [f"no answer: {answer!r}"]
    out = []
    for team, n in TRUTH["decisions"].items():
        got = answer.get("decisions", {}).get(team)
        if got != n:
            out.append(f"{team}: {got} decisions, expected {n}")
        actions = answer.get("open_actions", {}).get(team)
        if actions != TRUTH["open_actions"][team]:
            out.append(f"{team}: open actions differ ({len(actions or [])} found, {len(TRUTH['open_actions'][team])} expected)")
    if answer.get("most_decisions") != TRUTH["most_decisions"]:
        out.append(f"most decisions: {answer.get('most_decisions')}, expected {TRUTH['most_decisions']}")
    return out


def sub_run_lines(result: ptcrun.Result) -> list[str]:
    """One line per sub-run: its team's slice, status, tokens spent of its slice, turns, calls."""
    if result.transcript is None:
        return []
    t = ptcrun.Transcript.load(result.transcript)
    lines = []
    for call, sub in sorted(t.sub_runs.items(), key=lambda kv: kv[1].started):
        team = ", ".join(sub.run.get("data", {}))
        limit = sub.limits.get("max_tokens")
        lines.append(
            f"{call:<6} {team:<9} {sub.status:<16} {sub.usage.total_tokens:>6,} of {limit:,} tokens · "
            f"{len(sub.turns)} turn{'s' * (len(sub.turns) != 1)} · {len(sub.calls)} worker calls · {sub.seconds:.1f} s"
        )
    return lines


def report(result: ptcrun.Result) -> None:
    print(f"\nrun ended: {result.status}" + (f" ({result.error})" if result.error else ""))
    _common.print_block("Sub-runs (one per team)", sub_run_lines(result))
    if result.status == "done":
        answer = result.answer
        lines = [
            f"{team:<9} {n:>3} decisions · {len(answer['open_actions'].get(team, []))} open action items"
            for team, n in answer["decisions"].items()
        ]
        lines.append(f"most decisions: {', '.join(answer['most_decisions'])}")
        if answer.get("missing"):
            lines += [f"not read: {team}: {why}" for team, why in answer["missing"].items()]
        _common.print_block("Answer", lines)
        _common.print_block("Against the ground truth", problems(answer) or ["every count and list matches"])
    _common.print_block("Run", [*_common.usage_lines(result), *_common.transcript_lines(result)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-team questions over meeting minutes, one sub-run per team.")
    parser.add_argument("--slice", type=int, dest="slice_tokens", metavar="TOKENS",
                        help="tokens each sub-run may spend (offline only; default 40,000)")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)
    providers = _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)
    print(providers.describe())
    print(f"corpus: {', '.join(f'{team} ({len(pages)} meetings)' for team, pages in DOCUMENTS.items())}")
    result, _ = run_minutes(providers=providers, slice_tokens=args.slice_tokens, transcript_dir=args.transcripts)
    report(result)
    return 0 if result.status == "done" and not problems(result.answer) else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
