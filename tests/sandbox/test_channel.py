"""The host's channel to a child never loses or cuts a frame when a writer is cancelled."""
from __future__ import annotations

import os

import trio

from ptcrun.sandbox import _protocol
from ptcrun.sandbox.host._channel import Channel


def _pipes() -> tuple[Channel, int, int]:
    read_end, write_end = os.pipe()
    unused_read, unused_write = os.pipe()
    os.close(unused_write)
    return Channel(write_end, unused_read), read_end, write_end


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_a_frame_queued_behind_a_cancelled_writer_is_still_written():
    first, second = _protocol.Reply(1, True, 1, None), _protocol.Reply(2, True, 2, None)

    async def main() -> bytes:
        channel, read_end, _ = _pipes()
        async with trio.open_nursery() as nursery:
            writer = trio.CancelScope()

            async def send_first() -> None:
                with writer:
                    await channel.send(first)

            async def send_second() -> None:
                await trio.lowlevel.checkpoint()  # the first task takes the lock, whichever ran first
                await channel.send(second)  # queued behind the first task's write: returns
                writer.cancel()

            nursery.start_soon(send_first)
            nursery.start_soon(send_second)
        await channel.send(_protocol.Shutdown())
        written = _read_all(read_end)
        await channel.aclose()
        return written

    written = trio.run(main)
    # The second's send returned: it goes, in its place in the queue.
    assert written == b"".join(_protocol.encode(f) for f in (first, second, _protocol.Shutdown()))


def test_a_writer_cancelled_mid_frame_leaves_the_rest_for_the_next_write():
    big = _protocol.Reply(1, True, "x" * (4 << 20), None)  # more than the pipe holds

    async def main() -> list[_protocol.Frame]:
        channel, read_end, _ = _pipes()
        with trio.move_on_after(0.2):  # the pipe fills and nobody reads it: the write stops
            await channel.send(big)
        got = bytearray()

        async def drain() -> None:
            while True:
                await trio.lowlevel.wait_readable(read_end)
                chunk = _read_all(read_end)
                got.extend(chunk)
                if got.endswith(_protocol.encode(_protocol.Shutdown())):
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await channel.send(_protocol.Shutdown())
        await channel.aclose()
        frames = _protocol.FrameBuffer(len(got) + 1, _protocol.HOST_FRAMES).feed(bytes(got))
        return list(frames)

    frames = trio.run(main)
    assert frames == [big, _protocol.Shutdown()]
