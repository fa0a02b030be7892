"""What the corpus generators share: seeded randomness, filler prose, packing lines into chunks.

Sizes are in cl100k tokens, counted line by line as the corpus is made (the tokenizer reads
about three million tokens a second, so a corpus of a million tokens takes well under a second
to measure).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

from ..corpus._tokens import count_tokens

__all__ = [
    "CHUNK_TOKENS",
    "fill",
    "filler",
    "pack",
    "rng",
]

#: Tokens per chunk of the item corpora: small enough that a worker's per-item answer for a
#: whole chunk fits its default reply of 1,024 tokens.
CHUNK_TOKENS = 2_048

_VOCABULARY = (
    "the team reviewed schedule budget meeting notes draft plan vendor report weekly update "
    "room window coffee printer quarter figures office travel policy training session client "
    "slides agenda summary invoice shipment warehouse inventory forecast timeline estimate "
    "design review sprint backlog migration server cluster outage maintenance morning evening "
    "afternoon lunch walk garden library archive catalogue ledger memo calendar handbook "
    "survey sample dataset chart table column spreadsheet folder badge parking lobby elevator"
)
_WORDS = _VOCABULARY.split()
_OPENERS = ("Today", "Later", "This morning", "After lunch", "Before the call", "Meanwhile", "Again")


def rng(task: str, seed: int, size: int) -> random.Random:
    """The random generator of one case: a string seed, hashed the same way in every process."""
    return random.Random(f"ptcrun-bench/{task}/{seed}/{size}")


def fill(size: int, line: Callable[[int], str], *, least: int = 1) -> list[str]:
    """Lines ``line(0)``, ``line(1)``, ... until they hold ``size`` tokens (and ``least`` lines)."""
    lines: list[str] = []
    total = 0
    while total < size or len(lines) < least:
        text = line(len(lines))
        lines.append(text)
        total += count_tokens(text)
    return lines


def filler(r: random.Random, sentences: int = 2) -> str:
    """Plain office prose that means nothing to any task."""
    parts = []
    for _ in range(sentences):
        words = " ".join(r.choice(_WORDS) for _ in range(r.randint(6, 12)))
        parts.append(f"{r.choice(_OPENERS)} {words}.")
    return " ".join(parts)


def pack(lines: Iterable[str], chunk_tokens: int = CHUNK_TOKENS) -> list[str]:
    """Lines (each ending in a newline) into chunks of at most ``chunk_tokens`` tokens (a longer
    line is a chunk of its own), cut only between lines."""
    return list(_packed(lines, chunk_tokens))


def _packed(lines: Iterable[str], limit: int) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for line in lines:
        tokens = count_tokens(line)
        if chunk and size + tokens > limit:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += tokens
    if chunk:
        yield "".join(chunk)
