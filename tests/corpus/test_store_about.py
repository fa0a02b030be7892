"""A store keeps what its writer said of its source, and stores written without it still open."""

from __future__ import annotations

from ptcrun import build_store, open_store, write_store
from ptcrun.corpus._store import is_store


def test_about_is_kept_in_the_footer_and_read_back(tmp_path):
    corpus = tmp_path / "app.log"
    corpus.write_text("".join(f"line {i}\n" for i in range(50)))
    about = {"corpus": {"sha256": "ab" * 32, "bytes": 440}, "chunk_lines": 10}
    store = build_store(corpus, tmp_path / "app.store", chunk_lines=10, about=about)
    assert store.about == about
    reopened = open_store(tmp_path / "app.store")
    assert reopened.about == about and list(reopened) == list(store)


def test_a_store_written_without_about_has_none(tmp_path):
    store = write_store(tmp_path / "s.store", ["a", "b"])
    assert store.about is None
    assert is_store(tmp_path / "s.store")


def test_is_store_tells_a_store_from_text_and_from_nothing(tmp_path):
    (tmp_path / "text.txt").write_text("ptcrun-stor but not quite\n")
    assert not is_store(tmp_path / "text.txt")
    assert not is_store(tmp_path / "missing")
    assert not is_store(tmp_path)
