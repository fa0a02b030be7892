"""The wire between the host and the sandbox child: one frame class per op, sent as JSON.

On the pipe, each frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON: one object whose ``op`` names the frame's class and whose other keys are exactly that
class's fields. Only JSON crosses (never pickle: unpickling what an untrusted process sends is
code execution).

Host → child: :class:`Init`, :class:`Data`, :class:`Exec`, :class:`Reply`, :class:`Chunks`,
:class:`Shutdown`.
Child → host: :class:`Ready`, :class:`Call`, :class:`Cancel`, :class:`BudgetQuery`,
:class:`EstimateQuery`, :class:`ChunksQuery`, :class:`Output`, :class:`PmapStart`,
:class:`PmapEnd`, :class:`ItemStart`, :class:`ItemEnd`, :class:`Result`.

One frame carries bytes besides its JSON: :class:`Chunks`, the corpus text the child asked for,
as UTF-8 back to back (JSON would cost the host an encode and the child a decode of every
character, the most of reading a corpus). Its header has the top bit set, and its body is a
4-byte JSON length, the JSON, then the bytes. Bytes are data, never code: the child splits
them by the sizes the JSON gives and decodes them as UTF-8.

Everything the child sends is hostile until checked, so decoding checks every field once,
against the type its class declares: a frame that is not JSON, holds NaN or an infinity, nests
too deep, is bigger than :data:`MAX_CHILD_FRAME_BYTES`, names an op the reader does not accept,
or lacks, adds or mistypes a field raises :class:`ProtocolError`, and the host replaces the
child. Code that holds a frame object can trust its fields.

This module is imported by both sides, so it uses only the standard library: the frames are
frozen dataclasses with slots. It runs past 400 lines on purpose: every frame of the wire, and
the one check they all pass, read in one file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, dataclass_transform

from .._json import JSON

__all__ = [
    "CHILD_FRAMES",
    "HOST_FRAMES",
    "MAX_CHILD_FRAME_BYTES",
    "MAX_CHUNK_BYTES",
    "MAX_ESTIMATE_TEXTS",
    "MAX_HOST_FRAME_BYTES",
    "BudgetQuery",
    "Call",
    "Cancel",
    "Chunks",
    "ChunksQuery",
    "Data",
    "EstimateQuery",
    "Exec",
    "Frame",
    "FrameBuffer",
    "Init",
    "ItemEnd",
    "ItemStart",
    "Output",
    "PmapEnd",
    "PmapStart",
    "ProtocolError",
    "Ready",
    "Reply",
    "Result",
    "Shutdown",
    "decode",
    "encode",
    "encode_parts",
    "fields_of",
    "read_frame",
]

MAX_CHILD_FRAME_BYTES = 8 << 20
MAX_HOST_FRAME_BYTES = 256 << 20
#: The largest chunk the sandbox takes: one frame from the host must hold it and its JSON. A
#: child that reads the store file itself holds to it too, so no program can tell how it reads.
MAX_CHUNK_BYTES = MAX_HOST_FRAME_BYTES - (1 << 20)
#: Bytes of corpus text in one :class:`Chunks` frame, unless its first chunk alone is larger.
CHUNKS_FRAME_BYTES = 4 << 20
#: The most texts one ``budget.estimate`` may ask about, as many as a pmap may take by default.
MAX_ESTIMATE_TEXTS = 100_000

_HEADER = struct.Struct(">I")
# Set in the header of a frame that carries bytes after its JSON; frame sizes stay far below it.
_BYTES_FLAG = 1 << 31

Status = Literal["ok", "done", "failed", "error"]
DataKind = Literal["sequence", "mapping"]


class ProtocolError(Exception):
    """A frame was malformed, too big, of an unknown op, or sent by the wrong side."""


class Frame:
    """One message on the wire. Subclasses are frozen dataclasses; ``OP`` names them on the wire."""

    __slots__ = ()
    OP: ClassVar[str]
    #: Whether the frame carries bytes after its JSON, in its ``payload`` field.
    CARRIES_BYTES: ClassVar[bool] = False
    #: Each field's name and the check its decoded value must pass, in wire order.
    FIELDS: ClassVar[tuple[tuple[str, Callable[[Any], bool]], ...]]
    _NAMES: ClassVar[frozenset[str]]


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


# What each declared field type accepts from the JSON decoder, which only ever gives JSON data:
# ``bool`` is refused where an int is expected, and list items are checked where they are typed.
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int,
    "int | None": lambda v: v is None or type(v) is int,
    "float | None": lambda v: v is None or _is_number(v),
    "str": lambda v: type(v) is str,
    "str | None": lambda v: v is None or type(v) is str,
    "bool": lambda v: type(v) is bool,
    "JSON": lambda v: True,
    "list[JSON]": lambda v: type(v) is list,
    "list[int]": lambda v: type(v) is list and all(type(i) is int for i in v),
    "list[int] | None": lambda v: v is None or (type(v) is list and all(type(i) is int for i in v)),
    "list[str]": lambda v: type(v) is list and all(type(i) is str for i in v),
    "dict[str, JSON]": lambda v: type(v) is dict,
    "dict[str, JSON] | None": lambda v: v is None or type(v) is dict,
    "dict[str, float]": lambda v: type(v) is dict and all(_is_number(x) for x in v.values()),
    "Status": lambda v: v in ("ok", "done", "failed", "error"),
    "DataKind": lambda v: v in ("sequence", "mapping"),
}

F = TypeVar("F", bound=Frame)


@dataclass_transform(frozen_default=True)
def _frame(cls: type[F]) -> type[F]:
    """Make ``cls`` a frozen dataclass with slots; derive its checks from its annotations."""
    cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
    # An annotation without a check is a typo in this module: it fails at import.
    # The bytes of a frame that carries some travel after its JSON, not in it.
    cls.FIELDS = tuple(
        (f.name, _CHECKS[str(f.type)])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if not (cls.CARRIES_BYTES and f.name == "payload")
    )
    cls._NAMES = frozenset(name for name, _ in cls.FIELDS)
    return cls


@_frame
class Init(Frame):
    """The child's settings, the first frame it reads; the corpus follows as :class:`Data`."""

    OP = "init"
    limits: dict[str, float]
    tools: list[str]
    data_kind: DataKind
    language_layer: bool
    os_layers: bool
    strict: bool
    #: The seed of the programs' ``random`` generator, chosen by the host for the session.
    seed: int = 0
    #: The child's read-only descriptor of the memory the host writes corpus text into (see
    #: :class:`Chunks`), cut into ``shared_slots`` slots of ``shared_slot_bytes``; ``None``: none.
    shared_fd: int | None = None
    shared_slots: int = 0
    shared_slot_bytes: int = 0
    #: The child's read-only descriptor of the corpus's store file, when the corpus is that
    #: whole file (see :class:`Data` ``layout``); ``None``: the child asks the host for text.
    store_fd: int | None = None


