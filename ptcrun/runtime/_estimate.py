"""What a run would cost, before anything is spent: :class:`Estimate` and the counts behind it.

The problem: a budget too small for one pass over the corpus ends a run half way, after the
money is spent; a planner that cannot tell what a fan-out costs finds out the same way. So the
figures here are computed, never asked of a provider: each worker request is rendered exactly as
``tool.worker`` renders it, counted with the counter the ledger uses, and priced with the
ledger's own reservation rule (:func:`~ptcrun.runtime._budget.worst_case_tokens`). A full pass
estimated here is what the ledger will reserve for those calls, call for call.

What it cannot know: how much the models will actually write (the estimate counts the whole
output allowance, so a run spends less than it reserves), the repair request a worker makes
when its JSON answer does not match its schema, and what ``tool.agent`` sub-runs will spend: how
many a program starts, and the slice each gets, are the program's choice. What holds whatever it
chooses is stated instead: each sub-run spends at most its slice, the slices are reserved from
the run's budget, so the run's ``Limits.max_tokens`` bounds the whole tree; and a sub-run's
planner takes part of its slice before its program can spend any (``sub_run_planner_tokens``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from .. import errors
from .._limits import Limits
from .._result import Result
from .._tools import Tool
from ..corpus._tokens import count_tokens
from ._agent import Nesting, make_agent_tool
from ._budget import Ledger, worst_case_tokens
from ._counts import WorkerCounts
from ._turns import _sizes, first_message, system_prompt, two_turns_tokens
from ._worker import make_worker_tool
from .providers._base import Provider

__all__ = [
    "Estimate",
    "estimate",
    "first_snapshot",
    "make_estimator",
    "pass_tokens_about",
    "worker_reservations",
]


async def _never(*args: Any) -> Result:
    raise AssertionError("an estimate starts no sub-run")


@attrs.frozen
class Estimate:
    """What a run over a corpus would cost, computed before anything is sent.

    *A full pass* is one ``tool.worker`` call on every chunk (of every dataset), with the goal
    as the instruction and ``worker_output_tokens`` of output allowed each. Token figures for a
    pass or a planner turn are what the run's ledger reserves for them: counted input plus a
    quarter (the margin for other tokenizers) plus a fixed overhead per request, plus the whole
    output allowance. A run spends less than that: models rarely write their whole allowance.

    Attributes:
        chunks: chunks in the corpus.
        corpus_tokens: the corpus's tokens, counted; ``largest_chunk_tokens`` and
            ``mean_chunk_tokens`` describe its chunks.
        worker_output_tokens: the output allowed to each worker call of the pass.
        pass_input_tokens: the pass's input as counted (system prompt, request template and
            chunk, for every call), before the margin.
        pass_tokens: what the ledger reserves for the whole pass.
        planner_input_tokens: the planner's first request (system prompt and first message),
            counted.
        planner_first_tokens: what the ledger reserves for the planner's first turn.
        planner_second_tokens: the worst case of its second turn (the conversation so far, the
            feedback allowance and a whole reply), which the run holds back while a program runs.
        needed_tokens: a full pass plus the planner's first two turns.
        max_tokens: ``Limits.max_tokens``; ``fits`` says whether ``needed_tokens`` fits it.
        cost: the USD price of ``needed_tokens`` without the margin (counted input, whole output
            allowances) where both providers have a price; ``None`` otherwise.
        sub_runs: programs may start ``tool.agent`` sub-runs (``Limits.max_depth`` > 0). Their
            spending is not in ``needed_tokens`` or ``cost``: it is the program's choice, bounded
            by the slices it sets aside, all within ``max_tokens``.
        sub_run_planner_tokens: about what a sub-run over one chunk (the largest) holds of its
            slice for its planner while its first program runs, at most: the first turn's
            reservation (until it settles) and the second turn's, held back. A slice not larger
            than this leaves the sub-run's program little or nothing for its own calls. The run's
            goal stands in for the sub-run's. ``None`` without sub-runs.
        budget_cost: the most the whole budget can cost, sub-runs included: ``max_tokens`` at
            the dearest price (input or output) of the planner, the worker and the sub-runs'
            planner; ``None`` when one has no price.
    """

    chunks: int
    corpus_tokens: int
    largest_chunk_tokens: int
    mean_chunk_tokens: float
    worker_output_tokens: int
    pass_input_tokens: int
    pass_tokens: int
    planner_input_tokens: int
    planner_first_tokens: int
    planner_second_tokens: int
    needed_tokens: int
    max_tokens: int
    fits: bool
    cost: float | None
    sub_runs: bool = False
    sub_run_planner_tokens: int | None = None
    budget_cost: float | None = None

    def describe(self) -> str:
        """The estimate as a few plain lines, as ``ptcrun run --dry-run`` prints it."""
        corpus = (
            f"corpus: {self.chunks:,} chunks, {self.corpus_tokens:,} tokens (largest "
            f"{self.largest_chunk_tokens:,}, mean {self.mean_chunk_tokens:,.0f})"
        )
        full_pass = (
            f"one worker call per chunk: {self.pass_tokens:,} tokens reserved ({self.pass_input_tokens:,} "
            f"input counted, up to {self.worker_output_tokens:,} output each)"
        )
        planner = (
            f"planner: first turn {self.planner_first_tokens:,} tokens reserved "
            f"({self.planner_input_tokens:,} input counted), second turn up to {self.planner_second_tokens:,}"
        )
        needed = f"needed for a full pass and two planner turns: {self.needed_tokens:,} tokens"
        lines = [corpus, full_pass, planner, needed]
        if self.fits:
            lines.append(f"fits the budget: yes ({self.max_tokens:,} tokens)")
        else:
            lines.append(
                f"fits the budget: no ({self.max_tokens:,} tokens); {self.needed_tokens:,} would "
                f"(raise Limits.max_tokens)"
            )
        cost = "unknown (no price for the model)" if self.cost is None else f"${self.cost:,.4f}"
        lines.append(f"cost at most: {cost}" + (" (without sub-runs)" if self.sub_runs else ""))
        if self.sub_runs:
            lines.append(
                f"sub-runs (tool.agent): not counted above; each spends at most the max_tokens its "
                f"call sets aside, reserved from this budget, so the run with all its sub-runs stays "
                f"within {self.max_tokens:,} tokens"
            )
            if self.sub_run_planner_tokens is not None:
                lines.append(
                    f"a sub-run over one chunk holds up to {self.sub_run_planner_tokens:,} tokens of its "
                    f"max_tokens for its planner's first two turns; its program may spend the rest"
                )
            ceiling = "unknown (no price for a model)"
            if self.budget_cost is not None:
                ceiling = f"${self.budget_cost:,.4f}"
            lines.append(f"the whole budget costs at most: {ceiling}")
        return "\n".join(lines)


def worker_reservations(
    texts: Sequence[str], instruction: str, schema: Any, max_tokens: int
) -> tuple[int, int]:
    """What the ledger reserves for ``tool.worker(text, instruction, schema, max_tokens)`` on
    each of ``texts``: the total reservation and the total counted input.

    Each request is counted as the worker tool counts it for the ledger (from its parts, a chunk
    by its own count: :class:`~._counts.WorkerCounts`).
    """
    reserved = counted = 0
    counts = WorkerCounts(texts)
    for text in texts:
        tokens = counts.request(text, instruction, schema)
        counted += tokens
        reserved += worst_case_tokens(tokens, max_tokens)
    return reserved, counted


def make_estimator(limits: Limits) -> Callable[[list[str], str, Any, int | None], int]:
    """The answer to a program's ``budget.estimate(texts, instruction, schema, max_tokens)``:
    the tokens those ``tool.worker`` calls would reserve, checked as the worker checks them.

    Raises (to the program):
        ToolArgumentError: ``max_tokens`` outside 1 to ``Limits.worker_max_tokens``.
    """

    def estimate_calls(texts: list[str], instruction: str, schema: Any, max_tokens: int | None) -> int:
        if max_tokens is None:
            max_tokens = limits.worker_max_tokens
        elif not 1 <= max_tokens <= limits.worker_max_tokens:
            raise errors.ToolArgumentError(
                f"budget.estimate got max_tokens={max_tokens}; it must be between 1 and "
                f"Limits.worker_max_tokens={limits.worker_max_tokens:,}, as for tool.worker.",
                tool="worker",
            )
        return worker_reservations(texts, instruction, schema, max_tokens)[0]

    return estimate_calls


def _all_chunks(data: Sequence[str] | Mapping[str, Sequence[str]]) -> Iterator[str]:
    """Every chunk of every dataset, one at a time: a store is read, never held."""
    if isinstance(data, Mapping):
        for chunks in data.values():
            yield from chunks
    else:
        yield from data


def pass_tokens_about(
    data: Sequence[str] | Mapping[str, Sequence[str]], instruction: str, max_tokens: int
) -> tuple[int, int]:
    """The corpus's tokens, and about what a full worker pass reserves, cheaply.

    The planner's first message states these. Chunks from ``chunk_by_tokens`` and stores carry
    their counts, so this counts only the request around one empty chunk and adds each chunk's
    count to it: within a few tokens of :func:`worker_reservations`, without reading the corpus
    (a large corpus without counts is sampled, as its inventory is).
    """
    parts = list(data.values()) if isinstance(data, Mapping) else [data]
    sizes: Counter[int] = Counter()
    for chunks in parts:
        sizes.update(_sizes(chunks)[0])
    _, around = worker_reservations([""], instruction, None, max_tokens)
    corpus = sum(size * count for size, count in sizes.items())
    return corpus, sum(worst_case_tokens(around + size, max_tokens) * count for size, count in sizes.items())


def _price(provider: Provider, input_tokens: int, output_tokens: int) -> float | None:
    price = provider.price
    if price is None:
        return None
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000


def first_snapshot(limits: Limits) -> dict[str, Any]:
    """The budget as the planner's first message states it, before anything is spent."""
    return {
        "tokens": limits.max_tokens,
        "turns": limits.max_turns,
        "seconds": None if math.isinf(limits.run_timeout) else round(limits.run_timeout, 1),
        "cost": 0.0,
    }


