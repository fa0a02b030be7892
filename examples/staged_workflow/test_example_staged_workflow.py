"""The staged workflow example, offline: dependencies, early starts, timeouts, cycles."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

run = _common.load_module(HERE / "run.py")


def offline():
    return _common.offline_providers(HERE, latency=(0.01, 0.02), seed=2)


def test_steps_start_as_soon_as_their_inputs_are_ready(tmp_path):
    # features is slow; upgrade_guide needs only breaking, so it must not wait for features.
    outcome = run.run_workflow(
        run.load_workflow(), providers=offline(), slow={"features": 0.6}, transcript_dir=tmp_path
    )
    assert outcome.result.status == "done", outcome.result.error
    assert run.problems(outcome.result.answer) == []
    spans = outcome.step_spans()
    assert spans["upgrade_guide"][0] < spans["features"][1]
    assert spans["upgrade_guide"][0] >= spans["breaking"][1]
    assert spans["release_notes"][0] >= max(spans[s][1] for s in ("features", "fixes", "breaking"))
    assert spans["announcement"][0] >= spans["release_notes"][1]
    assert spans["faq"][0] >= spans["upgrade_guide"][1]


def test_sequential_switch_runs_one_step_at_a_time_in_dependency_order(tmp_path):
    outcome = run.run_workflow(run.load_workflow(sequential=True), providers=offline(), transcript_dir=tmp_path)
    answer = outcome.result.answer
    assert outcome.result.status == "done", outcome.result.error
    assert answer["mode"] == "sequential"
    assert run.problems(answer) == []
    assert outcome.events.peak_llm() == 1
    spans = outcome.step_spans()
    ends = [spans[step] for step in answer["order"]]
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(ends))


def test_a_step_that_runs_out_of_time_skips_its_dependents(tmp_path):
    workflow = run.load_workflow(step_timeout=0.5)
    outcome = run.run_workflow(workflow, providers=offline(), slow={"breaking": 5.0}, transcript_dir=tmp_path)
    steps = outcome.result.answer["steps"]
    assert outcome.result.status == "done", outcome.result.error
    assert steps["breaking"]["status"] == "timeout"
    assert "clock expired after 0.5 s" in steps["breaking"]["error"]
    assert {s: steps[s]["status"] for s in ("features", "fixes")} == {"features": "done", "fixes": "done"}
    skipped = ("release_notes", "upgrade_guide", "announcement", "faq")
    assert {s: steps[s]["status"] for s in skipped} == dict.fromkeys(skipped, "skipped")
    # The slow call was cancelled when the step's clock ran out, not left running.
    ended = [e.get("status") for e in outcome.events.of_type("llm.end") if e.get("role") == "worker"]
    assert ended.count("cancelled") == 1


def test_a_cycle_is_reported_before_any_step_runs(tmp_path):
    outcome = run.run_workflow(
        run.load_workflow(HERE / "workflow_cycle.json"), providers=offline(), transcript_dir=tmp_path
    )
    assert outcome.result.status == "failed"
    assert "cycle: announcement -> release_notes -> breaking -> announcement" in outcome.result.answer
    assert outcome.result.usage.worker_calls == 0
    assert outcome.events.of_type("call.start") == []
