"""Load a corpus file as chunks: the one way every ``ptcrun`` command reads a corpus.

``ptcrun run CORPUS``, ``ptcrun exec PROGRAM --data FILE`` and ``ptcrun exec TRANSCRIPT --turn N``
(which cuts a run's corpus again) all read through :func:`load_corpus`, so a program sees the same
``data`` whichever command runs it: the same default cut, and the same refusals, with the same
messages, for a missing file, a directory, text that is not UTF-8 and an empty file.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from ._chunking import Chunk, Unit, _check_arguments
from ._stream import stream_chunks

__all__ = ["DEFAULT_CHUNK_TOKENS", "load_corpus"]

#: Tokens per chunk when no size is given: small enough for any worker's context, large enough
#: that a worker call is worth its fixed cost.
DEFAULT_CHUNK_TOKENS = 4_000


def load_corpus(
    path: str | os.PathLike[str],
    *,
    chunk_tokens: int | None = None,
    chunk_lines: int | None = None,
    overlap: int = 0,
) -> list[Chunk]:
    """Read a UTF-8 text file and cut it into chunks, by tokens or by lines.

    The sizes and the overlap are checked before the file is read, so a bad option fails at
    once, even on a large corpus.

    Args:
        path: the corpus file.
        chunk_tokens: the most cl100k tokens a chunk may hold (:func:`chunk_by_tokens`);
            ``DEFAULT_CHUNK_TOKENS`` when neither size is given.
        chunk_lines: lines per chunk (:func:`chunk_by_lines`), instead of tokens.
        overlap: tokens (or lines) each chunk after the first repeats from the one before.

    Returns:
        The chunks in order; never empty.

    Raises:
        ConfigError: both sizes are given; a size is below 1, or the overlap is negative or not
            smaller than the size; the path is missing, is a directory or cannot be read; the
            file is not UTF-8 text (see :func:`read_text`), or it is empty.
    """
    if chunk_tokens is not None and chunk_lines is not None:
        raise ConfigError(
            f"chunk_tokens={chunk_tokens} and chunk_lines={chunk_lines} were both given; give "
            f"one: the size of a chunk in tokens or in lines."
        )
    shown = os.fspath(path)
    unit: Unit = "tokens" if chunk_lines is None else "lines"
    if chunk_lines is not None:
        size = chunk_lines
    else:
        size = DEFAULT_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
    _check_arguments("", size, overlap, unit)
    if os.path.isdir(path):
        raise ConfigError(
            f"corpus path {shown!r} is a directory, not a file; join the files in it into one "
            f"text file and pass that."
        )
    # Streamed, in windows of a few megabytes: the same chunks the whole-text chunkers make
    # (see ._stream), and the same cut that build_store writes into a store.
    chunks = list(stream_chunks(path, unit, size, overlap))
    if not chunks:
        raise empty_corpus(shown)
    return chunks


def empty_corpus(shown: str) -> ConfigError:
    return ConfigError(
        f"corpus file {shown!r} is empty, so there is nothing to cut into chunks; pass a "
        f"file that holds text."
    )
