"""A corpus store: chunks written once to one file, read back by index without loading the rest.

A day of logs is gigabytes. Held as a list of strings it fills the host's memory, and copied into
the sandbox child it would not fit under the child's memory ceiling at all. A store keeps the
chunks on disk, in one file: reading chunk ``i`` costs one read of a fixed-width index entry and
one of its text (``os.pread``, safe from any thread), served by the page cache when the file is
warm. It is not memory-mapped: the pages of a mapping count in the process's resident memory as
they are touched, so reading a 10 GB store through one would show the host at gigabytes. The
sandbox child never opens the file: when a run's corpus is a whole store, the host hands the child
a read-only descriptor of it, from which the child reads a batch at a time (``lseek`` then
``readv`` of the batch's index entries and its text into a buffer of its own, never a mapping;
``ptcrun/sandbox/child/_stored.py``); otherwise the host reads ranges of chunks and sends them
(see ``ptcrun/sandbox/host/_corpus.py``).

Layout, all integers little-endian::

    b"ptcrun-store\\x00\\x00\\x00\\x01"    16 bytes: magic and format version
    the chunks' UTF-8 text, back to back, one dataset after the other
    per dataset, one 72-byte record per chunk: 9 u64 (see _RECORD)
    the footer: JSON, the datasets and what is known of them
    u64 footer offset, u64 footer length, b"ptcrun-store-end"

The writer (:mod:`._writer`) streams: text goes straight to the file and index records to a
temporary file copied after the text, so writing a store holds one chunk at a time, whatever its
size. The file is written under a temporary name and renamed when complete, so a store that
exists is whole; one damaged afterwards is refused with its path and the fix.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import weakref
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import overload

from ..errors import ConfigError
from ._chunking import Chunk

__all__ = ["StoredChunks", "open_store"]

_MAGIC = b"ptcrun-store\x00\x00\x00\x01"
_END = b"ptcrun-store-end"
_TRAILER = struct.Struct("<QQ16s")
# offset, bytes, chars, tokens, start, end, first_line, last_line, overlap; _UNKNOWN where a
# plain string did not say (only Chunk objects know where they came from).
_RECORD = struct.Struct("<9Q")
_UNKNOWN = (1 << 64) - 1
_CHUNK_FIELDS = ("tokens", "start", "end", "first_line", "last_line", "overlap")
#: The footer holds a histogram of chunk sizes; a corpus of many sizes keeps only the totals.
_MAX_HISTOGRAM = 100_000
#: Index entries read in one call when a range of chunks is read.
_RECORDS_AT_ONCE = 4096


def _damaged(path: str, what: str) -> ConfigError:
    return ConfigError(
        f"corpus store {path!r} is damaged: {what}. Build it again from the corpus file "
        f"(ptcrun.build_store(corpus, {path!r})); a store is never changed after it is written."
    )


class _StoreFile:
    """One opened store file, shared by its datasets; read with ``pread`` from any thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ConfigError(
                f"corpus store {path!r} does not exist; check the path, or build the store from "
                f"the corpus file with ptcrun.build_store(corpus, {path!r})."
            ) from None
        except IsADirectoryError:
            raise ConfigError(f"corpus store {path!r} is a directory; pass the store file.") from None
        except OSError as exc:
            raise ConfigError(
                f"corpus store {path!r} cannot be read: {exc.strerror or exc}; check that you may read it."
            ) from None
        self.fd = fd
        weakref.finalize(self, os.close, fd)
        if os.path.isdir(path):  # some systems open a directory read-only without complaint
            raise ConfigError(f"corpus store {path!r} is a directory; pass the store file.")
        size = os.fstat(fd).st_size
        head = os.pread(fd, len(_MAGIC), 0)
        if not head.startswith(_MAGIC[:12]):
            raise ConfigError(
                f"{path!r} is not a ptcrun corpus store (it does not start with the store's "
                f"marker); pass a file written by ptcrun.build_store or ptcrun.write_store."
            )
        if head != _MAGIC:
            raise ConfigError(
                f"corpus store {path!r} has format version {head[12:]!r}, which this ptcrun "
                f"cannot read; build it again with this version (ptcrun.build_store)."
            )
        if size < len(_MAGIC) + _TRAILER.size:
            raise _damaged(path, "it is cut short")
        footer_at, footer_bytes, end = _TRAILER.unpack(os.pread(fd, _TRAILER.size, size - _TRAILER.size))
        if end != _END or footer_at + footer_bytes != size - _TRAILER.size:
            raise _damaged(path, "its end marker is missing (was the file cut short?)")
        try:
            footer = json.loads(os.pread(fd, footer_bytes, footer_at))
            self.kind = footer["kind"]
            self.datasets = [_Dataset(self, footer_at, **d) for d in footer["datasets"]]
            about = footer.get("about")  # optional: stores written before it have none
            self.about: dict[str, object] | None = dict(about) if isinstance(about, dict) else None
        except (ValueError, KeyError, TypeError) as exc:
            raise _damaged(path, f"its table of contents cannot be read ({exc})") from None
        if self.kind not in ("sequence", "mapping") or (self.kind == "sequence" and len(self.datasets) != 1):
            raise _damaged(path, "its table of contents names no dataset it can serve")

    def read_into(self, target: memoryview, offset: int, what: str) -> None:
        """Fill target with the bytes at offset; a file shorter than its table says is damaged."""
        if os.preadv(self.fd, [target], offset) != len(target):
            raise _damaged(self.path, f"{what} lies past the end of the file")

    def read(self, offset: int, length: int, what: str) -> bytes:
        """length bytes at offset; a file shorter than its table says is damaged."""
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise _damaged(self.path, f"{what} lies past the end of the file")
        return data


