"""Serve the corpus to the sandbox child: ranges of chunks, read from a store or from memory.

The child holds no copy of ``data``; it asks for ranges of chunks (:class:`~.._protocol.ChunksQuery`)
and gets their UTF-8 text back (:class:`~.._protocol.Chunks`). A corpus passed as a store
(:class:`~ptcrun.corpus._store.StoredChunks`) is read from its file, in a worker
thread when the read is large, since a page not yet in memory means a wait on the disk; a corpus
passed as strings is encoded from memory. Either way the program sees the same ``data``.

When the corpus is a whole store, every dataset of one file and nothing else, the child reads it
without asking: :meth:`CorpusServer.grant_store` opens the file again, read-only, for the child,
which reads a batch of it at a time (``ptcrun/sandbox/child/_stored.py``). The descriptor gives
the child no chunk it was not given already: the file holds the run's corpus, its index and its
footer (the datasets' names and digests, and what the store's writer recorded of its source,
such as the corpus file's path), and a read-only descriptor of its own (not the host's, so no
flag the child sets on it, nor its offset, reaches the host's reads) cannot write or grow it.
Whatever the child finds damaged there, cannot read, or would not be sent (a chunk above
``MAX_CHUNK_BYTES``) it asks the host for instead, so the host still decides what a damaged
store or a chunk too large means for the run.

Every query is checked first: a dataset the run does not have, or a range outside it, is a
broken protocol and ends the child, so a program can never make the host read outside the
corpus. Each answer holds at most ``CHUNKS_FRAME_BYTES`` (one chunk, if a single chunk is
larger), and the host answers one query at a time, each written before the next frame is read,
so a flood of queries costs the child its own time and nothing piles up on the host.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Mapping, Sequence

import trio

from ... import errors
from ...corpus._store import StoredChunks
from .. import _protocol

__all__ = ["CHUNK_SIZE_SETTING", "CorpusServer", "SharedText", "StoreGrant", "limit_of"]

# Reads of more than one chunk, or of one larger than this, go to a worker thread, so a cold
# disk cannot stall the event loop; a single small chunk (random access) is read in place.
_THREAD_BYTES = 256 << 10
# The largest chunk the child takes (a name of this module, so that tests can lower it).
_MAX_CHUNK_BYTES = _protocol.MAX_CHUNK_BYTES
#: What a chunk too large names as its setting: not a ``Limits`` field (the byte ceiling is the
#: protocol's), but the chunk size the corpus is cut with, ``chunk_tokens=`` of
#: ``ptcrun.build_store`` and ``--chunk-tokens`` of ``ptcrun store build`` and ``ptcrun run``.
CHUNK_SIZE_SETTING = "chunk_tokens"


def limit_of(setting: str) -> float | None:
    """The host's own value of a corpus limit an error names, or None for another setting."""
    return _MAX_CHUNK_BYTES if setting == CHUNK_SIZE_SETTING else None


