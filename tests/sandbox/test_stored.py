"""The child's reader of a store file: the chunks the index names, cut where the caller asks,
and :class:`Damaged` (so the host is asked instead) for anything that does not add up."""

from __future__ import annotations

import os

import pytest

from ptcrun import write_store
from ptcrun.sandbox.child._stored import Damaged, StoredText, StoreFile

SHORT = ["one\n", "", "two\n", "three\n"] * 50  # ASCII, averaging under 2 KB: decoded at once
SHORT_UNICODE = ["é東🚀\n", "", "x"] * 50  # the same, but a byte is not a character
LONG = ["a" * 5_000, "é" * 3_000, "", "b" * 9_000]  # decoded one by one


def reader(path, store):
    fd = os.open(path, os.O_RDONLY)
    return StoredText(StoreFile(fd), list(store.layout())), fd


@pytest.mark.parametrize("chunks", [SHORT, SHORT_UNICODE, LONG], ids=["short", "short unicode", "long"])
def test_every_range_reads_the_chunks_written(tmp_path, chunks):
    store = write_store(tmp_path / "s.store", chunks)
    stored, fd = reader(store.path, store)
    try:
        for start in range(len(chunks)):
            texts, sizes = stored.read(start, len(chunks), 1 << 30, bytearray(16))
            assert texts == chunks[start:]
            assert sizes == [len(c.encode()) for c in chunks[start:]]
    finally:
        os.close(fd)


def test_a_read_stops_at_max_bytes_and_never_returns_nothing(tmp_path):
    store = write_store(tmp_path / "s.store", LONG)
    stored, fd = reader(store.path, store)
    try:
        assert stored.read(0, 4, 10_999)[0] == LONG[:1]  # the second ends at byte 11,000
        assert stored.read(0, 4, 11_000)[0] == LONG[:3]  # the empty one fits with it
        assert stored.read(3, 4, 10)[0] == LONG[3:]  # larger than max_bytes, alone: still read
    finally:
        os.close(fd)


def test_an_entry_that_does_not_follow_the_one_before_is_damage(tmp_path):
    store = write_store(tmp_path / "s.store", SHORT)
    index_at = store.layout()[0]
    with open(store.path, "r+b") as file:  # chunk 5 now starts one byte late
        file.seek(index_at + 5 * 72)
        offset = int.from_bytes(file.read(8), "little")
        file.seek(index_at + 5 * 72)
        file.write((offset + 1).to_bytes(8, "little"))
    stored, fd = reader(store.path, store)
    try:
        assert stored.read(0, 5, 1 << 20)[0] == SHORT[:5]
        with pytest.raises(Damaged):
            stored.read(0, 10, 1 << 20)
        with pytest.raises(Damaged):
            stored.read(4, 6, 1 << 20)
    finally:
        os.close(fd)


def test_a_file_cut_short_and_bytes_not_utf8_are_damage(tmp_path):
    store = write_store(tmp_path / "s.store", LONG)
    stored, fd = reader(store.path, store)
    try:
        with open(store.path, "r+b") as file:
            file.seek(store.layout()[1] + 5_001)  # inside the second chunk
            file.write(b"\xff")
        with pytest.raises(Damaged):
            stored.read(1, 2, 1 << 20)
        assert stored.read(0, 1, 1 << 20)[0] == LONG[:1]
        os.truncate(store.path, store.layout()[1] + 100)
        with pytest.raises(Damaged):
            stored.read(0, 1, 1 << 20)
    finally:
        os.close(fd)
