"""The corpus store: written once as the chunker streams, read back by index, refused when damaged."""

from __future__ import annotations

import json
import os
import struct

import pytest

from ptcrun import Chunk, StoredChunks, build_store, open_store, write_store
from ptcrun.corpus import _stream
from ptcrun.corpus._chunking import chunk_by_lines, chunk_by_tokens, corpus_digest, read_text
from ptcrun.corpus._load import load_corpus
from ptcrun.corpus._stream import stream_chunks
from ptcrun.errors import ConfigError
from ptcrun.runtime._estimate import pass_tokens_about
from ptcrun.runtime._turnloop import data_summary
from ptcrun.runtime._turns import inventory

LINES = [
    f"2025-01-{i % 28 + 1:02d} {'ERROR' if i % 7 == 0 else 'INFO'} request {i} served in {i % 97} ms\n"
    for i in range(4_000)
]
# Multi-byte characters of every UTF-8 length, blank lines, and a line longer than a piece.
LINES[10] = "naïve café — 東京 🚀 ok\n"
LINES[11] = "\n"
LINES[500] = "x" * 40_000 + "\n"
TEXT = "".join(LINES) + "last line without a break"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "app.log"
    path.write_text(TEXT, encoding="utf-8")
    return path


def fields(chunks):
    return [(str(c), dict(c.__dict__)) for c in chunks]


# -- the streaming chunker ---------------------------------------------------------------------


@pytest.mark.parametrize(("size", "overlap"), [(400, 0), (400, 60), (3_000, 500), (50, 10)])
def test_a_file_cut_in_small_windows_gives_the_chunks_of_the_whole_text(corpus, size, overlap):
    streamed = stream_chunks(corpus, "tokens", size, overlap, window_chars=50_000, guard_chars=15_000)
    assert fields(streamed) == fields(chunk_by_tokens(TEXT, size, overlap))


@pytest.mark.parametrize(("size", "overlap"), [(1, 0), (7, 3), (300, 30), (10_000, 0)])
def test_lines_cut_in_small_windows_give_the_chunks_of_the_whole_text(corpus, size, overlap):
    streamed = stream_chunks(corpus, "lines", size, overlap, window_chars=50_000, guard_chars=15_000)
    assert fields(streamed) == fields(chunk_by_lines(TEXT, size, overlap))


def test_the_file_is_read_a_block_at_a_time_and_refused_where_it_breaks(tmp_path, monkeypatch):
    monkeypatch.setattr(_stream, "_READ_BYTES", 16)
    path = tmp_path / "bad.log"
    # An invalid byte after a two-byte character cut across the first block boundary.
    path.write_bytes("é".encode() * 10 + b"ok\xff")
    with pytest.raises(ConfigError) as streamed:
        list(stream_chunks(path, "lines", 10))
    with pytest.raises(ConfigError) as whole:
        read_text(path)
    assert str(streamed.value) == str(whole.value)
    assert "byte 0xff at byte offset 22" in str(streamed.value)
    path.write_bytes(b"a" * 40 + b"\x00")
    with pytest.raises(ConfigError, match="NUL byte at byte offset 40"):
        list(stream_chunks(path, "lines", 10))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfea\x00", "is UTF-16 text"), (b"ok\n\xc3", "unexpected end of data")],
)
def test_a_bad_file_is_refused_in_the_words_of_read_text(tmp_path, content, message):
    path = tmp_path / "bad.log"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as streamed:
        list(stream_chunks(path, "tokens", 100))
    with pytest.raises(ConfigError) as whole:
        read_text(path)
    assert str(streamed.value) == str(whole.value)


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.log"
    path.write_bytes(b"\xef\xbb\xbfhello\nworld\n")
    assert [str(c) for c in stream_chunks(path, "lines", 1)] == ["hello\n", "world\n"]


# -- build_store and open_store ----------------------------------------------------------------