@_frame
class Data(Frame):
    """A dataset of the corpus: ``count`` chunks, named ``name`` (``None``: the one sequence).

    Only the count crosses at the start: the child asks for the text with :class:`ChunksQuery`.
    """

    OP = "data"
    name: str | None
    count: int
    last: bool
    #: Where the dataset lies in the file of :class:`Init` ``store_fd``: its index's offset, its
    #: text's start and end; ``None`` when the child has no such file.
    layout: list[int] | None = None


@_frame
class Chunks(Frame):
    """The answer to :class:`ChunksQuery` ``id``: chunks ``start``, ``start+1``... of the dataset,
    as UTF-8, each ``sizes[i]`` bytes long; as many as fit in :data:`CHUNKS_FRAME_BYTES` (at
    least one). The bytes are in ``payload``, or, when ``slot`` is set, at the start of that
    slot of the shared memory (``payload`` then empty), until the child releases the slot."""

    OP = "chunks"
    CARRIES_BYTES = True
    id: int
    start: int
    sizes: list[int]
    slot: int | None = None
    #: Read-only; a view into the frame as it arrived, to spare a copy of megabytes of text.
    payload: bytes | memoryview = b""


@_frame
class Exec(Frame):
    """Run one program; the child answers with a :class:`Result` of the same id."""

    OP = "exec"
    id: int
    source: str


