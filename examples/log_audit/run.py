"""The log audit (seed 000): a planner fans worker calls out over a chunked log and aggregates.

The log is cut into chunks of 4,000 tokens that overlap by 200. The planner never sees the log;
its programs hand every chunk to ``tool.worker`` with ``pmap``, collect the incidents the workers
report as JSON, and count each incident once although neighbouring chunks share lines. The answer
is scored against the generator's ground truth: recall (planted incidents found) and precision
(reports that are real, once each).

Usage::

    python examples/log_audit/run.py                    # generates the corpus when missing
    python examples/log_audit/run.py --lines 100000     # a bigger corpus
    python examples/log_audit/run.py --planner anthropic:claude-sonnet-4-6 --worker anthropic:claude-haiku-4-5

Without ANTHROPIC_API_KEY (or with --offline) it runs offline: the planner replays
``programs/turn*.py`` and the worker is ``worker_rules.py`` behind a simulated latency.
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

generate = _common.load_module(HERE / "generate.py")
worker_rules = _common.load_module(HERE / "worker_rules.py")

GOAL = (HERE / "goal.md").read_text(encoding="utf-8")
PROGRAMS = HERE / "programs"
DEFAULT_CORPUS = Path("runs") / "log_audit"

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "total": {"type": "integer"},
        "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
        "incidents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "kind": {"type": "string", "enum": list(generate.KINDS)},
                    "summary": {"type": "string"},
                },
                "required": ["line", "kind"],
            },
        },
    },
    "required": ["total", "by_kind", "incidents"],
}


@attrs.frozen
class Score:
    """How an answer compares with the ground truth.

    A report matches a planted incident when the kinds agree and the reported line lies within
    the incident's lines; each incident matches at most one report, so a report of an incident
    already matched (a double count) is a false positive.
    """

    recall: float
    precision: float
    found: int
    planted: int
    reported: int
    missed: tuple[dict, ...]
    false_reports: tuple[dict, ...]


def score(incidents: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]) -> Score:
    """Compare reported incidents with the planted ones."""
    open_truth = list(truth)
    false_reports = []
    for report in incidents:
        match = next(
            (
                t
                for t in open_truth
                if t["kind"] == report.get("kind") and t["line"] <= report.get("line", -1) <= t["last_line"]
            ),
            None,
        )
        if match is None:
            false_reports.append(report)
        else:
            open_truth.remove(match)
    found = len(truth) - len(open_truth)
    return Score(
        recall=found / len(truth) if truth else 1.0,
        precision=found / len(incidents) if incidents else (1.0 if not truth else 0.0),
        found=found,
        planted=len(truth),
        reported=len(incidents),
        missed=tuple(open_truth),
        false_reports=tuple(false_reports),
    )


def prepare_corpus(folder: Path, *, lines: int, seed: int, quiet: bool = False) -> tuple[Path, dict[str, Any]]:
    """Return the log and its ground truth in ``folder``, generating them when missing or when
    they were made with other settings."""
    log, truth_file = folder / "app.log", folder / "ground_truth.json"
    if log.is_file() and truth_file.is_file():
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        if truth.get("lines") == lines and truth.get("seed") == seed:
            return log, truth
    if not quiet:
        print(f"generating a {lines:,}-line log (seed {seed}) in {folder} ...")
    generate.generate(lines, seed).write(folder)
    return log, json.loads(truth_file.read_text(encoding="utf-8"))


@attrs.frozen
class Outcome:
    """A finished audit: the run, its score, and what it took."""

    result: Any
    score: Score | None
    chunks: int
    corpus_tokens: int
    concurrency: int
    events: _common.EventLog
    providers: _common.Providers


def run_audit(
    log: Path,
    truth: dict[str, Any],
    *,
    providers: _common.Providers,
    concurrency: int = 16,
    max_tokens: int | None = None,
    transcript_dir: Path | None = Path("runs"),
) -> Outcome:
    """Chunk the log, run the planner over it, and score the answer."""
    chunks = generate.chunk_log(log.read_text(encoding="utf-8"))
    corpus_tokens = sum(c.tokens for c in chunks)
    if max_tokens is None:
        # Every chunk is read once by a worker, plus its answer, plus the planner's turns.
        max_tokens = 2 * corpus_tokens + 200_000
    limits = ptcrun.Limits(max_tokens=max_tokens, max_concurrency=concurrency)
    events = _common.EventLog()
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=providers.worker,
        limits=limits,
        transcript_dir=transcript_dir,
        observers=[events],
    )
    result = runtime.run(GOAL, chunks, schema=ANSWER_SCHEMA)
    found = None
    if isinstance(result.answer, dict) and isinstance(result.answer.get("incidents"), list):
        found = score(result.answer["incidents"], truth["incidents"])
    return Outcome(result, found, len(chunks), corpus_tokens, concurrency, events, providers)


def fanout_lines(outcome: Outcome) -> list[str]:
    """The biggest fan-out of the run against its ideal: ceil(calls / concurrency) waves."""
    fanouts = outcome.events.fanouts()
    if not fanouts:
        return ["no fan-out ran"]
    biggest = max(fanouts, key=lambda f: f["total"] or 0)
    latencies = outcome.events.llm_seconds("worker")
    average = _common.mean(latencies)
    ideal = _common.ideal_seconds(biggest["total"], outcome.concurrency, average)
    waves = -(-biggest["total"] // outcome.concurrency)
    lines = [
        f"fan-out: {biggest['total']} worker calls, {outcome.concurrency} at a time, took {biggest['seconds']:.1f} s",
        f"ideal:   {ideal:.1f} s ({waves} waves x {average:.2f} s mean call latency)"
        + (f"; the fan-out took {biggest['seconds'] / ideal:.2f}x that" if ideal > 0 else ""),
        f"one after the other the calls would take {sum(latencies):.1f} s "
        + (f"(speed-up {sum(latencies) / biggest['seconds']:.1f}x)" if biggest["seconds"] > 0 else ""),
    ]
    return lines


def report(outcome: Outcome) -> None:
    """Print the answer, its score against the ground truth, and what the run cost."""
    result = outcome.result
    print(f"\nrun ended: {result.status}" + (f" ({result.error})" if result.error else ""))
    answer = result.answer if isinstance(result.answer, dict) else {}
    incidents = answer.get("incidents") or []
    _common.print_block(
        "Answer",
        [
            f"total incidents: {answer.get('total')}",
            f"by kind: {json.dumps(answer.get('by_kind'), sort_keys=True)}",
            *(f"line {i.get('line'):>6}  {i.get('kind'):<12} {str(i.get('summary', ''))[:70]}" for i in incidents[:10]),
            *([f"... and {len(incidents) - 10} more"] if len(incidents) > 10 else []),
        ],
    )
    if outcome.score is not None:
        s = outcome.score
        lines = [
            f"recall:    {s.recall:.1%} ({s.found} of {s.planted} planted incidents found)",
            f"precision: {s.precision:.1%} ({s.found} of {s.reported} reports are real, each counted once)",
        ]
        lines += [f"missed: {t['id']} {t['kind']} at line {t['line']}" for t in s.missed]
        lines += [f"false report: line {r.get('line')} {r.get('kind')}" for r in s.false_reports]
        if "duplicates_removed" in answer:
            lines.append(f"reports for lines two chunks share, dropped as duplicates: {answer['duplicates_removed']}")
        _common.print_block("Against the ground truth", lines)
    _common.print_block("Run", [*fanout_lines(outcome), *_common.usage_lines(result), *_common.transcript_lines(result)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Audit a generated log for incidents, in parallel.")
    parser.add_argument("--lines", type=int, default=10_000, help="lines of the generated log (default 10,000)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of app.log and ground_truth.json (default runs/log_audit)")
    parser.add_argument("--concurrency", type=int, default=16, help="worker calls in flight at once (default 16)")
    parser.add_argument("--max-tokens", type=int, help="token budget of the run (default: twice the corpus, plus 200,000)")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)

    providers = _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)
    print(providers.describe())
    log, truth = prepare_corpus(args.corpus, lines=args.lines, seed=args.seed)
    print(
        f"corpus: {log} ({truth['lines']:,} lines, {len(truth['incidents'])} planted incidents) "
        f"-> {truth['chunks']} chunks of ~{generate.CHUNK_TOKENS:,} tokens ({generate.OVERLAP_TOKENS} overlap)"
    )
    outcome = run_audit(
        log,
        truth,
        providers=providers,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        transcript_dir=args.transcripts,
    )
    report(outcome)
    return 0 if outcome.result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