class _Dataset:
    """Where one dataset's text and index lie in a store file, and what the footer says of it."""

    def __init__(
        self, file: _StoreFile, footer_at: int, *, name: str | None, index: int, count: int,
        text_start: int, text_end: int, chars: int, sha256: str, tokens: list[list[int]] | None,
        token_total: int | None,
    ) -> None:
        if not (
            (name is None or type(name) is str) and len(_MAGIC) <= text_start <= text_end <= index
            and type(count) is int and count >= 0 and index + count * _RECORD.size <= footer_at
        ):
            raise ValueError("a dataset's bounds are out of the file")
        self.file, self.name, self.index, self.count = file, name, index, count
        self.text_start, self.text_end, self.chars, self.sha256 = text_start, text_end, chars, sha256
        self.histogram = None if tokens is None else {int(k): int(v) for k, v in tokens}
        self.token_total = token_total


class StoredChunks(Sequence[str]):
    """The chunks of one dataset of a corpus store: a read-only sequence, read from disk.

    ``chunks[i]`` reads one chunk (a :class:`~ptcrun.Chunk` when the store was built from a
    file, else a ``str``); nothing else of the corpus is loaded. Pass it as a run's ``data``
    (or a mapping of names to several) and the sandbox reads its chunks on demand.

    Attributes:
        path: the store file.
        name: the dataset's name, or ``None`` for a store of one unnamed sequence.
        chars: characters in all chunks.
        sha256: the corpus fingerprint (``corpus_digest`` of the chunks), computed when written.
        about: what the writer recorded of where the chunks came from (the command line's
            ``ptcrun store build`` records the corpus file and the cut), or ``None``.
    """

    def __init__(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Open the dataset ``name`` of the store at path (``None``: a store of one sequence).

        Raises:
            ConfigError: the file is missing, is not a store, or is damaged; the store has no
                dataset of that name.
        """
        file = _StoreFile(os.fspath(path))
        found = [d for d in file.datasets if d.name == name]
        if not found:
            names = ", ".join(repr(d.name) for d in file.datasets)
            raise ConfigError(f"corpus store {file.path!r} has no dataset {name!r}; it has {names}.")
        self._bind(found[0])

    @classmethod
    def _of(cls, dataset: _Dataset) -> StoredChunks:
        self = cls.__new__(cls)
        self._bind(dataset)
        return self

    def _bind(self, dataset: _Dataset) -> None:
        self._dataset = dataset
        self._file = dataset.file
        self.path = dataset.file.path
        self.name = dataset.name
        self.chars = dataset.chars
        self.sha256 = dataset.sha256
        self.about = dataset.file.about

    def __len__(self) -> int:
        return self._dataset.count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = self._dataset.count
        if not -count <= index < count:
            raise IndexError(f"chunk index {index} out of range ({count:,} chunks)")
        index %= count
        record = self._record(index)
        text = self._text(index, record[0], record[1])
        if record[3] == _UNKNOWN:
            return text
        fields = dict(zip(_CHUNK_FIELDS, record[3:], strict=True))
        return Chunk(text, index=index, **fields)

    def __iter__(self) -> Iterator[str]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        name = "" if self.name is None else f" {self.name!r}"
        return f"<StoredChunks{name}: {len(self):,} chunks in {self.path!r}>"

    def token_histogram(self) -> dict[int, int] | None:
        """How many chunks hold each token count, from the footer; ``None`` when not all known."""
        return self._dataset.histogram

    def token_total(self) -> int | None:
        """The tokens of all chunks, each counted on its own; ``None`` when not all known."""
        return self._dataset.token_total

    def char_sizes(self) -> Iterator[int]:
        """Each chunk's length in characters, read from the index only."""
        for records in self._records(0, len(self)):
            for record in records:
                yield record[2]

    def layout(self) -> tuple[int, int, int]:
        """Where this dataset lies in its file: its index's offset, its text's start and end."""
        d = self._dataset
        return d.index, d.text_start, d.text_end

    def file_layouts(self) -> list[tuple[int, int, int]]:
        """The :meth:`layout` of every dataset in this dataset's file, this one included."""
        return [(d.index, d.text_start, d.text_end) for d in self._file.datasets]

    def file_descriptor(self) -> int:
        """The store file's descriptor, open read-only; it stays open as long as this does."""
        return self._file.fd

    def chunk_bytes(self, index: int) -> int:
        """The length of chunk index (0 <= index < len) in UTF-8 bytes, from the index only."""
        return int(self._record(index)[1])

    def read_utf8(
        self, start: int, stop: int, max_bytes: int, into: memoryview | None = None
    ) -> tuple[list[int], bytes]:
        """The UTF-8 text of chunks start, start+1, ... before stop, as far as max_bytes allows
        (always at least one chunk): each chunk's length in bytes, and the bytes back to back.

        With ``into``, the bytes are read into it instead (no bytes are returned); the first
        chunk must fit it, and max_bytes must not exceed its length.

        Raises:
            IndexError: start is not a chunk of the dataset, or stop is not after it.
            ConfigError: the store is damaged.
        """
        count = self._dataset.count
        if not 0 <= start < stop <= count:
            raise IndexError(f"chunks {start}..{stop} are not within 0..{count}")
        first_offset = self._record(start)[0]
        sizes: list[int] = []
        at = first_offset
        index = start
        for records in self._records(start, stop):
            for offset, length, *_ in records:
                if offset != at:
                    raise _damaged(self.path, f"chunk {index} does not follow chunk {index - 1}")
                if sizes and at + length - first_offset > max_bytes:
                    break
                sizes.append(length)
                at += length
                index += 1
            else:
                continue
            break
        self._check_bounds(start, first_offset, at - first_offset)
        what = f"the text of chunk {start}"
        if into is None:
            return sizes, self._file.read(first_offset, at - first_offset, what)
        self._file.read_into(into[: at - first_offset], first_offset, what)
        return sizes, b""

    def _record(self, index: int) -> tuple[int, ...]:
        at = self._dataset.index + index * _RECORD.size
        return _RECORD.unpack(self._file.read(at, _RECORD.size, f"the index entry of chunk {index}"))

    def _records(self, start: int, stop: int) -> Iterator[Iterator[tuple[int, ...]]]:
        """The index entries of chunks start.. stop - 1, read _RECORDS_AT_ONCE at a time."""
        for first in range(start, stop, _RECORDS_AT_ONCE):
            last = min(first + _RECORDS_AT_ONCE, stop)
            at = self._dataset.index + first * _RECORD.size
            data = self._file.read(at, (last - first) * _RECORD.size, f"the index entry of chunk {first}")
            yield _RECORD.iter_unpack(data)

    def _check_bounds(self, index: int, offset: int, length: int) -> None:
        if not self._dataset.text_start <= offset <= offset + length <= self._dataset.text_end:
            raise _damaged(self.path, f"chunk {index} points outside the text")

    def _text(self, index: int, offset: int, length: int) -> str:
        self._check_bounds(index, offset, length)
        try:
            return self._file.read(offset, length, f"the text of chunk {index}").decode("utf-8")
        except UnicodeDecodeError:
            raise _damaged(self.path, f"chunk {index} is not UTF-8 text") from None


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether the file at path starts as a corpus store does (a damaged one included), so a
    command can take a store wherever it takes a corpus file; ``False`` when it cannot be read,
    and for what is not a regular file: a pipe (``<(zcat app.log.gz)``) is never opened, as
    reading its first bytes here would take them from the command that reads it next."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as file:
            return file.read(12) == _MAGIC[:12]
    except OSError:
        return False


def open_store(path: str | os.PathLike[str]) -> StoredChunks | Mapping[str, StoredChunks]:
    """Open a corpus store: its chunks, or a read-only mapping of its named datasets.

    Raises:
        ConfigError: the file is missing, is not a store, or is damaged; the message names it.
    """
    file = _StoreFile(os.fspath(path))
    if file.kind == "sequence":
        return StoredChunks._of(file.datasets[0])
    return MappingProxyType({str(d.name): StoredChunks._of(d) for d in file.datasets})
