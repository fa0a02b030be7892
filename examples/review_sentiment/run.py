"""Product review sentiment (seed 001): a dozen reviews classified in parallel, in input order.

Each review is one item of ``data``. The planner's program classifies them with ``pmap`` at a
concurrency of four, keeps the results in the order of the input, counts each sentiment, and keeps
a per-review error in the slot of any review whose worker call failed, while the others go on. A
progress callback prints each review as it finishes; ``--events`` also prints the worker-pool
events (``parallel.start``, ``worker.start``, ``worker.complete``, ``parallel.complete``).

Usage::

    python examples/review_sentiment/run.py               # offline without ANTHROPIC_API_KEY
    python examples/review_sentiment/run.py --fail 7      # the worker call for review 7 fails
    python examples/review_sentiment/run.py --events      # the worker-pool events as JSON lines
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Collection, Sequence
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
REVIEWS: list[dict[str, Any]] = json.loads((HERE / "reviews.json").read_text(encoding="utf-8"))
SENTIMENTS = ("positive", "neutral", "negative")

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "review": {"type": "integer"},
                    "sentiment": {"enum": [*SENTIMENTS, None]},
                },
                "required": ["review", "sentiment"],
            },
        },
        "summary": {"type": "object", "additionalProperties": {"type": "integer"}},
        "errors": {"type": "array"},
    },
    "required": ["results", "summary", "errors"],
}


def review_texts(reviews: Sequence[dict[str, Any]]) -> list[str]:
    """The reviews as the run's ``data``: one chunk each, starting with its number and product."""
    return [f"Review {r['id']} ({r['product']}): {r['text']}" for r in reviews]


class FailOn:
    """A provider that fails the requests about some reviews, as an overloaded model does.

    It wraps any worker (the offline one or a real model), so that the example can show a review
    whose call failed keeping an error in its slot while the others complete.
    """

    _NUMBER = re.compile(r"<text>\s*Review (\d+)\b")

    def __init__(self, inner: Any, reviews: Collection[int]) -> None:
        self.inner = inner
        self.reviews = frozenset(reviews)
        self.name = inner.name
        self.context_window = inner.context_window
        self.price = inner.price

    async def complete(self, request: Any) -> Any:
        number = self._NUMBER.search(request.messages[0].content)
        if number and int(number.group(1)) in self.reviews:
            raise ptcrun.errors.ProviderError(
                "simulated outage: 529 overloaded after 3 attempts", provider=self.name, status=529
            )
        return await self.inner.complete(request)


@attrs.frozen
class Outcome:
    result: Any
    progress: tuple[str, ...]
    events: _common.EventLog


def run_reviews(
    *,
    providers: _common.Providers,
    reviews: Sequence[dict[str, Any]] = REVIEWS,
    fail_reviews: Collection[int] = (),
    transcript_dir: Path | None = Path("runs"),
    say: Callable[[str], None] = print,
    pool_events: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Classify the reviews; ``say`` gets each progress line as a review finishes."""
    progress: list[str] = []

    def on_progress(completed: int, total: int, latest: Any) -> None:
        # latest is the worker's answer for the review that just finished.
        verdict = latest if isinstance(latest, dict) else {}
        line = (
            f"progress: {completed}/{total} reviews analysed ({completed * 100 // total}%) - "
            f"latest: review #{verdict.get('review')} ({verdict.get('sentiment')})"
        )
        progress.append(line)
        say(line)

    events = _common.EventLog()
    observers: list[Any] = [events, ptcrun.progress_callback(on_progress)]
    if pool_events is not None:
        observers.append(ptcrun.parallel_events(pool_events))
    worker = FailOn(providers.worker, fail_reviews) if fail_reviews else providers.worker
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=worker,
        limits=ptcrun.Limits(max_tokens=100_000),
        transcript_dir=transcript_dir,
        observers=observers,
    )
    result = runtime.run(GOAL, review_texts(reviews), schema=ANSWER_SCHEMA)
    return Outcome(result, tuple(progress), events)


def disagreements(answer: Any, reviews: Sequence[dict[str, Any]] = REVIEWS) -> list[str]:
    """Where the answer's sentiments differ from the labels (failed reviews are not counted)."""
    out = []
    results = answer.get("results", []) if isinstance(answer, dict) else []
    for review, row in zip(reviews, results, strict=False):  # a short answer is reported below
        if row.get("review") != review["id"]:
            out.append(f"slot of review {review['id']} holds review {row.get('review')}")
        elif row.get("sentiment") is not None and row["sentiment"] != review["label"]:
            out.append(f"review {review['id']}: {row['sentiment']}, labelled {review['label']}")
    if len(results) != len(reviews):
        out.append(f"{len(results)} results for {len(reviews)} reviews")
    return out


def report(outcome: Outcome, reviews: Sequence[dict[str, Any]] = REVIEWS) -> None:
    result = outcome.result
    print(f"\nrun ended: {result.status}" + (f" ({result.error})" if result.error else ""))
    answer = result.answer if isinstance(result.answer, dict) else {}
    rows = []
    for review, row in zip(reviews, answer.get("results", []), strict=False):
        mark = row.get("sentiment") or f"FAILED: {row.get('error', '')[:70]}"
        rows.append(f"[{review['id']:>2}] {review['product']:<28} {mark}")
    _common.print_block("Results, in input order", rows)
    summary = answer.get("summary", {})
    classified = sum(summary.values()) or 1
    lines = [f"{s:<9} {summary.get(s, 0):>2} ({summary.get(s, 0) / classified:.0%})" for s in SENTIMENTS]
    lines += [f"review {e.get('review')} failed: {e.get('kind')}: {e.get('message', '')[:80]}" for e in answer.get("errors", [])]
    wrong = disagreements(answer, reviews)
    checked = sum(1 for row in answer.get("results", []) if row.get("sentiment") is not None)
    lines.append(f"agreement with the labels: {checked - len(wrong)} of {checked} classified reviews" + (f"; {wrong}" if wrong else ""))
    _common.print_block("Summary", lines)
    fanouts = outcome.events.fanouts()
    perf = []
    if fanouts:
        fan = max(fanouts, key=lambda f: f["total"] or 0)
        one_by_one = sum(outcome.events.llm_seconds("worker"))
        perf.append(
            f"{fan['total']} reviews, {fan['concurrency']} at a time: {fan['seconds']:.1f} s; one after the other: "
            f"{one_by_one:.1f} s" + (f" (speed-up {one_by_one / fan['seconds']:.1f}x)" if fan["seconds"] else "")
        )
    _common.print_block("Run", [*perf, *_common.usage_lines(result), *_common.transcript_lines(result)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify product reviews in parallel.")
    parser.add_argument("--fail", type=int, action="append", default=[], metavar="REVIEW", help="make the worker call for this review fail (repeatable)")
    parser.add_argument("--events", action="store_true", help="also print the worker-pool events as JSON lines")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)
    providers = _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)
    print(providers.describe())
    print(f"{len(REVIEWS)} reviews" + (f"; the calls for review {', '.join(map(str, args.fail))} will fail" if args.fail else ""))
    pool = (lambda e: print(json.dumps(e))) if args.events else None
    outcome = run_reviews(providers=providers, fail_reviews=args.fail, transcript_dir=args.transcripts, pool_events=pool)
    report(outcome)
    return 0 if outcome.result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
