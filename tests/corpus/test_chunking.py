import json
import pickle
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptcrun.corpus._chunking import (
    Chunk,
    chunk_by_chars,
    chunk_by_lines,
    chunk_by_tokens,
    read_text,
)
from ptcrun.corpus._tokens import count_tokens, get_encoding
from ptcrun.errors import ConfigError

CHUNKERS = [chunk_by_tokens, chunk_by_lines, chunk_by_chars]


@pytest.fixture(autouse=True, scope="module")
def _loaded_encoding():
    get_encoding()  # load once, outside any example


# Lines of every kind a corpus has: words, long lines, unicode (combining marks, emoji, CJK),
# empty and whitespace-only lines, special-token text; joined by \n or \r\n, with or without a
# final line break.
words = st.lists(st.sampled_from(["INFO", "error", "id=42", "at", "foo()", "ok.", "Überall"]))
line = st.one_of(
    words.map(" ".join),
    st.text(max_size=300),
    st.text(alphabet=" \t\r\n", max_size=6),
    st.text(alphabet="ab 🦜中é\u0301", min_size=40, max_size=400),
    st.just("  at com.example.Handler.run(Handler.java:42)"),
    st.just("<|endoftext|>"),
)
texts = st.builds(
    lambda lines, newline, final: newline.join(lines) + (newline if final and lines else ""),
    st.lists(line, max_size=25),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)


@st.composite
def sizes(draw, low=1, high=60):
    size = draw(st.integers(low, high))
    return size, draw(st.integers(0, size - 1))


def line_count(text: str) -> int:
    return text.count("\n") + (bool(text) and not text.endswith("\n"))


def check_cover(text: str, chunks: list[Chunk]) -> None:
    assert bool(chunks) == bool(text)
    for i, chunk in enumerate(chunks):
        assert isinstance(chunk, Chunk) and chunk.index == i and chunk
        assert text[chunk.start : chunk.end] == chunk
        assert chunk.first_line == text.count("\n", 0, chunk.start) + 1
        assert chunk.last_line == text.count("\n", 0, chunk.end - 1) + 1
        assert chunk.tokens == count_tokens(chunk)
    if chunks:
        assert chunks[0].start == 0 and chunks[0].overlap == 0 and chunks[-1].end == len(text)
    for previous, chunk in pairwise(chunks):
        assert previous.start < chunk.start <= previous.end < chunk.end
        assert chunk.overlap == previous.end - chunk.start
        assert chunk[: chunk.overlap] == text[chunk.start : chunk.start + chunk.overlap]
        assert chunk[: chunk.overlap] == previous[len(previous) - chunk.overlap :]
    assert "".join(chunk[chunk.overlap :] for chunk in chunks) == text


@given(texts, sizes(low=4))
def test_token_chunks_cover_the_text_in_order(text, size_overlap):
    check_cover(text, chunk_by_tokens(text, *size_overlap))


@given(texts, sizes())
def test_line_chunks_cover_the_text_in_order(text, size_overlap):
    check_cover(text, chunk_by_lines(text, *size_overlap))


@given(texts, sizes(high=400))
def test_char_chunks_cover_the_text_in_order(text, size_overlap):
    check_cover(text, chunk_by_chars(text, *size_overlap))


@given(texts, sizes(low=4))
def test_no_token_chunk_exceeds_size_and_no_overlap_exceeds_overlap(text, size_overlap):
    size, overlap = size_overlap
    for chunk in chunk_by_tokens(text, size, overlap):
        assert count_tokens(chunk) <= size
        assert count_tokens(chunk[: chunk.overlap]) <= overlap


@given(texts, sizes())
def test_line_chunks_hold_size_lines_and_repeat_overlap_lines(text, size_overlap):
    size, overlap = size_overlap
    chunks = chunk_by_lines(text, size, overlap)
    for chunk in chunks[:-1]:
        assert line_count(chunk) == size
    for chunk in chunks[-1:]:
        assert line_count(chunk) <= size
    for chunk in chunks[1:]:
        assert line_count(chunk[: chunk.overlap]) == overlap


@given(texts, sizes(high=400))
def test_char_chunks_hold_size_chars_and_repeat_overlap_chars(text, size_overlap):
    size, overlap = size_overlap
    chunks = chunk_by_chars(text, size, overlap)
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert all(chunk.overlap == overlap for chunk in chunks[1:])


# Lines of plain words: their token counts add up exactly, so the rule can be checked exactly.
word_lines = st.lists(
    st.lists(st.text("abcdefxyz0123.:=()", min_size=1, max_size=12), min_size=1, max_size=6).map(
        " ".join
    ),
    min_size=1,
    max_size=40,
)


