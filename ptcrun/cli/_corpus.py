"""The corpus of a command: the chunk flags, checked in their own words, and ``corpus.json``.

Every command that takes a corpus (``run CORPUS``, ``exec --data FILE``, ``exec --turn``) turns
its flags into options here and reads the file with :func:`~ptcrun.corpus._load.load_corpus`.
``run`` writes ``corpus.json`` into the run folder, saying where the chunks came from and how they
were cut, so that ``exec TRANSCRIPT --turn N`` can cut the same chunks again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from ..corpus._chunking import corpus_digest
from ..corpus._load import DEFAULT_CHUNK_TOKENS
from ..corpus._store import StoredChunks
from ..errors import ConfigError

__all__ = ["CORPUS_FILE", "ChunkOptions", "chunk_options", "read_record", "write_record"]

#: The file in a run folder that records the run's corpus.
CORPUS_FILE = "corpus.json"


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


def write_record(folder: Path, corpus: str, options: ChunkOptions, chunks: Sequence[str]) -> None:
    """Write ``corpus.json`` into a run folder: the corpus's path, its cut and its fingerprint."""
    record = {
        "path": str(Path(corpus).resolve()),
        **options,
        "chunks": len(chunks),
        # A store's fingerprint was taken as it was written: no second pass over the corpus.
        "sha256": chunks.sha256 if isinstance(chunks, StoredChunks) else corpus_digest(chunks),
    }
    (folder / CORPUS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


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
