"""A task suite for measuring how well a planner (and its worker) does with ptcrun.

Each task is a goal over a corpus generated from a seed at a chosen size, a scorer with the
ground truth, and a reference solution (scripted planner replies and a rule-based worker) that
proves it solvable offline. ``run_suite`` runs tasks through ``ptcrun.Runtime``;
``SuiteResult`` holds the results, writes them as JSON and reads them back; ``results_table`` and
``compare_table`` write Markdown. The ``ptcrun bench`` command does the same from a shell, and
``docs/bench.md`` describes the tasks. This is a public module of its own: nothing of it is in
``ptcrun``'s front door, and ``import ptcrun`` does not load it.

Example::

    from ptcrun import AnthropicProvider
    from ptcrun.bench import results_table, run_suite

    suite = run_suite(AnthropicProvider("claude-sonnet-4-6"), AnthropicProvider("claude-haiku-4-5"),
                      tasks=["niah-*"], sizes=[1 << 13, 1 << 16])
    suite.write("results.json")
    print(results_table(suite))
"""

from __future__ import annotations

from ._harness import RULES, run_suite
from ._registry import TASKS
from ._results import SuiteResult, TaskResult, compare_table, results_table
from ._task import Case, Score, Task

__all__ = [
    "RULES",
    "TASKS",
    "Case",
    "Score",
    "SuiteResult",
    "Task",
    "TaskResult",
    "compare_table",
    "results_table",
    "run_suite",
]
