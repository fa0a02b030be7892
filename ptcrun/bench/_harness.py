"""Run tasks through ``Runtime`` and collect what each run took and how it scored.

For each task and size: build the case, pick the providers (the given ones, or the reference
solution's scripted planner and the task's rule-based worker), size the token budget from the
runtime's own estimate, run, score, and read off the turns, failed programs, sandbox refusals,
tokens, cost and wall time.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import platform
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from .._limits import Limits
from .._result import ProgramError, Result
from ..errors import ConfigError
from ..runtime._runtime import Runtime
from ..runtime.providers._base import Provider
from ..runtime.providers._scripted import ScriptedProvider
from ._registry import TASKS
from ._results import SuiteResult, TaskResult
from ._task import Case, Task, select

__all__ = ["RULES", "budget_for", "refusal_cause", "run_case", "run_suite"]

#: Names the task's rule-based worker in place of a worker provider.
RULES = "rules"
#: Extra planner turns the default budget has room for, beyond the two every estimate counts.
_SPARE_TURNS = 4
#: Turns the run allows: enough for a planner to look, try, fix and answer.
_MAX_TURNS = 8

_REJECTED = {"NotAllowed": "not_allowed", "TooLarge": "program_too_large", "TooDeep": "program_too_deep"}


def refusal_cause(error: ProgramError) -> str | None:
    """Why the sandbox refused what a program did, or None for the program's own error.

    Refusals are what the sandbox stops a program from doing, not bugs in its logic: syntax the
    policy refuses, a name or attribute it hides, an import it does not allow, a sandbox
    limit (by the ``Limits`` field: ``limit:sandbox_memory_bytes``), a clock (``clock:pmap``),
    and a value that cannot cross as JSON.
    """
    kind, message = error.kind, error.message
    if kind in _REJECTED:
        return _REJECTED[kind]
    if kind == "ImportError":
        return "import"
    if kind == "SandboxLimitExceeded":
        return f"limit:{error.fields.get('setting', 'unknown')}"
    if kind == "TimeLimitExceeded":
        return f"clock:{error.fields.get('clock', error.fields.get('setting', 'unknown'))}"
    if kind == "NotJSON":
        return "not_json"
    if kind in ("AttributeError", "NameError", "TypeError") and (
        "not allowed" in message or "in the sandbox" in message
    ):
        return "not_allowed"
    return None


def _version() -> str:
    try:
        return importlib.metadata.version("ptcrun")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def budget_for(runtime: Runtime, case: Case) -> tuple[int, int]:
    """The case's token budget, from what the runtime estimates a full pass and a turn reserve.

    By default: two full passes (a retry of every chunk, or two questions per chunk) and six
    planner turns, each as the ledger reserves it at its worst. A budget-tight case gets the
    planner's first turn and the next turn the ledger holds back while a program runs, both at
    their worst, and its share of the input a full pass sends (``Estimate.pass_input_tokens``),
    which every run spends whatever its timing. The whole budget is then less than the corpus's
    tokens, which a program that sends every chunk to a worker sends at least: it runs out before
    it is done, however its calls overlap. Returns the budget and the corpus's tokens.

    Raises:
        ValueError: a budget-tight case whose budget would not be less than its corpus's tokens
            (a corpus too small for its share); raise the case's size floor or lower the share.
    """
    estimate = runtime.estimate(case.goal, case.data, case.schema)
    if case.budget_share is None:
        turns = estimate.planner_first_tokens + (1 + _SPARE_TURNS) * estimate.planner_second_tokens
        return turns + 2 * estimate.pass_tokens, estimate.corpus_tokens
    turns = estimate.planner_first_tokens + estimate.planner_second_tokens
    budget = turns + math.ceil(case.budget_share * estimate.pass_input_tokens)
    if budget >= estimate.corpus_tokens:
        raise ValueError(
            f"a budget-tight case's budget of {budget:,} tokens would cover its corpus of "
            f"{estimate.corpus_tokens:,} tokens, so a full pass could fit; give the case a larger "
            f"corpus or a budget_share below {case.budget_share}."
        )
    return budget, estimate.corpus_tokens


def run_case(
    task: Task,
    case: Case,
    *,
    seed: int,
    size: int,
    planner: Provider | None,
    worker: Provider | Literal["rules"] | None,
    transcript_dir: str | Path | None = None,
    concurrency: int | None = None,
) -> TaskResult:
    """Run one case and score it. ``planner=None`` runs the reference solution (a scripted planner
    replying with its programs); ``worker="rules"`` (or ``None`` with no planner) the task's
    rule-based worker."""
    reference = planner is None
    if planner is None:
        replies = [f"```python\n{program.strip()}\n```" for program in case.reference]
        planner = ScriptedProvider(replies, name="reference")
    if worker == RULES or (worker is None and reference):
        worker = ScriptedProvider(case.worker, name="rules")
    assert not isinstance(worker, str)
    planner_: Provider = planner
    worker_: Provider | None = worker
    settings: dict[str, Any] = {"max_turns": _MAX_TURNS}
    if concurrency is not None:
        settings["max_concurrency"] = concurrency
    def runtime(**more: Any) -> Runtime:
        return Runtime(
            planner=planner_,
            worker=worker_,
            tools=list(case.tools),
            limits=Limits(**settings, **more),
            transcript_dir=transcript_dir,
        )

    max_tokens, corpus_tokens = budget_for(runtime(), case)
    result = runtime(max_tokens=max_tokens).run(case.goal, case.data, schema=case.schema)
    return _task_result(
        task, case, result, seed=seed, size=size, max_tokens=max_tokens, corpus_tokens=corpus_tokens
    )


def _task_result(
    task: Task, case: Case, result: Result, *, seed: int, size: int, max_tokens: int, corpus_tokens: int
) -> TaskResult:
    score = case.check(result.status, result.answer)
    refusals: Counter[str] = Counter()
    attempts = 0
    for turn in result.turns:
        if turn.status in ("error", "invalid_answer", "no_code"):
            attempts += 1
        if turn.error is not None and (cause := refusal_cause(turn.error)) is not None:
            refusals[cause] += 1
    u = result.usage
    return TaskResult(
        task=task.name,
        family=task.family,
        seed=seed,
        size=size,
        chunks=case.chunks,
        corpus_tokens=corpus_tokens,
        status=result.status,
        passed=score.passed,
        score=score.score,
        detail=score.detail,
        answer=result.answer,
        turns=len(result.turns),
        attempts=attempts,
        refusals=dict(sorted(refusals.items())),
        planner_input_tokens=u.planner_input_tokens,
        planner_output_tokens=u.planner_output_tokens,
        worker_input_tokens=u.worker_input_tokens,
        worker_output_tokens=u.worker_output_tokens,
        worker_calls=u.worker_calls,
        total_tokens=u.total_tokens,
        max_tokens=max_tokens,
        cost=u.cost,
        seconds=round(result.seconds, 3),
        failed_calls=sum(result.failed_calls.values()),
        error=None if result.error is None else f"{type(result.error).__name__}: {result.error}",
        transcript=None if result.transcript is None else str(result.transcript),
    )


def run_suite(
    planner: Provider | None = None,
    worker: Provider | Literal["rules"] | None = None,
    *,
    tasks: Sequence[str] | None = None,
    sizes: Iterable[int] = (1 << 13,),
    seed: int = 0,
    transcript_dir: str | Path | None = None,
    concurrency: int | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
) -> SuiteResult:
    """Run the suite's tasks (those matching the glob patterns ``tasks``) at each size.

    With no ``planner``, each task runs its reference solution: a scripted planner replying
    with the reference programs and the task's rule-based worker, offline. ``worker="rules"``
    pairs a real planner with the rule-based workers, which measures the planner's programs
    alone, at no worker cost. ``worker=None`` with a planner lets the planner do the worker
    calls too. ``on_result`` is called with each task's result as it comes. A fixed task (one
    that ignores the size) runs once, at the first size.

    A Ctrl-C (or SIGTERM, SIGHUP) ends the task running as ``cancelled`` and stops the suite:
    the result holds the runs so far, with ``interrupted`` set.

    Raises:
        ConfigError: a pattern matches no task, or a size is below 1,024 tokens.
    """
    chosen = select(TASKS, tasks)
    sizes = list(sizes)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1024:
            raise ConfigError(f"a size is a whole number of tokens, at least 1,024; got {size!r}.")
    started = dt.datetime.now(dt.UTC)
    runs = [(size, task) for size in sizes for task in chosen if task.scales or size == sizes[0]]
    results: list[TaskResult] = []
    interrupted = False
    for size, task in runs:
        try:
            case = task.build(seed, size)
        except KeyboardInterrupt:
            interrupted = True
            break
        result = run_case(
            task, case, seed=seed, size=size, planner=planner, worker=worker,
            transcript_dir=transcript_dir, concurrency=concurrency,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
        # Ctrl-C (or SIGTERM) ends a run as "cancelled": it stops the suite too, and the runs
        # so far are kept, marked as an interrupted suite.
        if result.status == "cancelled":
            interrupted = True
            break
    return SuiteResult(
        planner="reference" if planner is None else planner.name,
        worker=_worker_name(planner, worker),
        seed=seed,
        sizes=tuple(sizes),
        started=started.isoformat(timespec="seconds"),
        ptcrun=_version(),
        python=platform.python_version(),
        tasks=tuple(results),
        interrupted=interrupted,
    )


def _worker_name(planner: Provider | None, worker: Provider | str | None) -> str:
    if worker == RULES or (worker is None and planner is None):
        return RULES
    if isinstance(worker, str):
        return worker
    if worker is None:
        assert planner is not None
        return planner.name
    return worker.name