@_frame
class Reply(Frame):
    """The answer to a :class:`Call`, :class:`BudgetQuery` or :class:`EstimateQuery`: a value, or
    an error payload.

    The payload is the one form errors take wherever they cross (see ``ptcrun.errors``).
    """

    OP = "reply"
    id: int
    ok: bool
    value: JSON = None
    error: dict[str, JSON] | None = None


@_frame
class Shutdown(Frame):
    """Exit once the current command is done."""

    OP = "shutdown"


@_frame
class Ready(Frame):
    """The child is locked down and waits for programs; ``layers`` are its active OS layers."""

    OP = "ready"
    layers: dict[str, JSON] | None


@_frame
class Call(Frame):
    """``tool.<tool>(*args, **kwargs)``, made by item ``item`` of pmap ``pmap`` (or the program)."""

    OP = "call"
    id: int
    tool: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    pmap: int | None = None
    item: int | None = None


@_frame
class Cancel(Frame):
    """Stop the calls with these ids (their pmap timed out or failed fast)."""

    OP = "cancel"
    ids: list[int]


@_frame
class BudgetQuery(Frame):
    """What ``budget.remaining`` shows; answered by a :class:`Reply` whose value is a dict."""

    OP = "budget"
    id: int


@_frame
class EstimateQuery(Frame):
    """``budget.estimate``: the tokens ``tool.worker(text, instruction, schema, max_tokens)`` on
    each of ``texts`` would reserve; answered by a :class:`Reply` whose value is an int."""

    OP = "estimate"
    id: int
    texts: list[str]
    instruction: str
    schema: JSON = None
    max_tokens: int | None = None


@_frame
class ChunksQuery(Frame):
    """Read chunks ``start`` to ``stop - 1`` of dataset ``name`` (``None``: the one sequence);
    answered by :class:`Chunks`, which may hold fewer. The range must lie in the dataset: the
    host refuses anything else as a broken protocol."""

    OP = "chunks.query"
    id: int
    name: str | None
    start: int
    stop: int
    #: Slots of shared memory whose chunks the child has read: the host may write them again.
    release: list[int] = dataclasses.field(default_factory=list)


@_frame
class Output(Frame):
    """Text the program printed, from item ``item`` of pmap ``pmap`` (or the program)."""

    OP = "output"
    text: str
    pmap: int | None = None
    item: int | None = None


@_frame
class PmapStart(Frame):
    """A pmap began: ``total`` items on ``concurrency`` threads, inside the given parent item."""

    OP = "pmap.start"
    pmap: int
    total: int
    concurrency: int
    parent_pmap: int | None
    parent_item: int | None


@_frame
class PmapEnd(Frame):
    """A pmap ended with ``done`` items finished and ``failed`` failed."""

    OP = "pmap.end"
    pmap: int
    done: int
    failed: int
    timed_out: bool


@_frame
class ItemStart(Frame):
    """Item ``item`` of pmap ``pmap`` started on thread ``slot``."""

    OP = "item.start"
    pmap: int
    item: int
    slot: int


@_frame
class ItemEnd(Frame):
    """Item ``item`` of pmap ``pmap`` ended; ``error`` is a failure's error payload."""

    OP = "item.end"
    pmap: int
    item: int
    slot: int
    ok: bool
    error: dict[str, JSON] | None


@_frame
class Result(Frame):
    """How the program of :class:`Exec` ``id`` ended.

    ``error`` is the program's error payload, read by the host as untrusted. ``restart`` asks
    the host to replace the child (``restart_reason`` says why); ``candidate`` is the program's
    ``answer`` variable when ``candidate_set``.
    """

    OP = "result"
    id: int | None
    status: Status
    answer: JSON = None
    error: dict[str, JSON] | None = None
    restart: bool = False
    restart_reason: str | None = None
    cpu_seconds: float | None = None
    threads_peak: int = 0
    candidate: JSON = None
    candidate_set: bool = False


