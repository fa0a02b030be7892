"""The child's end of the wire: send frames from any thread, wait for the host's replies.

Planner programs run on several threads at once (pmap items), and each may be waiting on a tool
call. One reader thread owns the inbound pipe and hands each :class:`~.._protocol.Reply` to the
thread waiting for it; writers share one lock so frames never interleave.
"""

from __future__ import annotations

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

    __slots__ = ("_event", "id", "reply")

    def __init__(self, request_id: int) -> None:
        self.id = request_id
        self._event = threading.Event()
        self.reply: _protocol.Reply | None = None

    def resolve(self, reply: _protocol.Reply) -> None:
        self.reply = reply
        self._event.set()

    def wait(self) -> _protocol.Reply:
        self._event.wait()
        assert self.reply is not None
        return self.reply

    def wait_for(self, seconds: float | None) -> _protocol.Reply | None:
        """The reply, or ``None`` when it has not come within ``seconds`` (``None``: no limit)."""
        self._event.wait(seconds)
        return self.reply


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
        #: Frames for the main thread (``Exec``, ``Shutdown``), in arrival order.
        self.commands: queue.Queue[_protocol.Frame] = queue.Queue()

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

    def open_request(self) -> Pending:
        """Reserve a request id; send a frame with ``pending.id``, then ``pending.wait()``."""
        pending = Pending(next(self._ids))
        with self._pending_lock:
            self._pending[pending.id] = pending
        return pending

    def start_reader(self) -> None:
        threading.Thread(target=self._read_forever, name="ptcrun-link", daemon=True).start()

    def _read_forever(self) -> None:
        # Read whatever has arrived, up to 1 MiB at a time: the host batches its frames, so one
        # read usually brings many replies.
        frames = _protocol.FrameBuffer(_protocol.MAX_HOST_FRAME_BYTES, _protocol.HOST_FRAMES)
        try:
            while True:
                chunk = os.read(self._fd_in, 1 << 20)
                if not chunk:
                    raise EOFError("the host closed the pipe")
                for frame in frames.feed(chunk):
                    if isinstance(frame, _protocol.Reply):
                        with self._pending_lock:
                            pending = self._pending.pop(frame.id, None)
                        if pending is not None:
                            pending.resolve(frame)
                    else:
                        self.commands.put(frame)
        except (EOFError, OSError, _protocol.ProtocolError):
            # The host went away or spoke nonsense. Threads may be waiting on replies that will
            # never come, so leave at once rather than outlive the host.
            os._exit(0)
