"""Cut a corpus file into chunks as it is read, holding a window of it, never the whole.

A 10 GB log does not fit in memory, so :func:`stream_chunks` reads the file in blocks, keeps a
window of whole lines (``_WINDOW_CHARS`` characters, or more when a line is longer), and runs
the chunkers of :mod:`._chunking` on the window. It keeps only the chunks that end at least
``_GUARD_CHARS`` before the window's end, slides the window forward to the line where the next
chunk begins, and goes on. Positions inside a window are those of the whole text less a constant
(lines are indexed and counted on their own), so a chunk whose search for its end stayed inside
the window is the chunk the whole-text chunker makes: for a corpus smaller than one window the
chunks are exactly :func:`~._chunking.chunk_by_tokens`'s, and for a larger one they are too as long
as no chunk looks further than ``_GUARD_CHARS`` characters ahead (about 500,000 tokens of text).
The lines a window shares with the one before keep the token counts they were given there, so
each line of the file is encoded once.

Files are refused exactly as :func:`~._chunking.read_text` refuses them (missing, a directory,
UTF-16, a NUL byte, bytes that are not UTF-8, with the byte offset), only found as the reading
reaches them.
"""

from __future__ import annotations

import codecs
import os
from bisect import bisect_right
from collections.abc import Iterator

from ._chunking import (
    Chunk,
    Unit,
    _count,
    _cut_by_tokens,
    _line_starts,
    _not_utf8,
    _nul,
    _TokenIndex,
    _unreadable,
    _utf16,
)

__all__ = ["stream_chunks"]

#: Characters of text the chunker sees at once. Memory is a few times this (the text, its
#: line index), whatever the size of the file.
_WINDOW_CHARS = 8 << 20
#: A chunk that ends closer than this to the end of a window is cut again in the next window,
#: which sees what follows it.
_GUARD_CHARS = 2 << 20
_READ_BYTES = 1 << 20


def read_pieces(path: str | os.PathLike[str]) -> Iterator[str]:
    """The text of a UTF-8 file, in pieces of about a megabyte, checked as ``read_text`` does.

    Raises:
        ConfigError: as :func:`~._chunking.read_text`, when the reading reaches the fault.
    """
    shown = os.fspath(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed in the finally below, across yields
    except OSError as exc:
        raise _unreadable(shown, exc) from exc
    try:
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = 0
        while True:
            try:
                block = file.read(_READ_BYTES)
            except OSError as exc:
                raise _unreadable(shown, exc) from exc
            if offset == 0 and block.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise _utf16(shown)
            nul = block.find(b"\x00")
            if nul != -1:
                raise _nul(shown, offset + nul)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                raise _not_utf8(shown, exc.object[exc.start], at, exc.reason) from None
            if offset == 0:
                text = text.removeprefix("\ufeff")
            if text:
                yield text
            if not block:
                return
            offset += len(block)
    finally:
        file.close()


def stream_chunks(
    path: str | os.PathLike[str],
    unit: Unit,
    size: int,
    overlap: int = 0,
    *,
    window_chars: int = _WINDOW_CHARS,
    guard_chars: int = _GUARD_CHARS,
) -> Iterator[Chunk]:
    """The chunks of a corpus file by tokens or lines, as the file is read.

    ``unit`` is ``"tokens"`` or ``"lines"``; size and overlap are as for ``chunk_by_tokens``
    and ``chunk_by_lines``, and must have been checked. The window sizes are for tests.

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 text; a character takes more
            tokens than size.
    """
    pieces = read_pieces(path)
    buffer = ""  # the text from `base` on; base is always a line start
    base = 0
    base_line = 1
    start = previous_end = 0  # of the next chunk, relative to base (tokens)
    first = 0  # the next chunk's first line, from 0 (lines)
    done_lines = 0  # lines before base
    count = 0
    global_previous_end = 0
    want = window_chars
    eof = False
    carried: list[int] = []  # token counts of the window's first lines (or pieces), made before
    while True:
        while not eof and len(buffer) < want:
            piece = next(pieces, None)
            if piece is None:
                eof = True
            else:
                buffer += piece
        cut = len(buffer) if eof else buffer.rfind("\n") + 1
        if cut == 0:
            if not eof:
                want = len(buffer) * 2  # one line longer than the window: read the whole line
                continue
            return
        window = buffer[:cut]
        last = eof and cut == len(buffer)
        if unit == "tokens":
            index = _TokenIndex(window, carried)
            starts = index.starts
            limit = None if last else cut - guard_chars
            spans, (start, previous_end) = _cut_by_tokens(
                index, start, previous_end, size, overlap, limit=limit, base=base
            )
            made = spans
            finished = last
            resume = bisect_right(starts, start) - 1 if not finished else len(starts) - 1
        else:
            starts = _line_starts(window)
            lines = len(starts) - 1
            step = size - overlap
            made = []
            total = done_lines + lines
            while True:
                if last:
                    if first >= max(total - overlap, 1) or lines == 0:
                        break
                elif first + size > total:
                    break
                stop = min(first + size, total)
                s, e = starts[first - done_lines], starts[stop - done_lines]
                made.append((s, e, _count(window, s, e)))
                first += step
            finished = last
            resume = first - done_lines if not finished else lines
        for s, e, tokens in made:
            yield Chunk(
                window[s:e],
                index=count,
                first_line=base_line - 1 + bisect_right(starts, s),
                last_line=base_line - 1 + bisect_right(starts, e - 1),
                start=base + s,
                end=base + e,
                tokens=tokens,
                overlap=max(global_previous_end - (base + s), 0),
            )
            count += 1
            global_previous_end = base + e
        if finished:
            return
        if resume <= 0:  # not one chunk fits before the guard: read a larger window
            want = len(buffer) * 2
            if unit == "tokens":
                carried = index.counts_from(0)
            continue
        moved = starts[resume]
        if unit == "tokens":  # the lines kept are counted already
            carried = index.counts_from(moved)
        buffer = buffer[moved:]
        base += moved
        base_line += resume
        done_lines += resume
        start -= moved
        previous_end -= moved
        want = window_chars
