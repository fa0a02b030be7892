"""The corpus of a command: the chunk flags, checked in their own words, and ``corpus.json``.

Every command that takes a corpus (``run CORPUS``, ``exec --data FILE``, ``exec --turn``) turns
its flags into options here and reads the file with :func:`~ptcrun.corpus._load.load_corpus`.
``run`` writes ``corpus.json`` into the run folder as soon as the folder is made, saying where
the chunks came from and how they were cut, so that ``exec TRANSCRIPT --turn N`` can cut the same
chunks again, even after the run was killed. A corpus read from standard input (``-``) is kept
in the run folder as ``corpus.txt``, the file ``corpus.json`` then names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from ..corpus._chunking import Chunk, corpus_digest
from ..corpus._load import DEFAULT_CHUNK_TOKENS, load_corpus
from ..corpus._store import StoredChunks
from ..corpus._writer import build_store
from ..errors import ConfigError

__all__ = [
    "CORPUS_FILE",
    "STDIN",
    "STDIN_COPY",
    "ChunkOptions",
    "Corpus",
    "chunk_options",
    "read_corpus",
    "read_record",
    "write_record",
]

#: The file in a run folder that records the run's corpus.
CORPUS_FILE = "corpus.json"
#: The corpus path that means standard input.
STDIN = "-"
#: The copy of a corpus read from standard input, in the run folder.
STDIN_COPY = "corpus.txt"


class Corpus:
    """A corpus as a command read it: its chunks, and its bytes when they came from stdin."""

    def __init__(self, path: str, chunks: list[Chunk] | StoredChunks, stdin: bytes | None = None) -> None:
        self.path = path
        self.chunks = chunks
        self.stdin = stdin


def read_corpus(path: str, options: ChunkOptions, *, flag: str, store: Path | None = None) -> Corpus:
    """Read and cut the corpus ``path`` names; ``-`` reads standard input to its end.

    With ``store``, the chunks are written to a store file there as the corpus is read, and
    served from it (a corpus larger than memory); without, they are a list in memory.

    The bytes of standard input are checked and cut as a file's are; a message about them says
    "standard input" where it would name a file.

    Raises:
        ConfigError: as ``load_corpus`` does; or standard input is a terminal (nothing was
            piped in).
    """
    def cut(source: str) -> list[Chunk] | StoredChunks:
        return load_corpus(source, **options) if store is None else build_store(source, store, **options)

    if path != STDIN:
        return Corpus(path, cut(path))
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError(
            f"{flag} - reads the corpus from standard input, but standard input is a terminal; "
            f"pipe the text in (cat app.log | ptcrun ...) or pass a file."
        )
    data = sys.stdin.buffer.read()
    with tempfile.TemporaryDirectory(prefix="ptcrun-stdin-") as folder:
        copy = os.path.join(folder, STDIN_COPY)
        with open(copy, "wb") as file:
            file.write(data)
        try:
            chunks = cut(copy)
        except ConfigError as exc:
            message = str(exc).replace(f"corpus file {copy!r}", "the corpus on standard input")
            raise ConfigError(message.replace(repr(copy), "standard input")) from None
    return Corpus(path, chunks, data)


class ChunkOptions(TypedDict):
    """How to cut a corpus, as ``load_corpus`` takes it: exactly one of the two sizes is set."""

    chunk_tokens: int | None
    chunk_lines: int | None
    overlap: int


def chunk_options(args: argparse.Namespace, recorded: Mapping[str, Any] | None = None) -> ChunkOptions:
    """The chunk options the flags give; those not given come from ``recorded``, else defaults.

    ``recorded`` is a run's ``corpus.json``: when neither size flag is given, its unit and size
    are used, and its overlap unless ``--overlap`` is given (a recorded overlap is in the
    recorded unit, so a size flag drops it). The one check that spans flags, overlap against
    size, is made here so that its message names the flags.

    Raises:
        ConfigError: the overlap is not smaller than the chunk size.
    """
    tokens: int | None = args.chunk_tokens
    lines: int | None = args.chunk_lines
    overlap: int | None = args.overlap
    if recorded and tokens is None and lines is None:
        tokens, lines = recorded.get("chunk_tokens"), recorded.get("chunk_lines")
        if overlap is None:
            overlap = int(recorded.get("overlap") or 0)
    if overlap is None:
        overlap = 0
    defaulted = tokens is None and lines is None
    if defaulted:
        tokens = DEFAULT_CHUNK_TOKENS
    flag, size = ("--chunk-lines", lines) if lines is not None else ("--chunk-tokens", tokens)
    assert size is not None
    if overlap >= size:
        given = f"{flag} {size}" + (" (the default)" if defaulted else "")
        raise ConfigError(
            f"--overlap {overlap} is not smaller than {given}, so chunks could never move "
            f"forward; lower --overlap below {size} or raise {flag}."
        )
    if lines is not None:
        tokens = None
    return ChunkOptions(chunk_tokens=tokens, chunk_lines=lines, overlap=overlap)


def write_record(folder: Path, corpus: Corpus, options: ChunkOptions) -> None:
    """Write ``corpus.json`` into a run folder: the corpus's path, its cut and its fingerprint.

    A corpus from standard input is written beside it first, as ``corpus.txt``. Each file is
    written whole or not at all (a temporary file, renamed), so a kill or a full disk never
    leaves half a record.

    Raises:
        OSError: a file could not be written.
    """
    path = Path(corpus.path).resolve()
    if corpus.stdin is not None:
        path = folder.resolve() / STDIN_COPY
        _write_whole(path, corpus.stdin)
    record = {
        "path": str(path),
        **options,
        "chunks": len(corpus.chunks),
        # A store's fingerprint was taken as it was written: no second pass over the corpus.
        "sha256": (corpus.chunks.sha256 if isinstance(corpus.chunks, StoredChunks)
                   else corpus_digest(corpus.chunks)),
    }
    _write_whole(folder / CORPUS_FILE, (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _write_whole(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(data)
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


def read_record(folder: Path) -> dict[str, Any] | None:
    """The ``corpus.json`` of a run folder, or ``None`` when the run did not write one.

    Raises:
        ConfigError: the file is there but is not a JSON object.
    """
    path = folder / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); pass the corpus with --data FILE.") from None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise ConfigError(f"{path} does not say where the corpus is; pass the corpus with --data FILE.")
    return record
