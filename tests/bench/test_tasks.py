"""Every task is solvable and every scorer is right: the reference passes, planted wrong answers
fail, and the corpora are the same for a seed and differ across seeds."""

from __future__ import annotations

import functools

import pytest

from ptcrun.bench import TASKS, Task
from ptcrun.bench._harness import run_case

from .conftest import SIZE


def _ids(task: Task) -> str:
    return task.name


@functools.cache
def _case(task: Task, seed: int):
    return task.build(seed, SIZE)


def test_the_suite_has_thirty_tasks_in_every_family_the_issue_names():
    assert len(TASKS) >= 30
    families = {t.family for t in TASKS}
    assert {"needle", "aggregate", "pairs", "seed", "tools", "schema", "budget", "injection"} <= families
    names = [t.name for t in TASKS]
    assert len(set(names)) == len(names)
    for needle in ("niah-single", "niah-multi", "niah-none"):  # one, several and none present
        assert needle in names


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_the_reference_solution_passes(task, tmp_path):
    case = _case(task, 3)
    result = run_case(task, case, seed=3, size=SIZE, planner=None, worker=None, transcript_dir=None)
    assert result.passed, (result.status, result.detail, result.error, result.answer)
    assert (result.score, result.attempts, result.refusals) == (1.0, 0, {})


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_the_scorer_rejects_every_planted_wrong_answer_and_an_unfinished_run(task):
    case = _case(task, 5)
    assert case.wrong, "a task needs at least one planted wrong answer"
    for status, answer in case.wrong:
        score = case.check(status, answer)
        assert not score.passed, (status, answer)
        assert score.score < 1.0 and score.detail
    assert not case.check("max_turns", None).passed
    assert not case.check("budget_exceeded", case.truth).passed


@pytest.mark.parametrize("task", TASKS, ids=_ids)
def test_generation_is_deterministic_per_seed_and_differs_across_seeds(task):
    one, again, other = _case(task, 5), task.build(5, SIZE), task.build(2, SIZE)
    assert (one.goal, one.data, one.truth, one.reference) == (again.goal, again.data, again.truth, again.reference)
    assert (one.data, one.truth) != (other.data, other.truth)


_DIGEST = """
import hashlib, json, sys
from ptcrun.bench import TASKS
size = int(sys.argv[1])
for task in TASKS:
    case = task.build(7, size)
    text = json.dumps([case.goal, case.data, case.truth, case.reference], sort_keys=True, default=str)
    print(task.name, hashlib.sha256(text.encode()).hexdigest())
"""


def test_generation_does_not_depend_on_the_process_or_its_hash_seed():
    import os
    import subprocess
    import sys

    def digests(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        return subprocess.run([sys.executable, "-c", _DIGEST, "2048"], env=env, capture_output=True,
                              text=True, check=True).stdout

    first = digests("1")
    assert len(first.splitlines()) == len(TASKS)
    assert digests("4242") == first
