"""What a run would cost, before anything is spent: :class:`Estimate` and the counts behind it.

The problem: a budget too small for one pass over the corpus ends a run half way, after the
money is spent; a planner that cannot tell what a fan-out costs finds out the same way. So the
figures here are computed, never asked of a provider: each worker request is rendered exactly as
``tool.worker`` renders it, counted with the counter the ledger uses, and priced with the
ledger's own reservation rule (:func:`~ptcrun.runtime._budget.worst_case_tokens`). A full pass
estimated here is what the ledger will reserve for those calls, call for call.

What it cannot know: how much the models will actually write (the estimate counts the whole
output allowance, so a run spends less than it reserves), and the repair request a worker makes
when its JSON answer does not match its schema.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .. import errors
from .._limits import Limits
from .._tools import Tool
from ..corpus._tokens import count_tokens
from ._budget import Ledger, worst_case_tokens
from ._counts import WorkerCounts
from ._turns import _sizes, first_message, system_prompt
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
        lines.append(f"cost at most: {cost}")
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


def _all_chunks(data: Sequence[str] | Mapping[str, Sequence[str]]) -> list[str]:
    if isinstance(data, Mapping):
        return [chunk for chunks in data.values() for chunk in chunks]
    return list(data)


def pass_tokens_about(
    data: Sequence[str] | Mapping[str, Sequence[str]], instruction: str, max_tokens: int
) -> tuple[int, int]:
    """The corpus's tokens, and about what a full worker pass reserves, cheaply.

    The planner's first message states these. Chunks from ``chunk_by_tokens`` carry their count,
    so this counts only the request around one empty chunk and adds each chunk's count to it:
    within a few tokens of :func:`worker_reservations`, without reading the corpus (a large
    corpus without counts is sampled, as its inventory is).
    """
    sizes, _ = _sizes(_all_chunks(data))
    _, around = worker_reservations([""], instruction, None, max_tokens)
    return sum(sizes), sum(worst_case_tokens(around + size, max_tokens) for size in sizes)


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
) -> Estimate:
    """Compute the :class:`Estimate` of a run; no provider is called.

    Args:
        tools: the user's tools, as the first message lists them.
        schema: the answer's JSON Schema (checked), or None.
        output_tokens: the output allowed to each worker call of the pass; defaults to
            ``limits.worker_max_tokens``, what ``tool.worker`` allows when not told.
    """
    allowance = limits.worker_max_tokens if output_tokens is None else output_tokens
    chunks = _all_chunks(data)
    sizes = [count_tokens(chunk) for chunk in chunks]
    pass_tokens, pass_input = worker_reservations(chunks, goal, None, allowance)
    worker_tool = make_worker_tool(
        provider=worker,
        ledger=Ledger(limits.max_tokens),
        limits=limits,
        emit=lambda event: None,
        span_of_call=lambda call: "",
    )
    corpus, about = pass_tokens_about(data, goal, limits.worker_max_tokens)
    first = first_message(
        goal, data, {"worker": worker_tool, **tools}, limits, first_snapshot(limits), schema,
        corpus_tokens=corpus, pass_tokens=about,
    )
    planner_input = count_tokens(system_prompt()) + count_tokens(first)
    reply = limits.planner_max_tokens
    planner_first = worst_case_tokens(planner_input, reply)
    second_input = planner_input + reply + limits.feedback_reserve_tokens
    planner_second = worst_case_tokens(second_input, reply)
    needed = pass_tokens + planner_first + planner_second
    worker_cost = _price(worker, pass_input, allowance * len(chunks))
    planner_cost = _price(planner, planner_input + second_input, 2 * reply)
    return Estimate(
        chunks=len(chunks),
        corpus_tokens=sum(sizes),
        largest_chunk_tokens=max(sizes, default=0),
        mean_chunk_tokens=statistics.fmean(sizes) if sizes else 0.0,
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
    )