#: The frames each side may send, by op: the host reads ``CHILD_FRAMES``, the child ``HOST_FRAMES``.
HOST_FRAMES: Mapping[str, type[Frame]] = {cls.OP: cls for cls in (Init, Data, Exec, Reply, Chunks, Shutdown)}
CHILD_FRAMES: Mapping[str, type[Frame]] = {
    cls.OP: cls
    for cls in (
        Ready, Call, Cancel, BudgetQuery, EstimateQuery, ChunksQuery, Output,
        PmapStart, PmapEnd, ItemStart, ItemEnd, Result,
    )
}


def fields_of(frame: Frame) -> dict[str, Any]:
    """Return the frame's fields as a dict, in wire order (shallow: values are shared); the bytes
    of a frame that carries some are not among them."""
    return {name: getattr(frame, name) for name, _ in frame.FIELDS}


def encode_parts(frame: Frame) -> tuple[bytes, bytes | memoryview]:
    """The bytes of one frame as (header and JSON, the bytes it carries), to write one after
    the other without joining them: a frame of corpus text is megabytes."""
    if not frame.CARRIES_BYTES:
        return encode(frame), b""
    body = _ENCODER.encode({"op": frame.OP, **fields_of(frame)}).encode()
    payload: bytes | memoryview = frame.payload  # type: ignore[attr-defined]
    size = _HEADER.size + len(body) + len(payload)
    return _HEADER.pack(size | _BYTES_FLAG) + _HEADER.pack(len(body)) + body, payload


def encode(frame: Frame) -> bytes:
    """Return the bytes of one frame, header included.

    Raises:
        TypeError, ValueError: a field holds something JSON cannot carry (NaN, an object).
    """
    body = _ENCODER.encode({"op": frame.OP, **fields_of(frame)}).encode()
    if not frame.CARRIES_BYTES:
        return _HEADER.pack(len(body)) + body
    payload: bytes | memoryview = frame.payload  # type: ignore[attr-defined]
    size = _HEADER.size + len(body) + len(payload)
    return b"".join((_HEADER.pack(size | _BYTES_FLAG), _HEADER.pack(len(body)), body, payload))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One encoder and one decoder, made once: json.dumps and json.loads given options build a new
