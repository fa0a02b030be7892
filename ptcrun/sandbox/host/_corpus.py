"""Serve the corpus to the sandbox child: ranges of chunks, read from a store or from memory.

The child holds no copy of ``data``; it asks for ranges of chunks (:class:`~.._protocol.ChunksQuery`)
and gets their UTF-8 text back (:class:`~.._protocol.Chunks`). A corpus passed as a store
(:class:`~ptcrun.corpus._store.StoredChunks`) is read from its file, in a worker
thread when the read is large, since a page not yet in memory means a wait on the disk; a corpus
passed as strings is encoded from memory. Either way the program sees the same ``data``.

Every query is checked first: a dataset the run does not have, or a range outside it, is a
broken protocol and ends the child, so a program can never make the host read outside the
corpus. Each answer holds at most ``CHUNKS_FRAME_BYTES`` (one chunk, if a single chunk is
larger), and the host answers one query at a time, each written before the next frame is read,
so a flood of queries costs the child its own time and nothing piles up on the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import trio

from ... import errors
from ...corpus._store import StoredChunks
from .. import _protocol

__all__ = ["CorpusServer"]

# Reads of more than one chunk, or of one larger than this, go to a worker thread, so a cold
# disk cannot stall the event loop; a single small chunk (random access) is read in place.
_THREAD_BYTES = 256 << 10
# What one frame to the child may hold, less room for its JSON.
_MAX_CHUNK_BYTES = _protocol.MAX_HOST_FRAME_BYTES - (1 << 20)


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

    def datasets(self) -> list[tuple[str | None, int]]:
        """Each dataset's name and number of chunks, in order."""
        return [(name, len(chunks)) for name, chunks in self._sets.items()]

    async def answer(self, query: _protocol.ChunksQuery) -> _protocol.Chunks | _protocol.Reply:
        """The chunks a query asks for, as many as fit one frame.

        Raises:
            ProtocolError: the dataset does not exist, or the range is not inside it.
            SandboxError: the store file is damaged; the message names it and the fix.
        """
        if self.named == (query.name is None) or query.name not in self._sets:
            raise _protocol.ProtocolError(f"chunks of a dataset the run does not have: {query.name!r}")
        chunks = self._sets[query.name]
        if not 0 <= query.start < query.stop <= len(chunks):
            raise _protocol.ProtocolError(
                f"chunks {query.start}..{query.stop} are outside the dataset's {len(chunks):,}"
            )
        if isinstance(chunks, StoredChunks):
            try:
                sizes, payload = await _read(chunks, query.start, query.stop)
            except errors.ConfigError as exc:
                # Not the program's doing, and nothing it could fix: the run ends, saying why.
                raise errors.SandboxError(f"the corpus could not be read: {exc}") from exc
        else:
            sizes, payload = _encode(chunks, query.start, query.stop)
        if sizes[0] > _MAX_CHUNK_BYTES:
            error = errors.SandboxLimitExceeded(
                f"chunk {query.start} is {sizes[0]:,} bytes, more than the sandbox can receive at "
                f"once ({_MAX_CHUNK_BYTES:,}); cut the corpus into smaller chunks.",
                setting="chunk_tokens",
                limit=_MAX_CHUNK_BYTES,
            )
            return _protocol.Reply(query.id, False, error=errors.to_payload(error))
        return _protocol.Chunks(query.id, query.start, sizes, payload)


async def _read(chunks: StoredChunks, start: int, stop: int) -> tuple[list[int], bytes]:
    wanted = (start, stop, _protocol.CHUNKS_FRAME_BYTES)
    if stop - start == 1 and chunks.chunk_bytes(start) <= _THREAD_BYTES:
        return chunks.read_utf8(*wanted)
    return await trio.to_thread.run_sync(chunks.read_utf8, *wanted)


def _encode(chunks: Sequence[str], start: int, stop: int) -> tuple[list[int], bytes]:
    """Chunks start.. of an in-memory corpus as UTF-8, up to one frame's worth (at least one)."""
    sizes: list[int] = []
    parts: list[bytes] = []
    total = 0
    for index in range(start, stop):
        # A lone surrogate crosses as it is, as it did when the child held a copy.
        raw = chunks[index].encode("utf-8", "surrogatepass")
        if parts and total + len(raw) > _protocol.CHUNKS_FRAME_BYTES:
            break
        sizes.append(len(raw))
        parts.append(raw)
        total += len(raw)
    return sizes, b"".join(parts)
