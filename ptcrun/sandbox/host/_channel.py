"""The host's end of the wire to one sandbox child: send and receive checked frames.

A :class:`Channel` owns the two pipes to one child and nothing else: it does not know what the
frames mean. Many tasks send at once (every tool call ends in a reply), so frames queue while
one task writes, and that task sends the whole queue in one write, once the other tasks of the
scheduler's step have queued theirs: under a wide fan-out this turns hundreds of small writes
into a few. One task receives.
"""

from __future__ import annotations

import os
from collections import deque

import trio

from .. import _protocol

__all__ = ["CHILD_GONE", "Channel"]

#: What :meth:`Channel.send` and :meth:`Channel.receive` raise when the child's end is gone.
CHILD_GONE = (EOFError, trio.BrokenResourceError, trio.ClosedResourceError)


class Channel:
    """Framed messaging with one child over the two ends of its pipes.

    Args:
        to_child: the descriptor the host writes to.
        from_child: the descriptor the host reads from. Frames from the child are decoded and
            checked as they arrive, and must be at most ``MAX_CHILD_FRAME_BYTES``.

    The channel takes ownership of both descriptors; :meth:`aclose` closes them.
    """

    def __init__(self, to_child: int, from_child: int) -> None:
        self._to_child = trio.lowlevel.FdStream(to_child)
        self._from_child = trio.lowlevel.FdStream(from_child)
        self._buffer = _protocol.FrameBuffer(_protocol.MAX_CHILD_FRAME_BYTES, _protocol.CHILD_FRAMES)
        self._received: deque[_protocol.Frame] = deque()
        self._outbox: list[bytes] = []
        self._send_lock = trio.Lock()

    async def send(self, frame: _protocol.Frame) -> None:
        """Send ``frame``, after the frames queued before it.

        Returns once the frame is written or queued behind a write in progress (whose task
        then writes it too, or, if that task is cancelled, the next send).

        Raises:
            TypeError, ValueError: a field cannot be encoded as JSON; nothing was queued.
            trio.BrokenResourceError, trio.ClosedResourceError: the child or the channel is gone.
        """
        self._outbox.append(_protocol.encode(frame))
        if self._send_lock.locked():
            return
        async with self._send_lock:
            # Let the tasks that run in this same step of the scheduler queue their frames
            # first: under a fan-out many replies are ready at once, and leave in one write.
            # Shielded: a cancel must not strand the frames other tasks queued behind this one.
            await trio.lowlevel.cancel_shielded_checkpoint()
            await self._write_outbox()

    async def send_flushed(self, frame: _protocol.Frame) -> None:
        """Send ``frame`` and return only once it and every frame queued before it are written.

        For large answers served one after another: the caller reads the child's next request
        only when this one has left, so the queue never holds more than one of them.
        """
        head, payload = _protocol.encode_parts(frame)
        async with self._send_lock:
            # The frames queued before it, then its head and its bytes, with nothing between:
            # frames other tasks queue meanwhile wait for the end.
            self._outbox.append(head)
            data = b"".join(self._outbox)
            self._outbox.clear()
            await self._write(data)
            if payload:  # written as it is: megabytes of text are not copied into one buffer
                await self._write(payload)
            await self._write_outbox()

    async def _write_outbox(self) -> None:
        while self._outbox:
            data = b"".join(self._outbox)
            self._outbox.clear()
            await self._write(data)

    async def _write(self, data: bytes | memoryview) -> None:
        """Write ``data`` whole, or, when cancelled, put what is left of it back at the head of
        the queue for the next writer: a frame another task queued is never lost, and none is
        cut in two (``send_all`` says neither how much it wrote when cancelled, nor keeps it)."""
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                fd = self._to_child.fileno()
                if fd < 0:
                    raise trio.ClosedResourceError("the channel to the sandbox child is closed")
                try:
                    sent += os.write(fd, view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(fd)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise trio.BrokenResourceError("the sandbox child closed its pipe") from exc
        finally:
            if sent < len(view):
                self._outbox.insert(0, bytes(view[sent:]))

    async def receive(self) -> _protocol.Frame:
        """Return the child's next frame.

        Raises:
            EOFError: the child closed its end.
            ProtocolError: the child sent a frame that is too big, malformed or not its to send.
        """
        while not self._received:
            chunk = await self._from_child.receive_some(1 << 16)
            if not chunk:
                raise EOFError("the sandbox child closed its pipe")
            self._received.extend(self._buffer.feed(chunk))
        return self._received.popleft()

    async def aclose(self) -> None:
        """Close both pipes, even in a cancelled scope. Safe to call twice."""
        with trio.CancelScope(shield=True):
            await self._to_child.aclose()
            await self._from_child.aclose()