class SharedText:
    """Memory the host writes corpus text into and the child maps read-only: no pipe to cross.

    A pipe costs a copy on each side and a wake-up for every megabyte; through this memory an
    answer is one read from the file (or one copy from a list) and one decode in the child. It
    is cut into slots of one answer each. The host writes a slot only while the child holds
    none of it: a slot is taken for an answer and free again when the child says, in a later
    query, that it has read it. When no slot is free the answer goes down the pipe as before.

    The child's descriptor is opened read-only, so its mapping cannot be made writable, and the
    host never reads the memory back: nothing the child could do to it reaches the host.
    Linux only (``memfd_create``); elsewhere :meth:`create` returns ``None``.
    """

    def __init__(self, fd: int, child_fd: int, slots: int, slot_bytes: int) -> None:
        self.child_fd = child_fd
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._fd = fd
        self._map = mmap.mmap(fd, slots * slot_bytes)
        self._view = memoryview(self._map)
        self._free = list(range(slots))
        self._taken: set[int] = set()

    @classmethod
    def create(cls, slots: int = 4, slot_bytes: int = _protocol.CHUNKS_FRAME_BYTES) -> SharedText | None:
        try:
            fd = os.memfd_create("ptcrun-corpus", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return None
        try:
            os.ftruncate(fd, slots * slot_bytes)
            child_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(fd)
            return None
        return cls(fd, child_fd, slots, slot_bytes)

    def take(self) -> int | None:
        """A free slot, now taken; ``None`` when the child holds them all."""
        if not self._free:
            return None
        slot = self._free.pop()
        self._taken.add(slot)
        return slot

    def give_back(self, slot: int) -> None:
        """A slot taken for an answer that was not sent."""
        self._taken.discard(slot)
        self._free.append(slot)

    def release(self, slots: list[int]) -> None:
        """The child has read these slots.

        Raises:
            ProtocolError: a slot that is not the child's to release.
        """
        for slot in slots:
            if slot not in self._taken:
                raise _protocol.ProtocolError(f"release of slot {slot}, which the child does not hold")
            self._taken.remove(slot)
            self._free.append(slot)

    def view(self, slot: int) -> memoryview:
        return self._view[slot * self.slot_bytes : (slot + 1) * self.slot_bytes]

    def close(self) -> None:
        """Unmap and close; safe to call twice."""
        if self._fd < 0:
            return
        self._view.release()
        try:
            self._map.close()
        except BufferError:
            pass  # a read into a slot is still under way in a thread: the mapping goes with it
        os.close(self._fd)
        self._fd = -1


class StoreGrant:
    """The corpus's store file, opened read-only for the child, and where each dataset lies in it.

    Attributes:
        child_fd: the descriptor to pass to the child; the sandbox closes it once the child
            has its copy.
        layouts: per dataset name, its index's offset, its text's start and end in the file.
    """

    def __init__(self, child_fd: int, layouts: dict[str | None, list[int]]) -> None:
        self.child_fd = child_fd
        self.layouts = layouts


class CorpusServer:
    """The run's corpus, by dataset name (``None`` for the one unnamed sequence).

    Args:
        data: a sequence of chunk strings, or a mapping of names to such sequences; a
            ``StoredChunks`` is read from its file, anything else from memory.
    """

    def __init__(self, data: Sequence[str] | Mapping[str, Sequence[str]]) -> None:
        self.named = isinstance(data, Mapping)
        self._sets: dict[str | None, Sequence[str]] = (
            dict(data.items()) if isinstance(data, Mapping) else {None: data}
        )
        #: The shared memory of the child being served, if it has one; set by the sandbox.
        self.shared: SharedText | None = None

    def grant_store(self) -> StoreGrant | None:
        """A read-only descriptor of the store file for the child, when the corpus is that whole
        file; ``None`` when it is not (a list, a part of a store, several files), or where the
        child could not read the file's little-endian index as it is (a big-endian machine)."""
        sets = self._sets
        if sys.byteorder != "little" or not sets:
            return None
        stores = [chunks for chunks in sets.values() if isinstance(chunks, StoredChunks)]
        if len(stores) != len(sets):
            return None
        files = {_identity(store.file_descriptor()) for store in stores}
        given = {store.layout() for store in stores}
        if len(files) != 1 or given != set(stores[0].file_layouts()):
            return None  # the file holds text the run was not given
        try:
            # A new open file description: flags the child sets on it never reach the host's.
            fd = os.open(f"/proc/self/fd/{stores[0].file_descriptor()}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        if _identity(fd) not in files:
            os.close(fd)
            return None
        layouts = {name: [*c.layout()] for name, c in sets.items() if isinstance(c, StoredChunks)}
        return StoreGrant(fd, layouts)

    def datasets(self) -> list[tuple[str | None, int]]:
        """Each dataset's name and number of chunks, in order."""
        return [(name, len(chunks)) for name, chunks in self._sets.items()]

    async def answer(self, query: _protocol.ChunksQuery) -> _protocol.Chunks | _protocol.Reply:
        """The chunks a query asks for, as many as fit one frame.

        Raises:
            ProtocolError: the dataset does not exist, or the range is not inside it.
            SandboxError: the store file is damaged; the message names it and the fix.
        """
        if query.release:
            if self.shared is None:
                raise _protocol.ProtocolError("release of shared memory the child was not given")
            self.shared.release(query.release)
        if self.named == (query.name is None) or query.name not in self._sets:
            raise _protocol.ProtocolError(f"chunks of a dataset the run does not have: {query.name!r}")
        chunks = self._sets[query.name]
        if not 0 <= query.start < query.stop <= len(chunks):
            raise _protocol.ProtocolError(
                f"chunks {query.start}..{query.stop} are outside the dataset's {len(chunks):,}"
            )
        try:
            return await self._answer(query, chunks)
        except errors.ConfigError as exc:
            # A damaged store: not the program's doing, and nothing it could fix. The run ends,
            # saying why.
            raise errors.SandboxError(f"the corpus could not be read: {exc}") from exc
        except OSError as exc:
            # The system failed the read (a failing disk, a network file system gone away): the
            # same, and the child's own reads of the file come here when they fail.
            what = f"corpus store {chunks.path!r}" if isinstance(chunks, StoredChunks) else "the corpus"
            raise errors.SandboxError(
                f"the corpus could not be read: {what} could not be read ({exc.strerror or exc}); "
                "check the disk or file system it is on, then run again."
            ) from exc

    async def _answer(
        self, query: _protocol.ChunksQuery, chunks: Sequence[str]
    ) -> _protocol.Chunks | _protocol.Reply:
        first = _first_bytes(chunks, query.start)
        if isinstance(chunks, StoredChunks) and first > _MAX_CHUNK_BYTES:
            # Refused from the index alone: reading it first would hold all of it in the host.
            return _too_large(query, first)
        shared = self.shared
        slot = into = None
        if shared is not None and first <= shared.slot_bytes:
            slot = shared.take()
            into = None if slot is None else shared.view(slot)
        try:
            if isinstance(chunks, StoredChunks):
                sizes, payload = await _read(chunks, query.start, query.stop, into)
            else:
                sizes, payload = _encode(chunks, query.start, query.stop, into)
        except BaseException:
            if slot is not None and shared is not None:
                shared.give_back(slot)
            raise
        if slot is not None:
            return _protocol.Chunks(query.id, query.start, sizes, slot=slot)
        if sizes[0] > _MAX_CHUNK_BYTES:
            return _too_large(query, sizes[0])
        return _protocol.Chunks(query.id, query.start, sizes, payload=payload)


def _too_large(query: _protocol.ChunksQuery, size: int) -> _protocol.Reply:
    """The answer to a read of a chunk larger than the sandbox takes: an error the program sees."""
    error = errors.SandboxLimitExceeded(
        f"chunk {query.start} is {size:,} bytes, more than the sandbox can receive at "
        f"once ({_MAX_CHUNK_BYTES:,}); cut the corpus into smaller chunks (a smaller "
        "chunk_tokens= or chunk_lines= of ptcrun.build_store, or --chunk-tokens or "
        "--chunk-lines of the ptcrun command).",
        setting=CHUNK_SIZE_SETTING,
        limit=_MAX_CHUNK_BYTES,
        observed=size,
    )
    return _protocol.Reply(query.id, False, error=errors.to_payload(error))


def _identity(fd: int) -> tuple[int, int]:
    """The file behind a descriptor: its device and inode."""
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _first_bytes(chunks: Sequence[str], index: int) -> int:
    """The UTF-8 length of a chunk, or a bound on it: whether it fits a slot."""
    if isinstance(chunks, StoredChunks):
        return chunks.chunk_bytes(index)
    return 4 * len(chunks[index])


async def _read(
    chunks: StoredChunks, start: int, stop: int, into: memoryview | None
) -> tuple[list[int], bytes]:
    limit = _protocol.CHUNKS_FRAME_BYTES if into is None else min(len(into), _protocol.CHUNKS_FRAME_BYTES)
    if stop - start == 1 and chunks.chunk_bytes(start) <= _THREAD_BYTES:
        return chunks.read_utf8(start, stop, limit, into)
    return await trio.to_thread.run_sync(chunks.read_utf8, start, stop, limit, into)


def _encode(
    chunks: Sequence[str], start: int, stop: int, into: memoryview | None
) -> tuple[list[int], bytes]:
    """Chunks start.. of an in-memory corpus as UTF-8, up to one frame's worth (at least one),
    as bytes, or written into ``into`` when given (none are returned then)."""
    limit = _protocol.CHUNKS_FRAME_BYTES if into is None else min(len(into), _protocol.CHUNKS_FRAME_BYTES)
    sizes: list[int] = []
    parts: list[bytes] = []
    total = 0
    for index in range(start, stop):
        # A lone surrogate crosses as it is, as it did when the child held a copy.
        raw = chunks[index].encode("utf-8", "surrogatepass")
        if parts and total + len(raw) > limit:
            break
        if into is not None:
            into[total : total + len(raw)] = raw
        sizes.append(len(raw))
        parts.append(raw)
        total += len(raw)
    return sizes, b"" if into is not None else b"".join(parts)
