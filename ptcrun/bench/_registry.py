"""The suite: every task, in the order tables list them."""

from __future__ import annotations

from . import _ensemble, _logs, _messages, _needle, _reviews, _schema, _shop, _workflow
from ._task import Task

__all__ = ["TASKS"]

TASKS: tuple[Task, ...] = (
    *_needle.TASKS,
    *_messages.TASKS,
    *_logs.TASKS,
    *_reviews.TASKS,
    *_ensemble.TASKS,
    *_workflow.TASKS,
    *_shop.TASKS,
    *_schema.TASKS,
)

assert len({t.name for t in TASKS}) == len(TASKS), "task names must be unique"
