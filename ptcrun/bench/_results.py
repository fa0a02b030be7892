"""The results of a suite run: per task and in total; a JSON file, a Markdown table, a comparison.

The JSON file is the record: ``{"format": 1, "planner", "worker", "seed", "sizes", "started",
"ptcrun", "python", "tasks": [...], "totals": {...}}``, one object per task run with the fields
of :class:`TaskResult`. The table and the comparison are computed from it, so a file written
months ago still compares with today's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .._json import for_event
from ..errors import ConfigError

__all__ = ["FORMAT", "SuiteResult", "TaskResult", "compare_table", "results_table"]

#: The version of the results file's layout.
FORMAT = 1


@attrs.frozen
class TaskResult:
    """One task run at one size: how it scored and what it took.

    Attributes:
        task, family: the task's name and family.
        seed, size: the case: ``size`` is the size asked for, in tokens.
        chunks, corpus_tokens: the corpus as generated: a fixed task's is its own size, and a
            budget-tight task raises a small size to a floor of its own.
        status: the run's ``Result.status``.
        passed, score, detail: the scorer's verdict (see ``Score``).
        answer: the run's answer, as JSON.
        turns: planner turns taken.
        attempts: programs that failed before the answer: turns whose program raised, whose
            reply held no program, or whose answer did not match the schema.
        refusals: what the sandbox refused, by cause (``not_allowed``, ``import``,
            ``limit:<Limits field>``, ``clock:<clock>``, ``not_json``...), counted per turn.
        planner_input_tokens, planner_output_tokens, worker_input_tokens,
        worker_output_tokens, worker_calls, total_tokens: the run's usage.
        max_tokens: the run's token budget.
        cost: USD, when both providers have a price; else None.
        seconds: the run's wall time.
        failed_calls: worker and tool calls that failed where the program went on.
        error: the error that ended the run, as ``Type: message``; None when none did.
        transcript: the run's transcript file, when one was written.
    """

    task: str
    family: str
    seed: int
    size: int
    chunks: int
    corpus_tokens: int
    status: str
    passed: bool
    score: float
    detail: str
    answer: Any
    turns: int
    attempts: int
    refusals: dict[str, int]
    planner_input_tokens: int
    planner_output_tokens: int
    worker_input_tokens: int
    worker_output_tokens: int
    worker_calls: int
    total_tokens: int
    max_tokens: int
    cost: float | None
    seconds: float
    failed_calls: int = 0
    error: str | None = None
    transcript: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """What identifies the run in a comparison: the task and its size."""
        return (self.task, self.size)


@attrs.frozen
class SuiteResult:
    """A suite run: who planned and worked, on which cases, and each task's result.

    ``interrupted`` says the suite was stopped (Ctrl-C) before its last task: ``tasks`` holds the
    runs so far, the last of them ``cancelled``.
    """

    planner: str
    worker: str
    seed: int
    sizes: tuple[int, ...]
    started: str
    ptcrun: str
    python: str
    tasks: tuple[TaskResult, ...]
    interrupted: bool = False

    @property
    def passed(self) -> int:
        """Task runs that passed."""
        return sum(t.passed for t in self.tasks)

    @property
    def totals(self) -> dict[str, Any]:
        """The suite's figures in total (and on average per task run)."""
        n = len(self.tasks)
        costs = [t.cost for t in self.tasks]
        refusals: dict[str, int] = {}
        for t in self.tasks:
            for cause, count in t.refusals.items():
                refusals[cause] = refusals.get(cause, 0) + count
        return {
            "runs": n,
            "passed": self.passed,
            "pass_rate": round(self.passed / n, 4) if n else 0.0,
            "mean_score": round(sum(t.score for t in self.tasks) / n, 4) if n else 0.0,
            "mean_turns": round(sum(t.turns for t in self.tasks) / n, 3) if n else 0.0,
            "mean_attempts": round(sum(t.attempts for t in self.tasks) / n, 3) if n else 0.0,
            "refusals": dict(sorted(refusals.items())),
            "planner_tokens": sum(t.planner_input_tokens + t.planner_output_tokens for t in self.tasks),
            "worker_tokens": sum(t.worker_input_tokens + t.worker_output_tokens for t in self.tasks),
            "total_tokens": sum(t.total_tokens for t in self.tasks),
            "cost": None if None in costs else round(sum(c for c in costs if c is not None), 6),
            "seconds": round(sum(t.seconds for t in self.tasks), 3),
        }

    def to_json(self) -> dict[str, Any]:
        """The results file's content."""
        body = attrs.asdict(self, recurse=False)
        body["sizes"] = list(self.sizes)
        body["tasks"] = [for_event(attrs.asdict(t)) for t in self.tasks]
        return {"format": FORMAT, **body, "totals": self.totals}

    def write(self, path: str | Path) -> Path:
        """Write the results file (UTF-8 JSON); return its path."""
        path = Path(path)
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SuiteResult:
        """Read a results file.

        Raises:
            ConfigError: the file is missing, not JSON, or not a results file of this format.
        """
        fix = "pass a file written by `ptcrun bench run --out FILE`"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"results file {str(path)!r} does not exist; {fix}.") from None
        except IsADirectoryError:
            raise ConfigError(f"results file {str(path)!r} is a directory; {fix}.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"results file {str(path)!r} cannot be read ({exc}); {fix}.") from None
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"results file {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno}); {fix}."
            ) from None
        well_formed = isinstance(body, dict) and isinstance(body.get("tasks"), list)
        if not well_formed or body.get("format") != FORMAT:
            raise ConfigError(f"{str(path)!r} is not a bench results file of format {FORMAT}; {fix}.")
        try:
            fields = {f.name for f in attrs.fields(TaskResult)}
            tasks = tuple(TaskResult(**{k: v for k, v in t.items() if k in fields}) for t in body["tasks"])
            return cls(
                planner=body["planner"],
                worker=body["worker"],
                seed=body["seed"],
                sizes=tuple(body["sizes"]),
                started=body["started"],
                ptcrun=body["ptcrun"],
                python=body["python"],
                tasks=tasks,
                interrupted=bool(body.get("interrupted", False)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"results file {str(path)!r} lacks a field or has a wrong one ({exc}); {fix}."
            ) from None


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def _size(n: int) -> str:
    exponent = math.log2(n) if n > 0 else 0.0
    return f"2^{exponent:.0f}" if exponent.is_integer() else _tokens(n)


def _cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


def _refusals(refusals: dict[str, int]) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in refusals.items()) or "-"


