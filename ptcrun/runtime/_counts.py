"""The input tokens of a worker request, from counts of its parts instead of the whole.

A worker request is the worker's system prompt, the request template with the instruction (and
the schema's note) and the text. Counting the whole rendered request with tiktoken costs about
as much as the text is long, on the event loop, for every call, although the chunker already
counted each chunk (``Chunk.tokens``) and the template with its instruction is the same for
every call of a fan-out. So the count is the sum of the parts: the system prompt and each
template with its instruction counted once, and the text's count taken from the chunks the run
was given when it is one of them.

A sum of parts is not the count of the whole: where two parts meet, the tokenizer may merge or
split characters differently. cl100k's pre-tokenizer splits at the line breaks around the text,
so the difference is a token or two at each seam; :data:`SEAM_TOKENS` more per seam are added,
and the ledger's reservation adds its own margin on top (``INPUT_ESTIMATE_MARGIN``), so the
reservation stays an upper bound. The ledger is then settled with the provider's reported usage,
as for any request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..corpus._tokens import count_tokens
from ..prompts._render import render

__all__ = ["SEAM_TOKENS", "WorkerCounts"]

#: Tokens added for each place where two separately counted parts meet.
SEAM_TOKENS = 2
#: A template's text stands where the request's text goes, to be counted without it.
_HOLE = "\n"


@functools.lru_cache(maxsize=1024)
def _frame_tokens(instruction: str, schema_json: str | None) -> int:
    """Tokens of the worker's system prompt and request template with ``instruction``, the
    text left out: the same for every call of a fan-out, so counted once."""
    schema_note = render("worker_schema_note", schema=schema_json) if schema_json is not None else ""
    template = render("worker_request", instruction=instruction, text=_HOLE, schema_note=schema_note)
    return count_tokens(render("worker_system")) + count_tokens(template)


class WorkerCounts:
    """Counts worker requests from their parts, with the counts the chunker already made.

    Args:
        chunks: the run's chunks; those that carry ``tokens`` (``chunk_by_tokens``) are known
            by their text, keyed by the run's own string objects (no copy).
    """

    def __init__(self, chunks: Iterable[object] = ()) -> None:
        self._known: dict[str, int] = {}
        for chunk in chunks:
            tokens = getattr(chunk, "tokens", None)
            if isinstance(chunk, str) and isinstance(tokens, int) and not isinstance(tokens, bool):
                self._known[chunk] = tokens

    @classmethod
    def of_data(cls, data: object) -> WorkerCounts:
        """Counts for a run's ``data``: a list of chunks, or a mapping of names to such lists."""
        if isinstance(data, Mapping):
            return cls(chunk for chunks in data.values() if isinstance(chunks, list) for chunk in chunks)
        return cls(data if isinstance(data, list) else ())

    def text(self, text: str) -> int:
        """The tokens of ``text``: the chunker's count when it is a chunk of the run."""
        known = self._known.get(text)
        return count_tokens(text) if known is None else known

    def request(self, text: str, instruction: str, schema: Any = None) -> int:
        """At least the tokens :func:`~._llm.request_tokens` counts for the worker request of
        ``tool.worker(text, instruction, schema)`` (see the module's note on seams)."""
        schema_json = None if schema is None else json.dumps(schema)
        return _frame_tokens(instruction, schema_json) + self.text(text) + 3 * SEAM_TOKENS
