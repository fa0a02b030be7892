"""The suite: every task, in the order tables list them."""

from __future__ import annotations

from . import _aggregate, _ensemble, _logs, _needle, _pairs, _reviews, _schema, _shop, _workflow
from ._task import Task

__all__ = ["TASKS"]

TASKS: tuple[Task, ...] = (
    *_needle.TASKS,
    *_aggregate.TASKS,
    *_pairs.TASKS,
    *_logs.TASKS,
    *_reviews.TASKS,
    *_ensemble.TASKS,
    *_workflow.TASKS,
    *_shop.TASKS,
    *_schema.TASKS,
)

assert len({t.name for t in TASKS}) == len(TASKS), "task names must be unique"
