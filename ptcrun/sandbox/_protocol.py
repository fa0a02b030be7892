"""The wire between the host and the sandbox child: length-prefixed JSON frames.

Each frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON encoding one
object with an ``op`` key. Only JSON crosses (never pickle: unpickling what an untrusted process
sends is code execution). Frames from the child are capped at :data:`MAX_CHILD_FRAME_BYTES`; the
host kills a child that sends a bigger, malformed or unknown frame.

Ops, host → child: ``init``, ``data``, ``exec``, ``reply``, ``shutdown``.
Ops, child → host: ``ready``, ``call``, ``cancel``, ``budget``, ``output``, ``event``, ``result``.

This module is imported by both sides, so it uses only the standard library.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

__all__ = [
    "CHILD_OPS",
    "MAX_CHILD_FRAME_BYTES",
    "MAX_HOST_FRAME_BYTES",
    "FrameBuffer",
    "ProtocolError",
    "check_child_frame",
    "encode",
    "read_frame",
    "write_frame",
]

MAX_CHILD_FRAME_BYTES = 8 << 20
MAX_HOST_FRAME_BYTES = 256 << 20
CHILD_OPS = frozenset({"ready", "call", "cancel", "budget", "output", "event", "result"})

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame was malformed, too big or of an unknown kind."""


def _dumps(message: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN and infinities are not JSON, and a peer must not have to guess.
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def encode(message: dict[str, Any]) -> bytes:
    """Return one frame holding ``message``."""
    body = _dumps(message)
    return _HEADER.pack(len(body)) + body


def _decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("frame is not an object with a string 'op'")
    return message


class FrameBuffer:
    """Accumulate bytes as they arrive and yield complete frames (used by the async host)."""

    def __init__(self, max_frame_bytes: int) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += chunk
        frames = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self._max:
                raise ProtocolError(f"frame of {length:,} bytes exceeds the {self._max:,}-byte cap")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            frames.append(_decode(body))
        return frames


def _read_exact(fd: int, n: int) -> bytes:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frame(fd: int, *, max_frame_bytes: int = MAX_HOST_FRAME_BYTES) -> dict[str, Any]:
    """Read one frame from a blocking file descriptor (used by the child)."""
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    if length > max_frame_bytes:
        raise ProtocolError(f"frame of {length:,} bytes exceeds the {max_frame_bytes:,}-byte cap")
    return _decode(_read_exact(fd, length))


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write one frame to a blocking file descriptor (callers serialise writers)."""
    view = memoryview(encode(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


_INT = (int,)
_OPT_INT = (int, type(None))
# The fields each frame from the child must carry, with their types; `bool` is refused where an
# int is expected. Everything the child sends is hostile until checked.
_FRAME_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "output": {"text": (str,), "pmap": _OPT_INT, "item": _OPT_INT},
    "call": {"id": _INT, "tool": (str,), "args": (list,), "kwargs": (dict,), "pmap": _OPT_INT, "item": _OPT_INT},
    "cancel": {"ids": (list,)},
    "budget": {"id": _INT},
    "event": {"type": (str,)},
    "result": {"status": (str,), "error": (dict, type(None)), "threads_peak": _OPT_INT, "restart": (bool, type(None))},
}
_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "pmap.start": ("pmap", "total", "concurrency"),
    "pmap.end": ("pmap", "done", "failed"),
    "item.start": ("pmap", "item", "slot"),
    "item.end": ("pmap", "item", "slot"),
}


def check_child_frame(frame: dict[str, Any]) -> None:
    """Raise ProtocolError unless ``frame`` has the fields its op needs, with their types."""
    op = frame["op"]
    fields = _FRAME_FIELDS.get(op)
    if fields is None:
        raise ProtocolError(f"unknown op {op!r}")
    for name, types in fields.items():
        value = frame.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{op!r} frame has a bad {name!r}: {type(value).__name__}")
    if op == "cancel" and not all(type(i) is int for i in frame["ids"]):
        raise ProtocolError("'cancel' frame has ids that are not ints")
    if op == "event":
        needed = _EVENT_FIELDS.get(frame["type"])
        if needed is None:
            raise ProtocolError(f"unknown event type {frame['type']!r}")
        if not all(type(frame.get(name)) is int for name in needed):
            raise ProtocolError(f"{frame['type']!r} event lacks int fields {needed}")
    if op == "result" and isinstance(frame["error"], dict):
        error = frame["error"]
        if not isinstance(error.get("kind"), str) or not isinstance(error.get("message"), str):
            raise ProtocolError("'result' frame has a malformed error")
