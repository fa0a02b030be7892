"""Every task is solvable and every scorer is right: the reference passes, planted wrong answers
fail, and the corpora are the same for a seed and differ across seeds."""

from __future__ import annotations

import pytest

from ptcrun.bench import TASKS, Task
from ptcrun.bench._harness import run_case

from .conftest import SIZE


def _ids(task: Task) -> str:
    return task.name


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_the_reference_solution_passes(task, tmp_path):
    case = task.build(seed=3, size=SIZE)
    result = run_case(task, case, seed=3, size=SIZE, planner=None, worker=None, transcript_dir=None)
    assert result.passed, (result.status, result.detail, result.error, result.answer)
    assert (result.score, result.attempts, result.refusals) == (1.0, 0, {})


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_the_scorer_rejects_every_planted_wrong_answer(task):
    case = task.build(seed=5, size=SIZE)
    assert case.wrong, "a task needs at least one planted wrong answer"
    for status, answer in case.wrong:
        score = case.check(status, answer)
        assert not score.passed, (status, answer)
        assert score.score < 1.0 and score.detail


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_a_run_that_did_not_finish_does_not_pass(task):
    case = task.build(seed=5, size=SIZE)
    assert not case.check("max_turns", None).passed
    assert not case.check("budget_exceeded", case.truth).passed or task.name.endswith("-cycle")


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_generation_is_deterministic_per_seed_and_differs_across_seeds(task):
    one, again, other = task.build(1, SIZE), task.build(1, SIZE), task.build(2, SIZE)
    assert (one.goal, one.data, one.truth, one.reference) == (again.goal, again.data, again.truth, again.reference)
    assert (one.data, one.truth) != (other.data, other.truth)
