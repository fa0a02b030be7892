"""The text of a turn: the planner's first message, code extraction, and the feedback after a program.

Everything here is pure: text in, text out. The prompt never holds the corpus itself, only its
inventory (counts, sizes and a three-item sample cut to a few dozen characters), so the planner's
prompt does not grow with the corpus.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .._limits import Limits
from .._tools import Tool
from ..prompts._render import error_hint, render
from ..sandbox._results import ExecResult
from ..corpus._tokens import count_tokens

__all__ = [
    "ALLOWED_MODULES",
    "budget_line",
    "cut_middle",
    "extract_code",
    "feedback",
    "first_message",
    "system_prompt",
]

ALLOWED_MODULES = (
    "bisect", "collections", "datetime", "functools", "heapq", "itertools", "json", "math",
    "re", "statistics", "string", "textwrap",
)
_SAMPLE_CHARS = 40
# Above this many characters, chunk sizes are estimated from a sample rather than all counted.
_EXACT_COUNT_CHARS = 2_000_000
_SAMPLE_COUNT = 50
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.S)
_ANY_FENCE = re.compile(r"```[^\n`]*\n.*?```", re.S)


def system_prompt() -> str:
    """The planner's system prompt: static, so providers can cache it."""
    return render("planner_system", allowed_modules=", ".join(ALLOWED_MODULES))


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
    return (
        f"{text[:head]}\n[... {cut:,} of {len(text):,} characters cut from the middle; "
        f"print less, or print a summary ...]\n{text[len(text) - tail:]}"
    )


def _sizes(chunks: Sequence[str]) -> tuple[list[int], bool]:
    """Token count per chunk, and whether the counts are exact.

    Chunks from ``chunk_by_tokens`` carry their count. Others are counted, unless the corpus is
    large: then a sample of chunks is counted and the rest estimated at the sample's ratio of
    tokens to characters, so building the prompt stays cheap however big the corpus is.
    """
    known = [getattr(chunk, "tokens", None) for chunk in chunks]
    if all(isinstance(k, int) for k in known):
        return [int(k) for k in known], True  # type: ignore[arg-type]
    if sum(len(c) for c in chunks) <= _EXACT_COUNT_CHARS:
        return [count_tokens(c) for c in chunks], True
    step = max(1, len(chunks) // _SAMPLE_COUNT)
    sample = chunks[::step][:_SAMPLE_COUNT]
    ratio = sum(count_tokens(c) for c in sample) / max(1, sum(len(c) for c in sample))
    return [max(1, round(len(c) * ratio)) for c in chunks], False


def _describe_chunks(name: str, chunks: Sequence[str]) -> str:
    if not chunks:
        return f"`{name}`: 0 chunks (empty)."
    sizes, exact = _sizes(chunks)
    about = "" if exact else "about "
    lines = [
        f"`{name}`: {len(chunks):,} chunks, {about}{sum(sizes):,} tokens in all "
        f"(per chunk: min {min(sizes):,}, median {int(statistics.median(sizes)):,}, max {max(sizes):,}).",
        "A sample of the first chunks, each cut to a few dozen characters:",
    ]
    for index, chunk in enumerate(chunks[:3]):
        snippet = chunk[:_SAMPLE_CHARS].replace("\n", "\\n")
        more = "..." if len(chunk) > _SAMPLE_CHARS else ""
        lines.append(f"  [{index}] {json.dumps(snippet, ensure_ascii=False)[1:-1]}{more}")
    return "\n".join(lines)


def inventory(data: Sequence[str] | Mapping[str, Sequence[str]]) -> str:
    if isinstance(data, Mapping):
        parts = [f"`data` is a mapping of {len(data)} datasets: {', '.join(map(repr, data))}."]
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
) -> str:
    """The planner's first user message: goal, corpus inventory, tools, budget, schema."""
    described = [tools["worker"].describe()] if "worker" in tools else []
    described += [t.describe() for name, t in sorted(tools.items()) if name != "worker"]
    budget = (
        f"Left: {budget_line(snapshot)}. Planner and workers share the tokens. A worker call "
        f"reserves its input plus up to {limits.worker_max_tokens:,} output tokens; at most "
        f"{limits.max_concurrency} calls run at once; each call may take {limits.call_timeout:g} s "
        f"and each pmap {limits.pmap_timeout:g} s."
    )
    schema_note = ""
    if schema is not None:
        schema_note = (
            "\n## Answer format\n\nThe value given to done() must match this JSON Schema:\n"
            f"{json.dumps(schema, indent=2)}\n"
        )
    return render(
        "planner_first",
        goal=goal.strip(),
        inventory=inventory(data),
        tools="\n\n".join(described) or "(none)",
        budget=budget,
        schema_note=schema_note,
    )


def feedback(
    result: ExecResult,
    *,
    turn: int,
    limits: Limits,
    snapshot: Mapping[str, Any],
) -> str:
    """The message after a program ran: its output (cut), its error, the turn and budget."""
    output = result.output if result.output else "(no output - did you forget to print?)"
    error = ""
    if result.error is not None:
        hint = error_hint(result.error.kind)
        error = f"\n<error>\n{result.error}\n</error>\n" + (f"Hint: {hint}\n" if hint else "")
    note = f"Note: {result.note}\n" if result.note else ""
    return render(
        "turn_feedback",
        note=note,
        turn=turn,
        output=cut_middle(output.rstrip("\n"), limits.max_print_chars),
        error=error,
        next_turn=turn + 1,
        max_turns=limits.max_turns,
        budget=budget_line(snapshot),
    )
