"""The agent ensemble example, offline: every expected finding, the verdict, and real overlap."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

run = _common.load_module(HERE / "run.py")


def offline():
    # Calls long enough that the four specialists' requests are surely in flight together.
    return _common.offline_providers(HERE, latency=(0.2, 0.3), seed=5)


def test_specialists_find_the_planted_issues_and_the_synthesis_requests_changes(tmp_path):
    outcome = run.run_ensemble(providers=offline(), transcript_dir=tmp_path)
    answer = outcome.result.answer
    assert outcome.result.status == "done", outcome.result.error
    assert run.missing_findings(answer) == []
    assert answer["verdict"] == run.TRUTH["verdict"]
    assert answer["failed"] == []
    assert sorted(answer["findings"]) == ["performance", "reliability", "security", "tests"]
    # The four specialists ran at the same time; the synthesis came after them.
    assert outcome.events.peak_llm() == 4
    assert len(outcome.agent_seconds) == 4
    assert outcome.result.usage.worker_calls == 5


def test_one_slot_runs_the_same_specialists_one_after_the_other(tmp_path):
    parallel = run.run_ensemble(providers=offline(), transcript_dir=tmp_path)
    sequential = run.run_ensemble(providers=offline(), max_concurrency=1, transcript_dir=tmp_path)
    assert sequential.result.status == "done", sequential.result.error
    assert sequential.events.peak_llm() == 1
    assert sequential.result.answer == parallel.result.answer
