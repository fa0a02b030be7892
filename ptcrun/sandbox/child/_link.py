"""The child's end of the wire: send frames from any thread, wait for the host's replies.

Planner programs run on several threads at once (pmap items), and each may be waiting on a tool
call. One reader thread owns the inbound pipe and hands each :class:`~.._protocol.Reply` to the
thread waiting for it; writers share one lock so frames never interleave.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import threading

from .. import _protocol

__all__ = ["FrameTooLarge", "Link", "Pending"]


class FrameTooLarge(ValueError):
    """A message is bigger than the host accepts from the child."""


class Pending:
    """One request sent to the host whose reply has not arrived yet."""

    __slots__ = ("_event", "id", "reply", "texts")

    def __init__(self, request_id: int) -> None:
        self.id = request_id
        self._event = threading.Event()
        self.reply: _protocol.Reply | _protocol.Chunks | None = None
        #: For a Chunks reply: its chunks decoded, or the index of the first that is not UTF-8.
        self.texts: list[str] | int = []

    def resolve(self, reply: _protocol.Reply | _protocol.Chunks, texts: list[str] | int = []) -> None:  # noqa: B006 - never changed
        self.reply = reply
        self.texts = texts
        self._event.set()

    def wait(self) -> _protocol.Reply:
        """The host's :class:`~.._protocol.Reply` (to a call, a budget or estimate query)."""
        reply = self.wait_any()
        if not isinstance(reply, _protocol.Reply):
            raise _protocol.ProtocolError(f"{reply.OP!r} frame where a reply was expected")
        return reply

    def wait_any(self) -> _protocol.Reply | _protocol.Chunks:
        """The host's answer, whichever frame it is (a read of chunks may get either)."""
        self._event.wait()
        assert self.reply is not None
        return self.reply

    def wait_for(self, seconds: float | None) -> _protocol.Reply | None:
        """The reply, or ``None`` when it has not come within ``seconds`` (``None``: no limit)."""
        if not self._event.wait(seconds):
            return None
        reply = self.reply
        if not isinstance(reply, _protocol.Reply):
            raise _protocol.ProtocolError(f"{reply.OP if reply else None!r} frame where a reply was expected")
        return reply


def _decode_chunks(frame: _protocol.Chunks, payload: bytes | memoryview) -> list[str] | int:
    """The chunks of a frame, as text; or the index in it of the first that is not UTF-8.

    Raises:
        ProtocolError: the sizes do not add up to the bytes.
    """
    if any(size < 0 for size in frame.sizes) or sum(frame.sizes) != len(payload):
        raise _protocol.ProtocolError(f"chunks of {sum(frame.sizes):,} bytes came with {len(payload):,}")
    texts = []
    at = 0
    try:
        for size in frame.sizes:
            # A lone surrogate crosses as the host's list held it (surrogatepass both ways).
            texts.append(str(payload[at : at + size], "utf-8", "surrogatepass"))
            at += size
    except UnicodeDecodeError:
        return len(texts)
    return texts


