"""A corpus on one huge line: chunking takes memory in proportion to the text, not to the line.

Lines longer than ``_PIECE_CHARS`` are indexed and counted in pieces. The properties of
``tests/corpus/test_chunking.py`` must hold when every line is long, so they run again here with
pieces of a few characters; and a single-line corpus must not take more memory to chunk than
the same text in ordinary lines (``benchmarks/bench_chunk_memory.py`` measures 50 MB of each).
"""

from __future__ import annotations

import tracemalloc
from unittest import mock

from hypothesis import assume, given
from hypothesis import strategies as st

from ptcrun.corpus import _chunking
from ptcrun.corpus._chunking import chunk_by_lines, chunk_by_tokens
from ptcrun.corpus._tokens import count_tokens
from tests.corpus.test_chunking import check_cover, sizes, texts, word_lines

TINY = mock.patch.object(_chunking, "_PIECE_CHARS", 16)


@given(texts, sizes(low=4))
def test_token_chunks_keep_their_properties_when_lines_are_cut_into_pieces(text, size_overlap):
    size, overlap = size_overlap
    with TINY:
        chunks = chunk_by_tokens(text, size, overlap)
    check_cover(text, chunks)
    for chunk in chunks:
        assert count_tokens(chunk) <= size
        assert count_tokens(chunk[: chunk.overlap]) <= overlap


@given(texts, sizes())
def test_line_chunks_count_long_chunks_exactly_in_pieces(text, size_overlap):
    with TINY:
        check_cover(text, chunk_by_lines(text, *size_overlap))


@given(st.text(alphabet="ab 1,.:{}\"'é中🦜\u0301\n\r\t", max_size=400))
def test_counting_in_pieces_gives_the_count_of_the_whole(text):
    with TINY:
        assert _chunking._count(text, 0, len(text)) == count_tokens(text)


@given(word_lines, st.integers(8, 200), st.integers(0, 7))
def test_a_long_line_cut_where_the_tokenizer_cuts_is_chunked_as_if_whole(lines, size, overlap):
    text = " ".join(lines)  # one line of short words
    with mock.patch.object(_chunking, "_PIECE_CHARS", 32):
        cuts = _chunking._pieces(text, 0, len(text))
        # Every piece ends where the tokenizer splits anyway (the usual case in real text; a
        # piece cut inside a long word only makes the positions an estimate).
        assume(all(_chunking._SPLIT.match(text, cut - 1) for cut in cuts))
        pieces = chunk_by_tokens(text, size, overlap)
    whole = chunk_by_tokens(text, size, overlap)
    assert [(c.start, c.end, c.tokens) for c in pieces] == [(c.start, c.end, c.tokens) for c in whole]


def _peak_bytes(text: str) -> int:
    tracemalloc.start()
    try:
        chunk_by_tokens(text, 4000)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_one_huge_line_takes_no_more_memory_than_ordinary_lines():
    chunk_by_tokens("warm up\n" + "x" * 40_000, 100)  # tables built once per process
    lines = "".join(f"2025-01-01 INFO request {i} served in {i % 97} ms by worker-{i % 8}\n" for i in range(20_000))
    ordinary, single = _peak_bytes(lines), _peak_bytes(lines.replace("\n", " "))
    # Beyond the chunks (one copy of the text), a long line costs only the token boundaries of
    # the few pieces a cut lands in: a constant. Encoding the 1.1 MB line whole held some 70
    # bytes per token, over 20 MB here.
    assert single < ordinary + 4_000_000
