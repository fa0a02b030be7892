"""``data`` read straight from the corpus store's file, when the host hands the child one.

Through the host, each batch of text costs a query, the host's reply, and a copy on the host's
side before the child decodes it, and the host's side set the pace of ``for chunk in data``.
When the corpus is one whole store, the host opens the file read-only for the child (see
``ptcrun/sandbox/host/_corpus.py``), and the child reads each batch's index entries and text
itself, into a buffer of its own, and decodes the text from there: no round trip.

The file is read, not mapped: a mapping costs the page tables of every page it touches, set
up and torn down again (on this machine more than the copy a read makes), counts against the
child's capped address space, and kills the process if the file is cut short under it. A
batch is read into a buffer that is used again for the next, so the child's memory holds a
batch, whatever the size of the file.

The file's layout is ``ptcrun/corpus/_store.py``'s. Whatever does not add up (entries that do
not follow each other, text outside the dataset's, a file shorter than its index says, bytes
that are not UTF-8, a read the system fails) raises :class:`Damaged`, and the caller asks the
host for those chunks instead, so a damaged store is reported by the host as it always was. A
chunk larger than the host would send (:data:`~.._protocol.MAX_CHUNK_BYTES`) is asked of the host
too, which refuses it naming the fix: a program cannot tell whether the child reads the file.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from itertools import accumulate, repeat

from .. import _protocol

__all__ = ["Damaged", "StoreFile", "StoredText", "TooLarge"]

#: u64 words in one index entry: offset, bytes, then seven the child does not need.
_ENTRY_WORDS = 9
_ENTRY_BYTES = 8 * _ENTRY_WORDS
#: Batches whose chunks average less than this are decoded as one string and then cut, which
#: spares a call per chunk; larger chunks are decoded one by one, which spares a copy.
_SMALL_CHUNK = 2048


class Damaged(Exception):
    """The file does not hold what its index says, or cannot be read; the host reads these
    chunks instead."""


class TooLarge(Damaged):
    """A chunk larger than the sandbox takes; the host refuses it, naming the limit and the fix."""


class StoreFile:
    """The child's read-only descriptor of the store file, shared by its datasets and threads.

    The sandbox lets the child read a descriptor it holds (``read``, ``lseek``), not ``pread``,
    so a read is a seek and a read under one lock.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def read_into(self, target: memoryview, at: int) -> None:
        """Fill target with the file's bytes from at.

        Raises:
            Damaged: the file ends first, or the system fails the read (the host reads it
                instead, and says what is wrong; a raw OSError would reach the program).
        """
        filled = 0
        with self._lock:
            try:
                os.lseek(self._fd, at, os.SEEK_SET)
                while filled < len(target):
                    count = os.readv(self._fd, [target[filled:]])
                    if not count:
                        raise Damaged(f"bytes {at}..{at + len(target)} lie past the end of the file")
                    filled += count
            except OSError as exc:
                raise Damaged(f"bytes {at}..{at + len(target)} could not be read: {exc}") from None


class StoredText:
    """One dataset's index and text in the store file the host opened for the child.

    Args:
        file: the store file.
        layout: the dataset's index offset, its text's start and its text's end in the file.
    """

    def __init__(self, file: StoreFile, layout: list[int]) -> None:
        self._file = file
        self._index, self._text_start, self._text_end = layout

    def read(
        self, start: int, stop: int, max_bytes: int, buffer: bytearray | None = None
    ) -> tuple[list[str], list[int]]:
        """Chunks start, start + 1... before stop, as many as max_bytes holds (at least one):
        their text, and each one's length in UTF-8 bytes. ``buffer``: where to read the text,
        grown if it is too small; a reader that reads batch after batch passes the same one.

        Raises:
            Damaged: the file does not hold what its index says.
            TooLarge: chunk start is larger than the sandbox takes.
        """
        offsets, sizes = self._entries(start, stop)
        first = offsets[0]
        ends = list(accumulate(sizes, initial=first))
        if ends[:-1] != offsets or first < self._text_start or ends[-1] > self._text_end:
            raise Damaged(f"chunks {start}..{stop}")
        if sizes[0] > _protocol.MAX_CHUNK_BYTES:
            raise TooLarge(f"chunk {start} is {sizes[0]:,} bytes")
        keep = max(1, bisect_right(ends, first + max_bytes) - 1)
        del sizes[keep:]
        length = ends[keep] - first
        if buffer is None or len(buffer) < length:
            buffer = bytearray(length)
        with memoryview(buffer) as view:
            self._file.read_into(view[:length], first)
            return _decode(view, list(accumulate(sizes, initial=0))), sizes

    def _entries(self, start: int, stop: int) -> tuple[list[int], list[int]]:
        """The offsets and lengths of chunks start.. stop - 1, from the index."""
        entries = bytearray((stop - start) * _ENTRY_BYTES)
        self._file.read_into(memoryview(entries), self._index + start * _ENTRY_BYTES)
        with memoryview(entries) as view, view.cast("Q") as words:
            # The index is little-endian; the host grants the file only on such a machine.
            return words[0::_ENTRY_WORDS].tolist(), words[1::_ENTRY_WORDS].tolist()


def _decode(view: memoryview, bounds: list[int]) -> list[str]:
    """The text between each pair of consecutive bounds in view.

    Raises:
        Damaged: the bytes are not UTF-8.
    """
    try:
        if bounds[-1] < _SMALL_CHUNK * (len(bounds) - 1):
            whole = str(view[: bounds[-1]], "utf-8", "surrogatepass")
            if len(whole) == bounds[-1]:  # ASCII: a byte is a character
                return list(map(whole.__getitem__, map(slice, bounds, bounds[1:])))
        # A lone surrogate crosses as the host's list held it, as it does through the host.
        pieces = map(view.__getitem__, map(slice, bounds, bounds[1:]))
        return list(map(str, pieces, repeat("utf-8"), repeat("surrogatepass")))
    except UnicodeDecodeError:
        raise Damaged("a chunk is not UTF-8 text") from None