@given(word_lines, st.integers(8, 200), st.booleans())
def test_lines_shorter_than_a_quarter_of_size_are_never_split(lines, size, final):
    short = [line for line in lines if count_tokens(line + "\n") < size // 4]
    text = "\n".join(short) + ("\n" if final else "")
    for chunk in chunk_by_tokens(text, size):
        assert chunk.end == len(text) or chunk.endswith("\n")


def test_a_line_longer_than_size_is_split_inside_and_filled():
    text = "first line\n" + " ".join(f"word{i}" for i in range(400)) + "\nlast line\n"
    chunks = chunk_by_tokens(text, 50)
    assert len(chunks) > 10
    assert all(chunk.tokens <= 50 for chunk in chunks)
    inside = [chunk for chunk in chunks if chunk.first_line == chunk.last_line == 2][:-1]
    assert inside and all(chunk.tokens >= 50 - 50 // 4 for chunk in inside)


def test_overlap_keeps_a_stack_trace_whole_wherever_a_boundary_falls():
    record = "ERROR request failed\nTraceback (most recent call last):\n" + "".join(
        f'  File "app/h{i}.py", line {i}, in run\n    step_{i}()\n' for i in range(4)
    )
    lines = [f"INFO request {i} ok\n" for i in range(60)]
    record_tokens = count_tokens(record)
    for at in range(60):
        text = "".join(lines[:at]) + record + "".join(lines[at:])
        chunks = chunk_by_tokens(text, 3 * record_tokens, record_tokens + 5)
        assert any(record in chunk for chunk in chunks), at
        assert all(chunk.endswith("\n") for chunk in chunks)


def test_overlap_starts_at_a_line_start_when_one_is_near():
    text = "".join(f"id={i} ok\n" for i in range(300))  # each line is a few tokens
    chunks = chunk_by_tokens(text, 100, 30)
    for chunk in chunks[1:]:
        assert 0 < count_tokens(chunk[: chunk.overlap]) <= 30
        assert text[chunk.start - 1] == "\n"


def test_token_chunk_counts_are_taken_after_the_cut():
    # Counted line by line, "\n\n" is two tokens; counted together it is one.
    text = "\n" * 50 + "x" * 30
    for chunk in chunk_by_tokens(text, 5, 2):
        assert chunk.tokens == count_tokens(str(chunk)) <= 5


def test_lone_surrogates_and_special_token_text_are_chunked():
    text = ("a\ud800b <|endoftext|> c\n" * 30) + "end"
    check_cover(text, chunk_by_tokens(text, 9, 3))


@pytest.mark.parametrize("chunker", CHUNKERS)
def test_empty_text_gives_no_chunks(chunker):
    assert chunker("", 10, 2) == []


@pytest.mark.parametrize(
    ("chunker", "unit"),
    [(chunk_by_tokens, "tokens"), (chunk_by_lines, "lines"), (chunk_by_chars, "characters")],
)
@pytest.mark.parametrize("size", [0, -3, 2.5, True, "100"])
def test_size_must_be_a_positive_int(chunker, unit, size):
    with pytest.raises(ConfigError) as caught:
        chunker("some text", size)
    assert str(caught.value) == (
        f"chunk size must be a positive whole number of {unit}; got size={size!r}. "
        f"Pass an int of at least 1."
    )


@pytest.mark.parametrize("chunker", CHUNKERS)
@pytest.mark.parametrize("overlap", [-1, 1.0, None])
def test_overlap_must_be_a_whole_number(chunker, overlap):
    with pytest.raises(ConfigError, match=rf"got overlap={overlap!r}\. Pass 0 for no overlap\."):
        chunker("some text", 10, overlap)


@pytest.mark.parametrize("overlap", [4_000, 5_000])
def test_overlap_must_be_smaller_than_size(overlap):
    with pytest.raises(ConfigError) as caught:
        chunk_by_tokens("some text", 4_000, overlap)
    assert str(caught.value) == (
        f"overlap={overlap:,} tokens is not smaller than size=4,000 tokens, so chunks could never "
        f"move forward; lower overlap below 4,000 or raise size."
    )


@pytest.mark.parametrize("chunker", CHUNKERS)
def test_text_must_be_a_str(chunker):
    with pytest.raises(ConfigError, match=r"text must be a str; got bytes\. .*read_text\(path\)"):
        chunker(b"some text", 10)


def test_size_too_small_for_a_character_names_it():
    with pytest.raises(ConfigError) as caught:
        chunk_by_tokens("ab🦜", 1)
    assert str(caught.value) == (
        f"character U+1F99C at offset 2 takes {count_tokens('🦜')} tokens, more than size=1 "
        f"tokens; raise size (4 tokens hold any character)."
    )


def test_chunks_are_plain_strings_to_json_and_pickle():
    chunks = chunk_by_tokens("alpha beta\ngamma delta\n" * 20, 12, 3)
    assert json.loads(json.dumps(chunks)) == [str(chunk) for chunk in chunks]
    assert chunks[1] == str(chunks[1]) and hash(chunks[1]) == hash(str(chunks[1]))
    copy = pickle.loads(pickle.dumps(chunks[1]))
    assert copy == chunks[1] and vars(copy) == vars(chunks[1])


def test_chunks_are_read_only():
    chunk = chunk_by_chars("abcdef", 3)[1]
    with pytest.raises(AttributeError, match="read-only"):
        chunk.start = 0
    assert chunk.start == 3


def test_chunk_repr_shows_where_it_came_from():
    chunk = chunk_by_lines("one\ntwo\nthree\n", 2, 1)[1]
    assert repr(chunk) == (
        "Chunk(index=1, lines=2-3, start=4, end=14, tokens=4, overlap=4, text='two\\nthree\\n')"
    )


def test_read_text_keeps_line_endings_and_drops_a_bom(tmp_path):
    path = tmp_path / "corpus.log"
    path.write_bytes("\ufeffline one\r\nlíne two\n".encode())
    assert read_text(path) == "line one\r\nlíne two\n"
    assert read_text(str(path)) == "line one\r\nlíne two\n"


def test_read_text_rejects_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"corpus file '.*nope\.log' does not exist; check"):
        read_text(tmp_path / "nope.log")


def test_read_text_rejects_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory, not a file; pass one file"):
        read_text(tmp_path)


def test_read_text_gives_the_offset_of_a_nul_byte(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes(b"GIF89a\x00\x01")
    with pytest.raises(ConfigError, match=r"is not text: NUL byte at byte offset 6; pass a UTF-8"):
        read_text(path)


def test_read_text_gives_the_offset_of_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 ok".encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"is not UTF-8 text: byte 0xe9 at byte offset 3 is invalid .*convert"
    ):
        read_text(path)


def test_read_text_recognises_utf16(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes("hello".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"is UTF-16 text .* convert it to UTF-8"):
        read_text(path)