# one per call, which costs more than the rest of a small frame's encoding. Neither keeps state
# between calls. NaN and infinities are not JSON, and a peer must not have to guess: both refuse.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def decode(
    body: bytes | memoryview, accept: Mapping[str, type[Frame]], *, carries_bytes: bool = False
) -> Frame:
    """Return the frame in ``body`` (without its header) if it is one of ``accept``, checked.

    ``carries_bytes``: the header's flag was set, so the body is a JSON length, the JSON and
    bytes, and the frame must be of a class that carries bytes (and the other way round).

    Raises:
        ProtocolError: anything else.
    """
    payload: bytes | memoryview | None = None
    if carries_bytes:
        if len(body) < _HEADER.size:
            raise ProtocolError("frame with bytes is shorter than its own header")
        (length,) = _HEADER.unpack_from(body)
        if length > len(body) - _HEADER.size:
            raise ProtocolError("frame with bytes claims more JSON than it holds")
        view = memoryview(body)
        body, payload = view[_HEADER.size : _HEADER.size + length], view[_HEADER.size + length :]
    try:
        message = _DECODER.decode(str(body, "utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    if type(message) is not dict:
        raise ProtocolError("frame is not a JSON object")
    op = message.pop("op", None)
    cls = accept.get(op) if type(op) is str else None
    if cls is None:
        raise ProtocolError(f"unexpected op {op!r}")
    if message.keys() != cls._NAMES:
        missing = sorted(cls._NAMES - message.keys())
        extra = sorted(message.keys() - cls._NAMES)
        raise ProtocolError(f"{op!r} frame lacks fields {missing} or has unknown fields {extra}")
    for name, check in cls.FIELDS:
        value = message[name]
        if not check(value):
            raise ProtocolError(f"{op!r} frame has a bad {name!r}: {type(value).__name__}")
    if (payload is not None) != cls.CARRIES_BYTES:
        raise ProtocolError(f"{op!r} frame {'lacks' if cls.CARRIES_BYTES else 'has'} bytes after its JSON")
    if payload is not None:
        message["payload"] = payload
    return cls(**message)


# A frame larger than this that has not fully arrived is gathered in a buffer of its own.
_GATHER_BYTES = 1 << 20


class FrameBuffer:
    """Accumulate bytes as they arrive and return the complete frames, decoded and checked.

    A large frame (corpus text comes megabytes a frame) is gathered in a buffer of its size,
    made when its header arrives: :meth:`feed` copies into it, and a reader may fill it directly
    (:meth:`into`, then :meth:`filled`), sparing the copies of appending and cutting out.

    With ``reuse``, that buffer is kept for the next large frame, sparing its allocation (fresh
    pages cost a fault each); the bytes a frame carries are then a view into it, valid only
    until the next call, so the caller must have read them by then.
    """

    def __init__(
        self, max_frame_bytes: int, accept: Mapping[str, type[Frame]], *, reuse: bool = False
    ) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes
        self._accept = accept
        self._reuse = reuse
        self._spare = bytearray()
        self._large: memoryview | None = None  # the large frame being gathered, header included
        self._large_filled = 0

    def into(self) -> memoryview | None:
        """Where the next bytes of a large frame go, when one is being gathered: read into it,
        then call :meth:`filled` with the count; ``None`` otherwise (call :meth:`feed`)."""
        if self._large is None:
            return None
        return self._large[self._large_filled :]

    def filled(self, count: int) -> list[Frame]:
        """count bytes were read into :meth:`into`; return the frame they complete, if any."""
        assert self._large is not None
        self._large_filled += count
        return self._finish_large()

    def feed(self, chunk: bytes) -> list[Frame]:
        """Add ``chunk``; return the frames it completes, in order (raises ProtocolError)."""
        frames: list[Frame] = []
        spare_taken = False  # a frame returned by this call is a view into the spare buffer
        if self._large is not None:
            spare_taken = self._reuse
            take = min(len(chunk), len(self._large) - self._large_filled)
            self._large[self._large_filled : self._large_filled + take] = chunk[:take]
            self._large_filled += take
            frames += self._finish_large()
            if take == len(chunk):
                return frames
            chunk = chunk[take:]
        self._buffer += chunk
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            carries_bytes = bool(length & _BYTES_FLAG)
            length &= ~_BYTES_FLAG
            if length > self._max:
                raise ProtocolError(f"frame of {length:,} bytes exceeds the {self._max:,}-byte cap")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                if end > _GATHER_BYTES:
                    if not self._reuse or spare_taken or len(self._spare) < end:
                        self._spare = bytearray(end)
                    self._large = memoryview(self._spare)[:end]
                    self._large[: len(self._buffer)] = self._buffer
                    self._large_filled = len(self._buffer)
                    self._buffer = bytearray()
                break
            body = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            frames.append(decode(body, self._accept, carries_bytes=carries_bytes))
        return frames

    def _finish_large(self) -> list[Frame]:
        large = self._large
        assert large is not None
        if self._large_filled < len(large):
            return []
        self._large = None
        (length,) = _HEADER.unpack_from(large)
        body = large[_HEADER.size :]
        return [decode(body, self._accept, carries_bytes=bool(length & _BYTES_FLAG))]


def _read_exact(fd: int, n: int) -> bytes:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frame(fd: int, accept: Mapping[str, type[Frame]], max_bytes: int = MAX_HOST_FRAME_BYTES) -> Frame:
    """Read one frame from a blocking descriptor (the child, before its reader thread starts)."""
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    carries_bytes = bool(length & _BYTES_FLAG)
    length &= ~_BYTES_FLAG
    if length > max_bytes:
        raise ProtocolError(f"frame of {length:,} bytes exceeds the {max_bytes:,}-byte cap")
    return decode(_read_exact(fd, length), accept, carries_bytes=carries_bytes)

