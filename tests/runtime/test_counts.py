"""Worker requests counted from their parts: never fewer tokens than the whole, and a chunk the
chunker counted is not counted again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun import chunk_by_tokens
from ptcrun.runtime import _counts
from ptcrun.runtime._counts import WorkerCounts
from ptcrun.runtime._llm import request_tokens
from ptcrun.runtime._worker import worker_prompt, worker_request
from ptcrun.runtime.providers._base import Message

# Text that stresses the tokenizer's seams: spaces, line breaks, digits, punctuation, emoji.
PIECES = st.sampled_from(["a", "ab", " ", "  ", "\n", "\n\n", "\t", "1", "23", "{", "}", '"', "é", "😀", "<", ">", "ERROR", " x"])
TEXT = st.lists(PIECES, max_size=40).map("".join)
SCHEMAS = st.sampled_from([None, {"type": "integer"}, {"type": "array", "items": {"type": "string"}}])


def whole(text: str, instruction: str, schema) -> int:
    return request_tokens(worker_request((Message("user", worker_prompt(text, instruction, schema)),), 10))


@settings(max_examples=400, deadline=None)
@given(text=TEXT, instruction=TEXT, schema=SCHEMAS)
def test_the_count_from_parts_is_never_below_the_count_of_the_whole(text, instruction, schema):
    # The reservation rests on this count: below the real input it would not be an upper bound.
    assert WorkerCounts().request(text, instruction, schema) >= whole(text, instruction, schema)


def test_a_chunk_the_chunker_counted_is_not_counted_again(monkeypatch):
    chunks = chunk_by_tokens("INFO ok\nERROR disk full\n" * 400, 200)
    counts = WorkerCounts.of_data({"logs": chunks})
    counted: list[str] = []
    real = _counts.count_tokens
    monkeypatch.setattr(_counts, "count_tokens", lambda text: counted.append(text) or real(text))
    for chunk in chunks:
        assert counts.request(str(chunk), "Count the ERROR lines.") >= whole(str(chunk), "Count the ERROR lines.", None)
    # Only the template with its instruction (and the system prompt) were counted, once.
    assert not any(str(chunk) == text for chunk in chunks for text in counted)
    assert len(counted) <= 2
    # A text that is not one of the run's chunks is counted.
    counts.request("a text of its own", "Count the ERROR lines.")
    assert "a text of its own" in counted