def test_build_store_holds_the_chunks_load_corpus_makes(corpus, tmp_path):
    store = build_store(corpus, tmp_path / "c.store", chunk_tokens=500, overlap=50)
    chunks = load_corpus(corpus, chunk_tokens=500, overlap=50)
    assert isinstance(store, StoredChunks)
    assert len(store) == len(chunks) > 10
    assert fields(store) == fields(chunks)
    assert all(isinstance(c, Chunk) for c in store)
    assert store.sha256 == corpus_digest(chunks)
    assert store.chars == sum(len(c) for c in chunks)
    assert store.token_total() == sum(c.tokens for c in chunks)
    reopened = open_store(tmp_path / "c.store")
    assert isinstance(reopened, StoredChunks) and fields(reopened) == fields(chunks)


def test_a_store_is_read_by_index_slice_and_from_the_end(corpus, tmp_path):
    store = build_store(corpus, tmp_path / "c.store", chunk_lines=100)
    chunks = load_corpus(corpus, chunk_lines=100)
    assert store[-1] == chunks[-1] and store[-1].index == len(chunks) - 1
    assert store[3:9:2] == chunks[3:9:2]
    assert store[::-5] == chunks[::-5]
    with pytest.raises(IndexError, match=f"chunk index {len(chunks)} out of range"):
        store[len(chunks)]
    with pytest.raises(IndexError):
        store[-len(chunks) - 1]


def test_plain_strings_come_back_as_plain_strings_with_empty_and_multibyte_ones(tmp_path):
    texts = ["", "ascii", "é", "東京", "🚀🚀", "", "a\r\nb\n"]
    store = write_store(tmp_path / "s.store", iter(texts))  # a generator is read once
    assert list(store) == texts
    assert all(type(c) is str for c in store)
    assert store.token_histogram() is None and store.token_total() is None
    assert store.sha256 == corpus_digest(texts)
    assert list(store.char_sizes()) == [len(t) for t in texts]


def test_named_datasets_are_a_read_only_mapping_of_stores(tmp_path):
    stores = write_store(tmp_path / "m.store", {"logs": ["a", "b"], "tickets": [], "notes": ["ü"]})
    assert list(stores) == ["logs", "tickets", "notes"]
    assert list(stores["logs"]) == ["a", "b"] and len(stores["tickets"]) == 0
    with pytest.raises(TypeError):
        stores["logs"] = []  # type: ignore[index]
    assert list(StoredChunks(tmp_path / "m.store", "notes")) == ["ü"]
    with pytest.raises(ConfigError, match=r"has no dataset 'other'; it has 'logs', 'tickets', 'notes'"):
        StoredChunks(tmp_path / "m.store", "other")


def test_read_utf8_stops_at_the_byte_limit_but_gives_at_least_one_chunk(tmp_path):
    store = write_store(tmp_path / "s.store", ["aaaa", "é", "bbbbbb", "c"])
    assert store.read_utf8(0, 4, 7) == ([4, 2], b"aaaa\xc3\xa9")
    assert store.read_utf8(2, 4, 1) == ([6], b"bbbbbb")
    assert store.read_utf8(3, 4, 100) == ([1], b"c")
    for start, stop in [(-1, 1), (0, 5), (2, 2), (4, 5)]:
        with pytest.raises(IndexError):
            store.read_utf8(start, stop, 100)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (["ok", "bad \ud800 surrogate"], r"data\[1\] holds a lone surrogate at character 4"),
        (["ok", 3], r"data\[1\] is int; every chunk must be a str"),
        ("one string", "data is one string"),
    ],
)
def test_what_is_not_text_is_refused_and_no_file_is_left(tmp_path, chunks, message):
    with pytest.raises(ConfigError, match=message):
        write_store(tmp_path / "s.store", chunks)
    assert os.listdir(tmp_path) == []


def test_an_empty_corpus_file_is_refused_and_leaves_no_store(tmp_path):
    (tmp_path / "empty.log").write_bytes(b"")
    with pytest.raises(ConfigError, match="is empty, so there is nothing to cut"):
        build_store(tmp_path / "empty.log", tmp_path / "e.store")
    assert not (tmp_path / "e.store").exists()


# -- damaged and missing stores ----------------------------------------------------------------


def test_a_missing_store_names_the_file_and_how_to_build_it(tmp_path):
    path = tmp_path / "nowhere.store"
    with pytest.raises(ConfigError, match=r"corpus store '.*nowhere\.store' does not exist.*build_store"):
        open_store(path)


