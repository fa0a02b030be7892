"""``build_store`` over a store that exists: the old one stays until the new one is whole, and a
corpus that gives no store at all (empty, missing) leaves the old one as it was."""

from __future__ import annotations

import errno
import os

import pytest

from ptcrun import build_store
from ptcrun.corpus import _writer
from ptcrun.corpus._store import StoredChunks
from ptcrun.errors import ConfigError


@pytest.mark.parametrize("corpus", ["empty.log", "missing.log"])
def test_a_corpus_that_makes_no_store_leaves_the_store_there_as_it_was(tmp_path, corpus):
    (tmp_path / "app.log").write_text("one\ntwo\nthree\n")
    (tmp_path / "empty.log").write_text("")
    store = tmp_path / "app.store"
    build_store(tmp_path / "app.log", store, chunk_lines=1)
    before = store.read_bytes()
    with pytest.raises(ConfigError, match=r"is empty|does not exist"):
        build_store(tmp_path / corpus, store, chunk_lines=1)
    assert store.read_bytes() == before
    assert len(StoredChunks(store)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "app.store", "empty.log"]


def test_a_store_is_on_disk_before_it_has_its_name(tmp_path, monkeypatch):
    (tmp_path / "app.log").write_text("one\ntwo\n")
    done: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (done.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (done.append("replace"), real_replace(a, b))[1])
    build_store(tmp_path / "app.log", tmp_path / "app.store", chunk_lines=1)
    assert done == ["fsync", "replace"]


def test_a_disk_gone_read_only_while_a_store_is_written_says_so(tmp_path, monkeypatch):
    (tmp_path / "app.log").write_text("one\ntwo\n")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_writer, "_write_text", read_only)
    monkeypatch.setattr(os, "unlink", read_only)  # its partial file cannot be removed either
    with pytest.raises(ConfigError, match="Read-only file system"):
        build_store(tmp_path / "app.log", tmp_path / "app.store", chunk_lines=1)
