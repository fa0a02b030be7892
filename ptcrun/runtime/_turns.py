"""The text of a turn: the planner's first message, code extraction, and the feedback after a program.

Everything here is pure: text in, text out. The prompt never holds the corpus itself, only its
inventory (counts, sizes and a three-item sample cut to a few dozen characters), so the planner's
prompt does not grow with the corpus.

The feedback states, whatever the program printed, how each of its pmaps went and which calls
failed and why (:func:`calls_report`): a program that sums the results it got and prints a
total must not make 43 failures out of 92 look like an answer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._limits import Limits
from .._tools import Tool
from ..corpus._store import StoredChunks
from ..corpus._tokens import count_tokens
from ..prompts._render import error_hint, render, render_inline
from ..sandbox._language import ALLOWED_MODULES
from ..sandbox._results import ExecResult
from ._budget import worst_case_tokens
from ._failures import PmapOutcome, ProgramFailures

__all__ = [
    "budget_line",
    "calls_report",
    "cut_middle",
    "extract_code",
    "feedback",
    "first_message",
    "system_prompt",
]

_SAMPLE_CHARS = 40
# Above this many characters, chunk sizes are estimated from a sample rather than all counted.
_EXACT_COUNT_CHARS = 2_000_000
_SAMPLE_COUNT = 50
#: Pmaps listed one by one in the feedback; the rest are summed on one line.
_SHOWN_PMAPS = 8
#: Characters of each failure kind's example message in the feedback.
_EXAMPLE_CHARS = 300
#: The fewest characters of printed output kept when the output is cut to fit the budget.
_MIN_OUTPUT_CHARS = 200
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL)
_ANY_FENCE = re.compile(r"```[^\n`]*\n.*?```", re.DOTALL)


def system_prompt(agent: bool = True) -> str:
    """The planner's system prompt: static, so providers can cache it.

    ``agent`` says whether the planner may start sub-runs (``tool.agent``): false when
    ``Limits.max_depth`` is 0, or in a sub-run at that depth.
    """
    offer = render("planner_agent") if agent else ""
    return render("planner_system", allowed_modules=", ".join(ALLOWED_MODULES), agent=offer)


def extract_code(reply: str) -> tuple[str | None, int]:
    """Return the reply's one ```python block and how many code blocks it had.

    The code is ``None`` unless there is exactly one block.
    """
    blocks = _BLOCK.findall(reply)
    others = len(_ANY_FENCE.findall(reply))
    count = max(len(blocks), others)
    if len(blocks) == 1 and count == 1:
        return blocks[0], 1
    return None, count


def cut_middle(text: str, max_chars: int) -> str:
    """Keep the head and the tail of ``text`` within ``max_chars``, noting how much was cut."""
    if len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    cut = len(text) - head - tail
    note = render("output_cut", cut=f"{cut:,}", total=f"{len(text):,}")
    return f"{text[:head]}\n{note}{text[len(text) - tail:]}"


def _sizes(chunks: Sequence[str]) -> tuple[Counter[int], bool]:
    """How many chunks hold each token count, and whether the counts are exact.

    Chunks from ``chunk_by_tokens`` carry their count, and a store keeps the counts of its chunks
    in its footer. Others are counted, unless the corpus is large: then a sample of chunks is
    counted and the rest estimated at the sample's ratio of tokens to characters, so building
    the prompt stays cheap however big the corpus is.
    """
    if isinstance(chunks, StoredChunks):
        histogram = chunks.token_histogram()
        if histogram is not None:
            return Counter(histogram), True
        lengths: Iterable[int] = chunks.char_sizes()
        total_chars = chunks.chars
    else:
        known = [getattr(chunk, "tokens", None) for chunk in chunks]
        if all(isinstance(k, int) for k in known):
            return Counter(int(k) for k in known), True  # type: ignore[arg-type]
        lengths = [len(c) for c in chunks]
        total_chars = sum(lengths)
    if total_chars <= _EXACT_COUNT_CHARS:
        return Counter(count_tokens(c) for c in chunks), True
    step = max(1, len(chunks) // _SAMPLE_COUNT)
    sample = [chunks[i] for i in range(0, len(chunks), step)][:_SAMPLE_COUNT]
    ratio = sum(count_tokens(c) for c in sample) / max(1, sum(len(c) for c in sample))
    return Counter(max(1, round(length * ratio)) for length in lengths), False


def _median(histogram: Mapping[int, int]) -> float:
    """statistics.median of the multiset a histogram describes, without listing it."""
    total = sum(histogram.values())
    middle = sorted(histogram.items())
    wanted = [(total - 1) // 2, total // 2]  # the one or two middle positions
    found: list[int] = []
    seen = 0
    for size, count in middle:
        while wanted and wanted[0] < seen + count:
            found.append(size)
            wanted.pop(0)
        seen += count
    return sum(found) / len(found)


def _describe_chunks(name: str, chunks: Sequence[str]) -> str:
    if not chunks:
        return render_inline("inventory_empty", label=name)
    sizes, exact = _sizes(chunks)
    total = sum(size * count for size, count in sizes.items())
    summary = render(
        "inventory_chunks",
        label=name,
        chunks=f"{len(chunks):,}",
        tokens=f"{total:,}" if exact else f"about {total:,}",
        smallest=f"{min(sizes):,}",
        median=f"{int(_median(sizes)):,}",
        largest=f"{max(sizes):,}",
    )
    samples = []
    for index in range(min(3, len(chunks))):
        chunk = chunks[index]
        # JSON string escapes make line breaks and quotes visible on one line.
        snippet = json.dumps(chunk[:_SAMPLE_CHARS], ensure_ascii=False)[1:-1]
        more = "..." if len(chunk) > _SAMPLE_CHARS else ""
        samples.append(f"  [{index}] {snippet}{more}")
    return summary + "\n".join(samples)


def inventory(data: Sequence[str] | Mapping[str, Sequence[str]]) -> str:
    if isinstance(data, Mapping):
        parts = [render_inline("inventory_datasets", count=len(data), names=", ".join(map(repr, data)))]
        parts += [_describe_chunks(f"data[{name!r}]", chunks) for name, chunks in data.items()]
        return "\n".join(parts)
    return _describe_chunks("data", data)


def budget_line(snapshot: Mapping[str, Any]) -> str:
    """``"12,000 tokens, 3 turns, 1,200 s ($0.0400 spent)"``: what is left, and cost so far."""
    parts = [f"{snapshot['tokens']:,} tokens", f"{snapshot['turns']} turns"]
    if snapshot.get("seconds") is not None:
        parts.append(f"{snapshot['seconds']:,.0f} s")
    text = ", ".join(parts)
    if snapshot.get("cost"):
        text += f" (${snapshot['cost']:.4f} spent)"
    return text


def first_message(
    goal: str,
    data: Sequence[str] | Mapping[str, Sequence[str]],
    tools: Mapping[str, Tool],
    limits: Limits,
    snapshot: Mapping[str, Any],
    schema: Any | None,
    *,
    corpus_tokens: int,
    pass_tokens: int,
) -> str:
    """The planner's first user message: goal, corpus inventory, tools, budget, schema.

    ``corpus_tokens`` and ``pass_tokens`` (what one worker call on every chunk reserves) let
    the planner size its first fan-out against the budget.
    """
    described = [tools["worker"].describe()] if "worker" in tools else []
    described += [t.describe() for name, t in sorted(tools.items()) if name != "worker"]
    schema_note = ""
    if schema is not None:
        schema_note = render("planner_schema_note", schema=json.dumps(schema, indent=2))
    values = {
        "goal": goal.strip(),
        "inventory": inventory(data),
        "tools": "\n\n".join(described) or "(none)",
        "budget": budget_line(snapshot),
        "corpus_tokens": f"{corpus_tokens:,}",
        "pass_tokens": f"{pass_tokens:,}",
        "pass_share": f"{pass_tokens / limits.max_tokens:.0%}",
        "worker_max_tokens": f"{limits.worker_max_tokens:,}",
        "max_concurrency": limits.max_concurrency,
        "call_timeout": f"{limits.call_timeout:g}",
        "pmap_timeout": f"{limits.pmap_timeout:g}",
        "schema_note": schema_note,
        "agent_note": "",
    }
    if "agent" not in tools:
        return render("planner_first", **values)
    # What a sub-run's planner holds of its slice, with this request standing in for its first
    # (a sub-run's differs in its goal and corpus): a planner that slices by the example's
    # figure alone could leave its sub-runs' programs nothing to spend.
    counted = count_tokens(system_prompt(agent=True)) + count_tokens(render("planner_first", **values))
    note = render_inline("planner_agent_budget", tokens=f"{two_turns_tokens(counted, limits):,}")
    return render("planner_first", **{**values, "agent_note": f"\n{note}"})


def two_turns_tokens(counted: int, limits: Limits) -> int:
    """What a planner's first two turns reserve at most, its first request counting
    ``counted`` tokens: that request's worst case (until it settles) and the second's, which
    is held back while the first program runs."""
    reply = limits.planner_max_tokens
    second = worst_case_tokens(counted + reply + limits.feedback_reserve_tokens, reply)
    return worst_case_tokens(counted, reply) + second


def _kinds(kinds: Mapping[str, int]) -> str:
    """`` (43 BudgetExceeded, 2 ToolError)``, most frequent first; nothing when empty."""
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    return f" ({', '.join(f'{count:,} {kind}' for kind, count in ranked)})" if ranked else ""


def _pmap_line(p: PmapOutcome) -> str:
    return render_inline(
        "turn_calls_pmap",
        total=f"{p.total:,}",
        nested=render_inline("turn_calls_nested") if p.nested else "",
        ok=f"{p.ok:,}",
        failed=f"{p.failed:,}",
        kinds=_kinds(p.kinds),
    )


def calls_report(failures: ProgramFailures) -> str:
    """The feedback's account of a program's calls: each pmap's outcome, the failures by kind
    and why, and what to do about them; empty when the program ran no pmap and no call failed."""
    if not failures.pmaps and not failures.failed and not failures.partial_sub_runs:
        return ""
    lines = [_pmap_line(p) for p in failures.pmaps[:_SHOWN_PMAPS]]
    rest = failures.pmaps[_SHOWN_PMAPS:]
    if rest:
        kinds: dict[str, int] = {}
        for p in rest:
            for kind, count in p.kinds.items():
                kinds[kind] = kinds.get(kind, 0) + count
        lines.append(render_inline(
            "turn_calls_more",
            count=len(rest),
            total=f"{sum(p.total for p in rest):,}",
            ok=f"{sum(p.ok for p in rest):,}",
            failed=f"{sum(p.failed for p in rest):,}",
            kinds=_kinds(kinds),
        ))
    calls = (("turn_calls_loose", failures.loose_failed), ("turn_calls_caught", failures.caught_failed))
    for name, counts in calls:
        if counts:
            lines.append(render_inline(name, failed=f"{sum(counts.values()):,}", kinds=_kinds(counts)))
    if failures.partial_sub_runs:
        lines.append(render_inline(
            "turn_calls_sub",
            count=f"{failures.partial_sub_runs:,}",
            failed=f"{sum(failures.sub_run_failed.values()):,}",
            kinds=_kinds(failures.sub_run_failed),
        ))
    why = advice = ""
    if failures.failed:
        examples = [
            f"- {kind}: {' '.join(message.split())[:_EXAMPLE_CHARS]}"
            for kind, message in failures.examples.items()
        ]
        if examples:
            why = render("turn_calls_why", examples="\n".join(examples))
        advice = render("turn_calls_advice", failed=f"{failures.failed:,}")
    return render("turn_calls", lines="\n".join(lines), why=why, advice=advice)


def feedback(
    result: ExecResult,
    *,
    turn: int,
    limits: Limits,
    snapshot: Mapping[str, Any],
    failures: ProgramFailures | None = None,
    fit_tokens: int | None = None,
) -> str:
    """The message after a program ran: its output (cut), its error, its calls, the turn and budget.

    Args:
        failures: the program's pmaps and failed calls (:func:`calls_report`).
        fit_tokens: the most tokens the message may take so that the planner's next turn fits
            the budget; the printed output is cut further, down to a few hundred characters,
            to fit them. ``None``: cut at ``limits.max_print_chars`` only.
    """
    output = (result.output or render_inline("no_output")).rstrip("\n")
    error = ""
    if result.error is not None:
        hint = error_hint(result.error.kind)
        error = render("turn_error", error=result.error) + (render("turn_hint", hint=hint) if hint else "")
    note = render("turn_note", note=result.note) if result.note else ""
    calls = calls_report(failures) if failures is not None else ""

    def text(max_chars: int) -> str:
        return render(
            "turn_feedback",
            note=note,
            turn=turn,
            output=cut_middle(output, max_chars),
            error=error,
            calls=calls,
            next_turn=turn + 1,
            max_turns=limits.max_turns,
            budget=budget_line(snapshot),
        )

    max_chars = limits.max_print_chars
    message = text(max_chars)
    if fit_tokens is None:
        return message
    # Printed output is the one part of the message that may be long; the rest must reach
    # the planner whole. Shrink the output until the message fits, or cannot shrink more.
    for _ in range(4):
        excess = count_tokens(message) - fit_tokens
        shown = cut_middle(output, max_chars)
        if excess <= 0 or len(shown) <= _MIN_OUTPUT_CHARS:
            break
        shown_tokens = max(count_tokens(shown), 1)
        keep = max(shown_tokens - excess, 0) / shown_tokens
        max_chars = max(_MIN_OUTPUT_CHARS, int(len(shown) * keep * 0.9))
        message = text(max_chars)
    return message