def _two_turns(goal: str, data: Any, tools: Mapping[str, Tool], limits: Limits, *, agent: bool) -> int:
    """What a planner's first two turns over ``data`` reserve: its first request's worst case,
    and the second's, held back while the first program runs."""
    offered = {name: t for name, t in tools.items() if name != "agent" or agent}
    corpus, about = pass_tokens_about(data, goal, limits.worker_max_tokens)
    first = first_message(
        goal, data, offered, limits, first_snapshot(limits), None, corpus_tokens=corpus, pass_tokens=about
    )
    return two_turns_tokens(count_tokens(system_prompt(agent=agent)) + count_tokens(first), limits)


def _dearest(providers: Sequence[Provider], max_tokens: int) -> float | None:
    """``max_tokens`` at the highest price per token of ``providers``; None if one has no price."""
    rates = []
    for provider in providers:
        if provider.price is None:
            return None
        rates += [provider.price.input_per_mtok, provider.price.output_per_mtok]
    return max_tokens * max(rates) / 1_000_000


def estimate(
    *,
    planner: Provider,
    worker: Provider,
    tools: Mapping[str, Tool],
    limits: Limits,
    goal: str,
    data: Sequence[str] | Mapping[str, Sequence[str]],
    schema: Any,
    output_tokens: int | None = None,
    sub_planner: Provider | None = None,
) -> Estimate:
    """Compute the :class:`Estimate` of a run; no provider is called.

    Args:
        sub_planner: the provider of the sub-runs' planner; defaults to ``planner``.
        tools: the user's tools, as the first message lists them.
        schema: the answer's JSON Schema (checked), or None.
        output_tokens: the output allowed to each worker call of the pass; defaults to
            ``limits.worker_max_tokens``, what ``tool.worker`` allows when not told.
    """
    allowance = limits.worker_max_tokens if output_tokens is None else output_tokens
    # One pass, one chunk at a time: a corpus in a store is read once and never held.
    chunks = corpus_tokens = largest = pass_tokens = pass_input = 0
    largest_chunk = ""
    for chunk in _all_chunks(data):
        size = count_tokens(chunk)
        reserved, counted = worker_reservations([chunk], goal, None, allowance)
        chunks += 1
        corpus_tokens += size
        if size > largest or not largest_chunk:
            largest, largest_chunk = size, chunk
        pass_tokens += reserved
        pass_input += counted
    worker_tool = make_worker_tool(
        provider=worker,
        ledger=Ledger(limits.max_tokens),
        limits=limits,
        emit=lambda event: None,
        span_of_call=lambda call: "",
    )
    offered = {"worker": worker_tool}
    if limits.max_depth:
        offered["agent"] = make_agent_tool(
            data=data, limits=limits, ledger=Ledger(limits.max_tokens), nesting=Nesting.top(limits),
            span_of_call=lambda call: "", start=_never,
        )
    corpus, about = pass_tokens_about(data, goal, limits.worker_max_tokens)
    first = first_message(
        goal, data, {**offered, **tools}, limits, first_snapshot(limits), schema,
        corpus_tokens=corpus, pass_tokens=about,
    )
    planner_input = count_tokens(system_prompt(agent=limits.max_depth > 0)) + count_tokens(first)
    reply = limits.planner_max_tokens
    planner_first = worst_case_tokens(planner_input, reply)
    second_input = planner_input + reply + limits.feedback_reserve_tokens
    planner_second = worst_case_tokens(second_input, reply)
    needed = pass_tokens + planner_first + planner_second
    worker_cost = _price(worker, pass_input, allowance * chunks)
    planner_cost = _price(planner, planner_input + second_input, 2 * reply)
    sub_run_tokens: int | None = None
    used = [planner, worker]
    if limits.max_depth and chunks:
        # A sub-run's goal is the program's to write: the run's goal stands in for it.
        offered_below = {**offered, **tools}
        sub_run_tokens = _two_turns(goal, [largest_chunk], offered_below, limits, agent=limits.max_depth > 1)
        used.append(sub_planner if sub_planner is not None else planner)
    return Estimate(
        chunks=chunks,
        corpus_tokens=corpus_tokens,
        largest_chunk_tokens=largest,
        mean_chunk_tokens=corpus_tokens / chunks if chunks else 0.0,
        worker_output_tokens=allowance,
        pass_input_tokens=pass_input,
        pass_tokens=pass_tokens,
        planner_input_tokens=planner_input,
        planner_first_tokens=planner_first,
        planner_second_tokens=planner_second,
        needed_tokens=needed,
        max_tokens=limits.max_tokens,
        fits=needed <= limits.max_tokens,
        cost=None if worker_cost is None or planner_cost is None else worker_cost + planner_cost,
        sub_runs=limits.max_depth > 0,
        sub_run_planner_tokens=sub_run_tokens,
        budget_cost=_dearest(used, limits.max_tokens),
    )
