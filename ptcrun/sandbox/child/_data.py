"""``data`` in the child: the corpus, read from the host when a program reads it, never copied.

A corpus can be far larger than the child's memory ceiling, so the child holds only its size.
``data[i]`` asks the host for chunk ``i`` (and, when reads go forward one after another, for the
chunks after it in the same request), and keeps what it got in a cache bounded in bytes, shared
by the datasets and the pmap threads. ``for chunk in data`` streams: while the program works on
one batch, the next is already on its way. When the corpus is one whole store, the host hands
the child a read-only descriptor of its file, and the same reads go to the file instead, with no
round trip (``_stored.py``); what does not add up there is asked of the host after all. A slice
is a view, ``data[1000:2000]``, read the same way, so ``pmap(f, data[a:b])`` costs nothing until
its items read their chunks.

For programs, ``data`` is a read-only sequence of strings: ``len``, indexes (negative too),
slices with steps, ``for``, ``reversed``, ``in``, ``.count``, ``.index``, ``random.sample`` and
``random.choice``, comparison with another sequence, and ``+`` with a tuple. Its chunks are
plain ``str``. It has no public attribute that leads anywhere: the link to the host and the
cache sit behind names that start with ``_``, which no program can read. The host checks every
request against the corpus (see ``ptcrun/sandbox/host/_corpus.py``).
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

from ... import errors
from .. import _protocol
from ._link import Link, Pending
from ._stored import Damaged, StoredText

__all__ = ["ChunkCache", "DataView", "Dataset"]

#: Bytes of chunk text the child keeps for ``data[i]``, over all datasets.
CACHE_BYTES = 32 << 20
#: The most chunks one request asks for; the host also stops at CHUNKS_FRAME_BYTES.
_READAHEAD_MAX = 4096
_READAHEAD_FIRST = 8
#: While iterating: requests in flight, the bytes each aims at (half the host's limit, so most
#: are answered whole), and the most chunks one asks for.
_IN_FLIGHT = 2
_STREAM_BYTES = _protocol.CHUNKS_FRAME_BYTES // 2
_STREAM_MAX = 16_384
#: Reading the store file: the bytes one batch aims at, and the most chunks it holds.
_FILE_BYTES = 512 << 10
_FILE_MAX = 2048


class ChunkCache:
    """Chunks read for ``data[i]``, least recently used dropped first beyond max_bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._max = max_bytes
        self._items: OrderedDict[tuple[str | None, int], tuple[str, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: tuple[str | None, int]) -> str | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[str | None, int], text: str, size: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (text, size)
            self._bytes += size
            while self._bytes > self._max and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped


class Dataset:
    """One dataset of the corpus, as the child reads it: its length, and the wire to its text."""

    def __init__(
        self, link: Link, name: str | None, count: int, cache: ChunkCache, stored: StoredText | None = None
    ) -> None:
        self.link = link
        self.name = name
        self.count = count
        self.cache = cache
        #: The store file, when the host handed the child one: read with no round trip.
        self.stored = stored
        self._lock = threading.Lock()
        self._next_miss = 0
        self._readahead = _READAHEAD_FIRST

    def get(self, index: int) -> str:
        """Chunk index (0 <= index < count), from the cache or the host."""
        key = (self.name, index)
        text = self.cache.get(key)
        if text is not None:
            return text
        # One read at a time per dataset: pmap items that want neighbouring chunks wait for the
        # one request that brings them all, instead of asking for each.
        with self._lock:
            text = self.cache.get(key)
            if text is not None:
                return text
            if index == self._next_miss:  # reading forward: ask for more each time
                self._readahead = min(self._readahead * 4, _READAHEAD_MAX)
            else:
                self._readahead = 1
            stop = min(index + self._readahead, self.count)
            texts, sizes = self._fetch(index, stop, _protocol.CHUNKS_FRAME_BYTES)
            for offset, (chunk, size) in enumerate(zip(texts, sizes, strict=True)):
                self.cache.put((self.name, index + offset), chunk, size)
            self._next_miss = index + len(texts)
            return texts[0]

    def stream(self, start: int, stop: int) -> Iterator[str]:
        """Chunks start to stop - 1 in order: from the store file a batch at a time, or from the
        host, read ahead."""
        # Batch by batch, and chunk by chunk in C: a generator that yielded each chunk would
        # cost a resumed frame per chunk, as much as a program's loop over short chunks.
        if self.stored is not None:
            return chain.from_iterable(_Batches(self._stream_file(start, stop)))
        return chain.from_iterable(_Batches(self._stream_host(start, stop)))

    def _stream_file(self, start: int, stop: int) -> Iterator[list[str]]:
        # No read-ahead: the text is in the page cache or on its way there (the kernel reads a
        # file ahead as it is read in order), and a batch is decoded faster than it is asked.
        # Batches aim at _FILE_BYTES; never cached, as a stream's chunks are not read again.
        at = start
        per_request = _READAHEAD_FIRST
        buffer = bytearray(_FILE_BYTES)
        while at < stop:
            texts, sizes = self._fetch(at, min(at + per_request, stop), _FILE_BYTES, buffer)
            at += len(texts)
            average = max(sum(sizes) // len(sizes), 1)
            per_request = max(1, min(_FILE_BYTES // average, _FILE_MAX))
            yield texts

    def _fetch(
        self, start: int, stop: int, max_bytes: int, buffer: bytearray | None = None
    ) -> tuple[list[str], list[int]]:
        """Chunks start.. before stop, at least one: from the file, or else from the host."""
        if self.stored is not None:
            try:
                return self.stored.read(start, stop, max_bytes, buffer)
            except Damaged:
                pass  # the host reads them, and says what is wrong (a damaged file, a chunk too large)
        return self._receive(self._request(start, stop), start, stop)

    def _stream_host(self, start: int, stop: int) -> Iterator[list[str]]:
        # Two requests stay in flight, so the host reads and sends the next batches while the
        # program works on this one.
        waiting: deque[tuple[Pending, int, int]] = deque()
        asked = start
        per_request = _READAHEAD_FIRST
        while asked < stop or waiting:
            while asked < stop and len(waiting) < _IN_FLIGHT:
                end = min(asked + per_request, stop)
                waiting.append((self._request(asked, end), asked, end))
                asked = end
            pending, first, end = waiting.popleft()
            texts, sizes = self._receive(pending, first, end)
            got = first + len(texts)
            if got < end:  # the host stopped at its byte limit: the rest comes next, in order
                waiting.appendleft((self._request(got, end), got, end))
            # Aim each request at _STREAM_BYTES, from the size of the chunks just read.
            average = max(sum(sizes) // len(sizes), 1)
            per_request = max(1, min(_STREAM_BYTES // average, _STREAM_MAX))
            yield texts

    def _request(self, start: int, stop: int) -> Pending:
        pending = self.link.open_request(read=True)
        release = self.link.read_slots()
        self.link.send(_protocol.ChunksQuery(pending.id, self.name, start, stop, release=release))
        return pending

    def _receive(self, pending: Pending, start: int, stop: int) -> tuple[list[str], list[int]]:
        reply = pending.wait_any()
        if isinstance(reply, _protocol.Reply):  # the host could not serve it: a chunk too big
            raise errors.from_payload(reply.error or {})
        sizes, texts = reply.sizes, pending.texts  # decoded by the link's reader, as it arrived
        if reply.start != start or not sizes or start + len(sizes) > stop:
            raise _protocol.ProtocolError(
                f"chunks {start}..{stop} came back as {len(sizes)} from {reply.start}"
            )
        if isinstance(texts, int):
            raise errors.SandboxError(
                f"chunk {start + texts} of data is not UTF-8 text: the corpus store is damaged; "
                "the run's owner must build it again (ptcrun.build_store)."
            )
        return texts, sizes


class _Batches:
    """The batches of one stream, for a ``chain`` to flatten, safe to share between threads.

    A program may share ``iter(data)`` (or a ``zip`` over it) between pmap items, as it may an
    iterator of a list. ``chain`` is not made for that: it asks its source for the next batch
    with no lock, and reading a batch lets other threads run. A second thread asking meanwhile
    made the source, a generator, raise "already executing", and ``chain`` then released it
    while the first thread still ran it, which crashed the child (SIGSEGV); had the second
    thread got a batch, ``chain`` would have put it over the first, whose chunks were lost. So
    batches are read one at a time, under a lock, into one queue, and every batch ``chain``
    gets is a view that takes chunks from that queue up to the end of a batch: whichever view
    ``chain`` keeps, each chunk comes out once, in order. (``chain`` never releases a view it
    puts another over: a small object, and what is left of a batch, each time threads meet.)
    """

    __slots__ = ("_batches", "_lock", "_queue")

    def __init__(self, batches: Iterator[list[str]]) -> None:
        self._batches = batches
        self._lock = threading.Lock()
        #: Chunks read and not yet taken, each batch followed by None.
        self._queue: deque[str | None] = deque()

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> Iterator[str]:
        queue = self._queue
        with self._lock:
            if not queue:
                queue.extend(next(self._batches))
                queue.append(None)
        return iter(queue.popleft, None)


class DataView:
    """The chunks of a dataset at the positions of a range: ``data``, or a slice of it."""

    __slots__ = ("_dataset", "_positions")
    _dataset: Dataset
    _positions: range

    def __init__(self, dataset: Dataset, positions: range) -> None:
        object.__setattr__(self, "_dataset", dataset)
        object.__setattr__(self, "_positions", positions)

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            # A slice is a tuple of its chunks, as a sequence's slice is: programs print it,
            # return it with done() and pass it to tools. What stays lazy is `data` itself, so
            # `for chunk in data` and `pmap(f, data)` never hold the corpus.
            return tuple(DataView(self._dataset, self._positions[key]))
        try:
            index = operator.index(key)
        except TypeError:
            raise TypeError(f"data indices must be integers or slices, not {type(key).__name__}") from None
        length = len(self._positions)
        if not -length <= index < length:
            raise IndexError(self._out_of_range(index))
        return self._dataset.get(self._positions[index])

    def _out_of_range(self, index: int) -> str:
        length = len(self._positions)
        if not length:
            return f"data index {index} out of range: this data holds no chunks"
        return (
            f"data index {index} out of range: this data holds {length:,} chunks, "
            f"so an index runs from 0 to {length - 1:,} (or -1 to -{length:,} from the end)"
        )

    def __iter__(self) -> Iterator[str]:
        positions = self._positions
        if positions.step == 1:
            return self._dataset.stream(positions.start, positions.stop)
        return map(self._dataset.get, positions)

    def __reversed__(self) -> Iterator[str]:
        return map(self._dataset.get, reversed(self._positions))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and any(chunk == value for chunk in self)

    def count(self, value: object) -> int:
        """How many chunks equal value."""
        return sum(1 for chunk in self if chunk == value) if isinstance(value, str) else 0

    def index(self, value: object, start: int = 0, stop: int | None = None) -> int:
        """The position of the first chunk equal to value, from start up to stop."""
        window = range(len(self))[start:stop]
        if isinstance(value, str):
            part = DataView(self._dataset, self._positions[start:stop])
            for position, chunk in zip(window, part, strict=True):
                if chunk == value:
                    return position
        raise ValueError("data.index(x): x is not a chunk of data")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataView):
            if other._dataset is self._dataset and other._positions == self._positions:
                return True
        elif not isinstance(other, (list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: object) -> tuple[str, ...]:
        if not isinstance(other, (tuple, DataView)):
            return NotImplemented
        return (*self, *other)

    def __radd__(self, other: object) -> tuple[str, ...]:
        if not isinstance(other, tuple):
            return NotImplemented
        return (*other, *self)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("data is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("data is read-only")

    def __repr__(self) -> str:
        positions = self._positions
        label = "data" if self._dataset.name is None else f"data[{self._dataset.name!r}]"
        if positions != range(self._dataset.count):
            label += f"[{positions.start}:{positions.stop}" + (
                f":{positions.step}]" if positions.step != 1 else "]"
            )
        return f"<{label}: {len(self):,} chunks, read on demand; list({label}) copies them>"


Sequence.register(DataView)
