"""Write a corpus store: chunks one at a time, from any iterable or from a corpus file as it is cut.

The layout is :mod:`._store`'s. Text goes straight to the file, index records to a temporary
file copied after the text, and the footer's figures (count, characters, fingerprint, token
histogram) are summed on the way, so writing holds one chunk at a time, whatever the corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from ._chunking import _check_arguments
from ._load import DEFAULT_CHUNK_TOKENS, empty_corpus
from ._store import (
    _CHUNK_FIELDS,
    _END,
    _MAGIC,
    _MAX_HISTOGRAM,
    _RECORD,
    _TRAILER,
    _UNKNOWN,
    StoredChunks,
    open_store,
)
from ._stream import stream_chunks

__all__ = ["PARTIAL_PREFIX", "StoreWriteError", "build_store", "write_store"]

#: The start of the name of a store being written, beside it: then the writer's process id.
PARTIAL_PREFIX = ".ptcrun-store-"


class StoreWriteError(ConfigError):
    """The store file could not be written (no such folder, a full or read-only disk, no
    permission); the ``OSError`` is its ``__cause__``, for a caller to word for its reader."""


def write_store(
    path: str | os.PathLike[str],
    data: Iterable[str] | Mapping[str, Iterable[str]],
    *,
    about: Mapping[str, Any] | None = None,
) -> StoredChunks | Mapping[str, StoredChunks]:
    """Write chunks to a store file, one at a time, and open it.

    ``data`` is an iterable of chunk strings (a generator is fine: it is read once) or a mapping
    of dataset names to such iterables. The file is replaced only when complete. ``about``, a
    JSON object, is kept in the footer as it is (``StoredChunks.about``): where the chunks came
    from, so a reader can tell whether the store still stands for its source.

    Raises:
        ConfigError: a chunk is not a str or holds a lone surrogate; the file cannot be written.
    """
    shown = os.fspath(path)
    parts: list[tuple[str | None, Iterable[str]]]
    if isinstance(data, Mapping):
        parts = list(data.items())
        for name, _ in parts:
            if not isinstance(name, str):
                raise ConfigError(f"dataset names must be str; got {name!r}")
    elif isinstance(data, (str, bytes)):
        raise ConfigError(
            "data is one string; pass an iterable of chunk strings (e.g. chunk_by_tokens(text, 4000))."
        )
    else:
        parts = [(None, data)]
    folder = os.path.dirname(os.path.abspath(shown))
    # Not mkstemp: its files are readable by their owner only, and a store is as shareable as
    # any file its user writes, as the umask says.
    # The writer's process id in the name tells the file of a killed writer from a live one's.
    partial = os.path.join(folder, f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
    try:
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise StoreWriteError(f"cannot write corpus store {shown!r}: {exc.strerror or exc}.") from exc
    try:
        with os.fdopen(handle, "wb") as out, tempfile.TemporaryFile(dir=folder) as index:
            out.write(_MAGIC)
            datasets = []
            for name, chunks in parts:
                datasets.append(_write_text(out, index, name, chunks))
            text_end = out.tell()
            index.seek(0)
            shutil.copyfileobj(index, out, 1 << 20)
            for dataset in datasets:
                dataset["index"] += text_end
            contents: dict[str, Any] = {
                "kind": "sequence" if not isinstance(data, Mapping) else "mapping", "datasets": datasets
            }
            if about is not None:
                contents["about"] = dict(about)
            footer = json.dumps(contents, separators=(",", ":")).encode()
            footer_at = out.tell()
            out.write(footer)
            out.write(_TRAILER.pack(footer_at, len(footer), _END))
            # On disk before it has its name: after a crash a store is whole or not there,
            # never a file with the right ends and lost text between them.
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, shown)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a disk gone read-only: the first error is the one to tell
            os.unlink(partial)
        if isinstance(exc, OSError):
            raise StoreWriteError(f"cannot write corpus store {shown!r}: {exc.strerror or exc}.") from exc
        raise
    return open_store(shown)


def _write_text(out: Any, index: Any, name: str | None, chunks: Iterable[str]) -> dict[str, Any]:
    """Append one dataset's text to out and its records to index; return its footer entry."""
    what = "data" if name is None else f"data[{name!r}]"
    text_start = out.tell()
    index_start = index.tell()
    digest = hashlib.sha256()
    histogram: Counter[int] = Counter()
    tokens_known = True
    chars = count = 0
    for count, chunk in enumerate(chunks, 1):
        if not isinstance(chunk, str):
            raise ConfigError(f"{what}[{count - 1}] is {type(chunk).__name__}; every chunk must be a str.")
        try:
            raw = chunk.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"{what}[{count - 1}] holds a lone surrogate at character {exc.start:,}, which is "
                f"not text; decode the corpus with errors='replace'."
            ) from None
        digest.update(hashlib.sha256(raw).digest())
        offset = out.tell()
        out.write(raw)
        found = [getattr(chunk, field, None) for field in _CHUNK_FIELDS]
        fields = [v for v in found if type(v) is int and v >= 0]
        if len(fields) != len(_CHUNK_FIELDS):
            fields = [_UNKNOWN] * len(_CHUNK_FIELDS)
            tokens_known = False
        elif tokens_known:
            histogram[fields[0]] += 1
        index.write(_RECORD.pack(offset, len(raw), len(chunk), *fields))
        chars += len(chunk)
    known = tokens_known and len(histogram) <= _MAX_HISTOGRAM
    return {
        "name": name,
        "index": index_start,
        "count": count,
        "text_start": text_start,
        "text_end": out.tell(),
        "chars": chars,
        "sha256": digest.hexdigest(),
        "tokens": sorted(histogram.items()) if known else None,
        "token_total": sum(k * v for k, v in histogram.items()) if tokens_known else None,
    }


def build_store(
    corpus: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    chunk_tokens: int | None = None,
    chunk_lines: int | None = None,
    overlap: int = 0,
    about: Mapping[str, Any] | None = None,
) -> StoredChunks:
    """Cut a corpus file into chunks as it is read and write them to a store; open it.

    The chunks are those :func:`~ptcrun.corpus._load.load_corpus` makes with the same options
    (by tokens, ``DEFAULT_CHUNK_TOKENS`` when no size is given), but the corpus is never held in
    memory: a 10 GB file needs about 100 MB. ``about`` is kept as :func:`write_store` keeps it.

    Raises:
        ConfigError: as ``load_corpus``; or the store cannot be written.
    """
    if chunk_tokens is not None and chunk_lines is not None:
        raise ConfigError(
            f"chunk_tokens={chunk_tokens} and chunk_lines={chunk_lines} were both given; give "
            f"one: the size of a chunk in tokens or in lines."
        )
    if chunk_lines is not None:
        unit, size = "lines", chunk_lines
    else:
        unit, size = "tokens", DEFAULT_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    _check_arguments("", size, overlap, unit)  # type: ignore[arg-type]
    shown = os.fspath(corpus)
    if os.path.isdir(corpus):
        raise ConfigError(
            f"corpus path {shown!r} is a directory, not a file; join the files in it into one "
            f"text file and pass that."
        )
    chunks = stream_chunks(corpus, unit, size, overlap)  # type: ignore[arg-type]
    # The first chunk before any file is written: an empty corpus leaves a store at path as it was.
    first = next(chunks, None)
    if first is None:
        raise empty_corpus(shown)
    store = write_store(path, itertools.chain([first], chunks), about=about)
    assert isinstance(store, StoredChunks)
    return store
