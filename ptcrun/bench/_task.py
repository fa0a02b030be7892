"""What a task of the suite is: a goal over a generated corpus, a scorer, and a reference solution.

A :class:`Task` is a recipe; :meth:`Task.build` turns it into a :class:`Case` for one seed and
one size. Everything in a case comes from ``(task, seed, size)`` alone, so two runs of the same
case see the same corpus, and a results file names all it takes to generate it again.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..errors import ConfigError

__all__ = ["Case", "Respond", "Score", "Task", "expect", "expect_one_of", "select", "when_done"]

#: A rule-based worker: takes the worker's request, answers as a model would (JSON text).
Respond = Callable[[Any], str]
#: The statuses a scorer is given: a ``Result.status``.
Checker = Callable[[str, Any], "Score"]


@attrs.frozen
class Score:
    """How an answer compares with the ground truth.

    Attributes:
        passed: the answer is right (for a measured answer: within the task's tolerance).
        score: from 0 to 1; partial credit where the task has a measure (F1, share right).
        detail: what was wrong, in a few words; empty when it passed.
    """

    passed: bool
    score: float
    detail: str = ""

    @classmethod
    def exact(cls, got: Any, want: Any, what: str = "answer") -> Score:
        """Pass when ``got == want``; the detail shows both when not."""
        if got == want:
            return cls(True, 1.0)
        return cls(False, 0.0, f"{what} {_short(got)}, expected {_short(want)}")


def when_done(score: Callable[[Any], Score]) -> Checker:
    """A scorer from ``score(answer)``, which sees only the answers of runs that ended ``done``:
    a run that ended any other way fails, whatever its answer."""

    def check(status: str, answer: Any) -> Score:
        if status != "done":
            return Score(False, 0.0, f"the run ended {status}")
        return score(answer)

    return check


def expect(want: Any, what: str = "answer") -> Checker:
    """The scorer of a task with one right answer: a ``done`` run whose answer equals ``want``."""
    return when_done(lambda answer: Score.exact(answer, want, what))


def expect_one_of(options: Sequence[Any], what: str = "answer") -> Checker:
    """The scorer of a question with several right answers (a tie): any of ``options`` passes."""

    @when_done
    def check(answer: Any) -> Score:
        if answer in options:
            return Score(True, 1.0)
        return Score(False, 0.0, f"{what} {_short(answer)}, expected one of {_short(list(options))}")

    return check


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@attrs.frozen
class Case:
    """One task at one seed and size: everything a run and its scoring need.

    Attributes:
        goal: what the planner is asked.
        data: the corpus, as ``Runtime.run`` takes it (chunk strings, or names to chunk lists).
        check: the scorer: ``check(status, answer)`` with the run's ``Result.status`` and answer.
        reference: the reference solution: the programs a planner would write, one per turn.
        worker: the rule-based worker that stands in for a model offline.
        wrong: planted wrong outcomes, ``(status, answer)`` pairs the scorer must reject.
        schema: the answer's JSON Schema, given to the run, when the task has one.
        tools: the task's tools (``Runtime(tools=...)``), made fresh for this case.
        budget_share: for a budget-tight task, the share of a full pass's input (one worker
            call on every chunk) the run's token budget leaves room for, beside the planner's
            first two turns; the whole budget must stay below the corpus's tokens (see
            ``budget_for``). ``None`` for the default budget, which has room for two full passes.
        truth: the ground truth, for people reading a failure.
    """

    goal: str
    data: Sequence[str] | Mapping[str, Sequence[str]]
    check: Checker
    reference: tuple[str, ...]
    worker: Respond
    wrong: tuple[tuple[str, Any], ...]
    schema: Any = None
    tools: tuple[Callable[..., Any], ...] = ()
    budget_share: float | None = None
    truth: Any = None

    @property
    def chunks(self) -> int:
        """How many chunks the corpus has, over all its datasets."""
        if isinstance(self.data, Mapping):
            return sum(len(v) for v in self.data.values())
        return len(self.data)

    @property
    def chars(self) -> int:
        """Characters of the corpus, over all its chunks."""
        values = self.data.values() if isinstance(self.data, Mapping) else [self.data]
        return sum(len(chunk) for chunks in values for chunk in chunks)


@attrs.frozen
class Task:
    """A task of the suite: a named recipe for cases.

    Attributes:
        name: unique, lower-case, words joined by ``-`` (``niah-single``).
        family: the shape of problem (``needle``, ``aggregate``, ``pairs``, ...).
        summary: one sentence saying what the planner must do.
        inspired_by: where the task comes from (a paper's benchmark, a seed job).
        make: builds the case for ``(seed, size)``; ``size`` is the corpus's size in tokens.
        scales: whether ``size`` sets the corpus's size; a fixed task (one pull request, one
            workflow) ignores it.
    """

    name: str
    family: str
    summary: str
    inspired_by: str
    make: Callable[[int, int], Case]
    scales: bool = True

    def build(self, seed: int, size: int) -> Case:
        """The case of this task for ``seed`` and ``size`` (tokens); the same every time."""
        return self.make(seed, size)


def select(tasks: Sequence[Task], patterns: Sequence[str] | None) -> list[Task]:
    """The tasks whose name matches one of the glob ``patterns`` (all when there are none), in
    suite order.

    Raises:
        ConfigError: a pattern matches no task.
    """
    if not patterns:
        return list(tasks)
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(t.name, pattern) for t in tasks):
            names = ", ".join(t.name for t in tasks[:6])
            raise ConfigError(
                f"no task matches {pattern!r}; task names look like {names}, ... "
                f"(`ptcrun bench list` lists them all)."
            )
    return [t for t in tasks if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