def test_a_file_that_is_not_a_store_is_refused(corpus):
    with pytest.raises(ConfigError, match=r"'.*app\.log' is not a ptcrun corpus store"):
        open_store(corpus)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s.store"
    write_store(path, ["first chunk", "second chunk", "third"])
    return path


def test_a_store_cut_short_is_refused_as_damaged(store_path):
    data = store_path.read_bytes()
    store_path.write_bytes(data[:-5])
    with pytest.raises(ConfigError, match=r"corpus store '.*s\.store' is damaged: its end marker is missing.*build_store"):
        open_store(store_path)


def test_a_store_with_an_unreadable_table_of_contents_is_refused(store_path):
    data = bytearray(store_path.read_bytes())
    footer_at, _, _ = struct.unpack_from("<QQ16s", data, len(data) - 32)
    data[footer_at] = ord("!")
    store_path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="is damaged: its table of contents cannot be read"):
        open_store(store_path)


def test_a_store_whose_table_points_outside_the_file_is_refused(store_path):
    data = bytearray(store_path.read_bytes())
    footer_at, footer_bytes, end = struct.unpack_from("<QQ16s", data, len(data) - 32)
    footer = json.loads(data[footer_at : footer_at + footer_bytes])
    footer["datasets"][0]["count"] = 10**9
    new = json.dumps(footer).encode()
    out = bytes(data[:footer_at]) + new + struct.pack("<QQ16s", footer_at, len(new), end)
    store_path.write_bytes(out)
    with pytest.raises(ConfigError, match="is damaged: its table of contents cannot be read"):
        open_store(store_path)


def test_a_chunk_record_pointing_outside_the_text_is_refused_when_read(store_path):
    store = open_store(store_path)
    assert isinstance(store, StoredChunks)
    index_at = store._dataset.index  # the first record: offset, then length
    data = bytearray(store_path.read_bytes())
    struct.pack_into("<Q", data, index_at + 8, 10**6)
    store_path.write_bytes(bytes(data))
    damaged = open_store(store_path)
    assert isinstance(damaged, StoredChunks)
    assert damaged[1] == "second chunk"
    with pytest.raises(ConfigError, match=r"'.*s\.store' is damaged: chunk 0 points outside the text"):
        damaged[0]
    with pytest.raises(ConfigError, match="is damaged: chunk 1 does not follow chunk 0"):
        damaged.read_utf8(0, 3, 100)


def test_text_that_is_not_utf8_is_refused_when_read(store_path):
    data = bytearray(store_path.read_bytes())
    data[16] = 0xFF  # the first byte of the first chunk's text
    store_path.write_bytes(bytes(data))
    store = open_store(store_path)
    assert isinstance(store, StoredChunks)
    with pytest.raises(ConfigError, match="is damaged: chunk 0 is not UTF-8 text"):
        store[0]


def test_a_store_of_a_newer_format_says_so(store_path):
    data = bytearray(store_path.read_bytes())
    data[15] = 9
    store_path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"has format version .* which this ptcrun cannot read"):
        open_store(store_path)


# -- what the run says of a store: the same as of the list, without reading it ----------------------


def test_the_planner_sees_a_store_as_it_sees_the_same_chunks_in_a_list(corpus, tmp_path):
    store = build_store(corpus, tmp_path / "c.store", chunk_tokens=300)
    chunks = load_corpus(corpus, chunk_tokens=300)
    assert inventory(store) == inventory(chunks)
    assert inventory({"logs": store}) == inventory({"logs": chunks})
    assert pass_tokens_about(store, "goal", 1_000) == pass_tokens_about(chunks, "goal", 1_000)
    assert data_summary(store) == data_summary(chunks)


def test_the_summary_of_a_store_is_read_from_its_footer_not_its_text(corpus, tmp_path, monkeypatch):
    store = build_store(corpus, tmp_path / "c.store", chunk_tokens=300)
    expected = inventory(store), data_summary(store)
    read = StoredChunks._text

    def only_the_samples(self, index, offset, length):
        assert index < 3, "the corpus was read beyond the three chunks the prompt quotes"
        return read(self, index, offset, length)

    monkeypatch.setattr(StoredChunks, "_text", only_the_samples)
    assert (inventory(store), data_summary(store)) == expected
