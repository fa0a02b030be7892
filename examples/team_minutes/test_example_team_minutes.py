"""The team minutes example, offline: one sub-run per team, checked against the ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

import ptcrun

run = _common.load_module(HERE / "run.py")
minutes = _common.load_module(HERE / "generate.py")


def offline():
    return _common.offline_providers(HERE, latency=(0.005, 0.02), seed=3)


def test_the_answer_matches_the_ground_truth(tmp_path):
    result, events = run.run_minutes(providers=offline(), transcript_dir=tmp_path)
    assert result.status == "done", result.error
    assert run.problems(result.answer) == []
    assert result.answer["most_decisions"] == ["platform"]
    assert result.answer["missing"] == {}
    assert result.sub_runs == {"done": 5} and not result.partial
    # The run's planner wrote one program; each team got a sub-run of its own over its own
    # twelve meetings, which made one worker call per meeting.
    t = ptcrun.Transcript.load(result.transcript)
    assert len(t.turns) == 1 and [c.tool for c in t.calls] == ["agent"] * 5
    subs = list(t.sub_runs.values())
    slices = [s.run["data"] for s in subs]  # {team: {"chunks", "chars", "sha256"}}
    assert sorted(team for given in slices for team in given) == sorted(run.DOCUMENTS)
    assert all(s.depth == 1 and s.status == "done" for s in subs)
    assert all([d["chunks"] for d in given.values()] == [12] for given in slices)
    assert all([c.tool for c in s.calls] == ["worker"] * 12 for s in subs)
    # Every sub-run stayed in its slice, and the run was charged what they spent.
    assert all(s.usage.total_tokens <= s.limits["max_tokens"] == 40_000 for s in subs)
    assert result.usage.worker_calls == 60
    assert result.usage.total_tokens == t.usage.total_tokens
    assert sum(s.usage.total_tokens for s in subs) < result.usage.total_tokens
    # Worker calls of every sub-run shared the run's limit of eight in flight.
    assert 1 < events.peak_llm("worker") <= 8


def test_slices_too_small_come_back_as_errors_the_program_reports(tmp_path):
    result, _ = run.run_minutes(providers=offline(), slice_tokens=5_000, transcript_dir=tmp_path)
    assert result.status == "done", result.error
    missing = result.answer["missing"]
    assert sorted(missing) == sorted(run.DOCUMENTS)
    assert all("the sub-run ended with status 'budget_exceeded'" in why for why in missing.values())
    assert result.partial  # built while its calls were failing, and the Result says so
    assert result.sub_runs == {"budget_exceeded": 5}
    assert result.usage.worker_calls == 0


def test_the_corpus_and_ground_truth_files_are_the_generators():
    documents, truth = minutes.generate()
    assert minutes.read((HERE / "minutes.txt").read_text(encoding="utf-8")) == documents
    assert json.loads((HERE / "ground_truth.json").read_text(encoding="utf-8")) == truth