class Link:
    """Framed, thread-safe messaging with the host over two inherited pipe descriptors."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self._fd_in = fd_in
        self._fd_out = fd_out
        self._queue_lock = threading.Lock()
        self._queue: list[bytes] = []
        self._writing = False
        self._pending: dict[int, Pending] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        # Reads of data count down from -1: call ids name the calls' spans in the transcript,
        # which must not depend on how a program reads its data.
        self._read_ids = itertools.count(-1, -1)
        #: Frames for the main thread (``Exec``, ``Shutdown``), in arrival order.
        self.commands: queue.Queue[_protocol.Frame] = queue.Queue()
        # The memory the host writes corpus text into (see _protocol.Chunks), and the slots of
        # it already read, to be released with the next query.
        self._shared: memoryview | None = None
        self._slot_bytes = 0
        self._read_slots: list[int] = []

    def map_shared(self, fd: int, slots: int, slot_bytes: int) -> None:
        """Map the host's shared memory, read-only; call before the lockdown."""
        import mmap

        mapping = mmap.mmap(fd, slots * slot_bytes, prot=mmap.PROT_READ)
        os.close(fd)
        self._shared = memoryview(mapping)
        self._slot_bytes = slot_bytes

    def read_slots(self) -> list[int]:
        """The slots of shared memory read since last asked, now to be released."""
        with self._queue_lock:
            slots, self._read_slots = self._read_slots, []
        return slots

    def read(self) -> _protocol.Frame:
        """Read one frame directly (only before the reader thread starts)."""
        return _protocol.read_frame(self._fd_in, _protocol.HOST_FRAMES)

    def send(self, frame: _protocol.Frame) -> None:
        """Queue a frame; the thread that finds no writer at work writes the whole queue.

        Frames keep their order, and under a wide fan-out many frames leave in one write.
        """
        data = _protocol.encode(frame)
        if len(data) > _protocol.MAX_CHILD_FRAME_BYTES:
            raise FrameTooLarge(
                f"{len(data):,} bytes cannot leave the sandbox in one message (at most "
                f"{_protocol.MAX_CHILD_FRAME_BYTES:,}); send less: a summary, or the data in parts."
            )
        with self._queue_lock:
            self._queue.append(data)
            if self._writing:
                return
            self._writing = True
        while True:
            with self._queue_lock:
                if not self._queue:
                    self._writing = False
                    return
                batch = b"".join(self._queue)
                self._queue.clear()
            view = memoryview(batch)
            while view:
                view = view[os.write(self._fd_out, view) :]

    def _chunk_bytes(self, frame: _protocol.Chunks) -> bytes | memoryview:
        """Where a frame's text is: after its JSON, or in a slot of the shared memory."""
        if frame.slot is None:
            return frame.payload
        shared = self._shared
        if shared is None or frame.payload or not 0 <= frame.slot < len(shared) // max(self._slot_bytes, 1):
            raise _protocol.ProtocolError(f"chunks in slot {frame.slot}, which is not one")
        at = frame.slot * self._slot_bytes
        return shared[at : at + min(sum(frame.sizes), self._slot_bytes)]

    def open_request(self, *, read: bool = False) -> Pending:
        """Reserve a request id; send a frame with ``pending.id``, then ``pending.wait()``.

        ``read``: the request reads data (:class:`~.._protocol.ChunksQuery`), and takes an id of
        its own kind.
        """
        pending = Pending(next(self._read_ids if read else self._ids))
        with self._pending_lock:
            self._pending[pending.id] = pending
        return pending

    def start_reader(self) -> None:
        threading.Thread(target=self._read_forever, name="ptcrun-link", daemon=True).start()

    def _read_forever(self) -> None:
        # Read whatever has arrived, up to 1 MiB at a time: the host batches its frames, so one
        # read usually brings many replies.
        # The buffer of large frames is reused: each frame of text is decoded (below) before
        # the next read, so no view into it outlives its frame.
        frames = _protocol.FrameBuffer(_protocol.MAX_HOST_FRAME_BYTES, _protocol.HOST_FRAMES, reuse=True)
        try:
            while True:
                # A large frame (corpus text) is read straight into its own buffer.
                target = frames.into()
                if target is not None:
                    count = os.readv(self._fd_in, [target])
                    if not count:
                        raise EOFError("the host closed the pipe")
                    arrived = frames.filled(count)
                else:
                    chunk = os.read(self._fd_in, 1 << 20)
                    if not chunk:
                        raise EOFError("the host closed the pipe")
                    arrived = frames.feed(chunk)
                for frame in arrived:
                    if isinstance(frame, (_protocol.Reply, _protocol.Chunks)):
                        with self._pending_lock:
                            pending = self._pending.pop(frame.id, None)
                        if isinstance(frame, _protocol.Chunks):
                            texts = _decode_chunks(frame, self._chunk_bytes(frame))
                            if frame.slot is not None:
                                with self._queue_lock:
                                    self._read_slots.append(frame.slot)
                            if pending is not None:  # without the view into the reused buffer
                                pending.resolve(dataclasses.replace(frame, payload=b""), texts)
                        elif pending is not None:
                            pending.resolve(frame)
                    else:
                        self.commands.put(frame)
        except (EOFError, OSError, _protocol.ProtocolError):
            # The host went away or spoke nonsense. Threads may be waiting on replies that will
            # never come, so leave at once rather than outlive the host.
            os._exit(0)
