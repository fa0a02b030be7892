"""The review sentiment example, offline: answers in input order, labels matched, errors kept."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

run = _common.load_module(HERE / "run.py")
worker_rules = _common.load_module(HERE / "worker_rules.py")


def offline():
    return _common.offline_providers(HERE, latency=(0.005, 0.03), seed=1)


def test_reviews_are_classified_in_input_order_and_match_the_labels(tmp_path):
    outcome = run.run_reviews(providers=offline(), transcript_dir=tmp_path, say=lambda line: None)
    answer = outcome.result.answer
    assert outcome.result.status == "done", outcome.result.error
    assert [row["review"] for row in answer["results"]] == [r["id"] for r in run.REVIEWS]
    assert run.disagreements(answer) == []
    assert answer["summary"] == dict(Counter(r["label"] for r in run.REVIEWS))
    assert answer["errors"] == []
    assert outcome.progress[-1].startswith("progress: 12/12 reviews analysed (100%)")
    assert len(outcome.progress) == 12
    assert outcome.events.peak_llm() <= 4  # the program asks pmap for four at a time


def test_a_failing_review_keeps_its_error_and_the_others_finish(tmp_path):
    pool = []
    outcome = run.run_reviews(
        providers=offline(), fail_reviews={7}, transcript_dir=tmp_path, say=lambda line: None, pool_events=pool.append
    )
    answer = outcome.result.answer
    assert outcome.result.status == "done", outcome.result.error
    failed = answer["results"][6]
    assert failed["review"] == 7 and failed["sentiment"] is None
    assert "529 overloaded" in failed["error"]
    assert [e["review"] for e in answer["errors"]] == [7]
    assert run.disagreements(answer) == []  # the eleven others are still right, in their slots
    labels = Counter(r["label"] for r in run.REVIEWS if r["id"] != 7)
    assert answer["summary"] == dict(labels)
    # The callback runs after each review that finished well: eleven times.
    assert len(outcome.progress) == 11
    completes = [e for e in pool if e["type"] == "worker.complete"]
    assert sum(e["data"]["error"] for e in completes) == 1
    assert [e["type"] for e in pool if e["type"].startswith("parallel.")] == ["parallel.start", "parallel.complete"]


def test_word_list_reads_negation():
    assert worker_rules.classify("Great sound.")["sentiment"] == "positive"
    assert worker_rules.classify("Not great, sound is poor.")["sentiment"] == "negative"
    assert worker_rules.classify("It arrived on Monday.")["sentiment"] == "neutral"
