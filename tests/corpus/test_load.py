"""load_corpus: the one way the commands read a corpus file and cut it."""

from __future__ import annotations

import pytest

from ptcrun.corpus._chunking import chunk_by_lines, chunk_by_tokens
from ptcrun.corpus._load import DEFAULT_CHUNK_TOKENS, load_corpus
from ptcrun.errors import ConfigError

TEXT = "".join(f"2025-01-{i % 28 + 1:02d} INFO request {i} served in {i % 97} ms\n" for i in range(3_000))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_default_cut_is_by_tokens(corpus):
    chunks = load_corpus(corpus)
    assert chunks == chunk_by_tokens(TEXT, DEFAULT_CHUNK_TOKENS)
    assert len(chunks) > 1 and all(c.tokens <= DEFAULT_CHUNK_TOKENS for c in chunks)


def test_chunk_tokens_and_overlap_are_passed_on(corpus):
    assert load_corpus(corpus, chunk_tokens=500, overlap=50) == chunk_by_tokens(TEXT, 500, 50)


def test_chunk_lines_cuts_by_lines(corpus):
    assert load_corpus(corpus, chunk_lines=100, overlap=10) == chunk_by_lines(TEXT, 100, 10)


def test_both_sizes_are_refused(corpus):
    with pytest.raises(ConfigError, match=r"chunk_tokens=500 and chunk_lines=100 were both given"):
        load_corpus(corpus, chunk_tokens=500, chunk_lines=100)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_tokens": 0}, "positive whole number of tokens"),
        ({"chunk_lines": 0}, "positive whole number of lines"),
        ({"chunk_lines": 10, "overlap": 10}, "overlap=10 lines is not smaller than size=10 lines"),
        ({"overlap": -1}, "0 or more"),
    ],
)
def test_options_are_checked_before_the_file_is_read(tmp_path, options, message):
    # The path does not exist: the option's error comes first, so a bad option fails at once.
    with pytest.raises(ConfigError, match=message):
        load_corpus(tmp_path / "missing.log", **options)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"corpus file '.*missing\.log' does not exist"):
        load_corpus(tmp_path / "missing.log")


def test_a_directory_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory, not a file; join the files in it into one text file"):
        load_corpus(tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.log"
    path.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text: byte 0xe9 at byte offset 3"):
        load_corpus(path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "byte-order mark only"])
def test_an_empty_file_is_refused(tmp_path, content):
    path = tmp_path / "empty.log"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"corpus file '.*empty\.log' is empty, so there is nothing to cut"):
        load_corpus(path)


def test_a_file_of_blank_lines_is_not_empty(tmp_path):
    path = tmp_path / "blank.log"
    path.write_text("\n\n\n")
    assert load_corpus(path, chunk_lines=2) == ["\n\n", "\n"]