def results_table(suite: SuiteResult) -> str:
    """A Markdown table of the suite: one row per task run, then the totals."""
    lines = [
        f"planner `{suite.planner}`, worker `{suite.worker}`, seed {suite.seed}, ptcrun {suite.ptcrun}",
        "",
        ("| task | size | corpus | result | score | turns | attempts | refusals | planner tokens "
        "| worker tokens | calls | cost | wall |"),
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in suite.tasks:
        verdict = "pass" if t.passed else f"**fail** ({t.status})"
        lines.append(
            f"| {t.task} | {_size(t.size)} | {_tokens(t.corpus_tokens)} | {verdict} | {t.score:.2f} | "
            f"{t.turns} | {t.attempts} | "
            f"{_refusals(t.refusals)} | {_tokens(t.planner_input_tokens + t.planner_output_tokens)} | "
            f"{_tokens(t.worker_input_tokens + t.worker_output_tokens)} | {t.worker_calls:,} | "
            f"{_cost(t.cost)} | {t.seconds:.1f} s |"
        )
    s = suite.totals
    lines.append(
        f"| **total** | | | **{s['passed']}/{s['runs']} ({s['pass_rate']:.1%})** | {s['mean_score']:.2f} | "
        f"{s['mean_turns']:.2f} | {s['mean_attempts']:.2f} | {_refusals(s['refusals'])} | "
        f"{_tokens(s['planner_tokens'])} | {_tokens(s['worker_tokens'])} | | {_cost(s['cost'])} | "
        f"{s['seconds']:.1f} s |"
    )
    if suite.interrupted:
        lines += ["", f"Interrupted after {len(suite.tasks)} task runs: the suite did not finish."]
    failures = [t for t in suite.tasks if not t.passed]
    if failures:
        lines += ["", "Not passed:", ""]
        lines += [f"- {t.task} ({_size(t.size)}): {t.detail or t.error or t.status}" for t in failures]
    return "\n".join(lines) + "\n"


def compare_table(a: SuiteResult, b: SuiteResult, names: Sequence[str] = ("A", "B")) -> str:
    """A Markdown comparison of two suite runs: per task run, then in total.

    Runs are matched by task and size; a run in one file only is listed as missing in the other.
    """
    left, right = names
    by_a = {t.key: t for t in a.tasks}
    by_b = {t.key: t for t in b.tasks}
    keys = list(by_a) + [k for k in by_b if k not in by_a]
    lines = [
        f"{left}: planner `{a.planner}`, worker `{a.worker}`, seed {a.seed}",
        f"{right}: planner `{b.planner}`, worker `{b.worker}`, seed {b.seed}",
        "",
        (f"| task | size | {left} | {right} | score {left} → {right} | tokens {left} → {right} "
        f"| wall {left} → {right} |"),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def verdict(t: TaskResult | None) -> str:
        return "missing" if t is None else ("pass" if t.passed else "fail")

    changed = []
    for key in keys:
        ta, tb = by_a.get(key), by_b.get(key)
        if ta is not None and tb is not None and ta.passed != tb.passed:
            changed.append(f"{key[0]} ({_size(key[1])}): {verdict(ta)} → {verdict(tb)}")
        score = f"{ta.score:.2f}" if ta else "-", f"{tb.score:.2f}" if tb else "-"
        tokens = _tokens(ta.total_tokens) if ta else "-", _tokens(tb.total_tokens) if tb else "-"
        wall = f"{ta.seconds:.1f} s" if ta else "-", f"{tb.seconds:.1f} s" if tb else "-"
        lines.append(
            f"| {key[0]} | {_size(key[1])} | {verdict(ta)} | {verdict(tb)} | {score[0]} → {score[1]} | "
            f"{tokens[0]} → {tokens[1]} | {wall[0]} → {wall[1]} |"
        )
    sa, sb = a.totals, b.totals
    lines.append(
        f"| **total** | | {sa['passed']}/{sa['runs']} | {sb['passed']}/{sb['runs']} | "
        f"{sa['mean_score']:.2f} → {sb['mean_score']:.2f} | {_tokens(sa['total_tokens'])} → "
        f"{_tokens(sb['total_tokens'])} | {sa['seconds']:.1f} s → {sb['seconds']:.1f} s |"
    )
    lines += [
        "",
        (f"mean attempts {sa['mean_attempts']:.2f} → {sb['mean_attempts']:.2f}; "
        f"cost {_cost(sa['cost'])} → {_cost(sb['cost'])}"),
    ]
    if changed:
        lines += ["", "Changed:", "", *(f"- {c}" for c in changed)]
    return "\n".join(lines) + "\n"
