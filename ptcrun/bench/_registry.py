"""The suite: every task, in the order tables list them."""

from __future__ import annotations

from . import _needle
from ._task import Task

__all__ = ["TASKS"]

TASKS: tuple[Task, ...] = (*_needle.TASKS,)

assert len({t.name for t in TASKS}) == len(TASKS), "task names must be unique"
