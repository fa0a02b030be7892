"""SIGTERM and SIGHUP while a command cuts a corpus: it stops as on Ctrl-C, removing what it wrote.

``timeout``, ``docker stop`` and systemd send SIGTERM, and a terminal that closes sends SIGHUP;
by default either ends the process on the spot, which would leave a half-written store, as large
as the corpus, under a hidden name that no command reuses or removes. While the corpus is cut,
they raise :class:`Stopped` instead, a ``KeyboardInterrupt``, so the clean-up that runs on Ctrl-C
runs, and the command exits with the shell's code for the signal. A run sets its own handlers
(``Runtime.run``), so these are set for the cut only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Stopped", "stop_on_signals"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """The command was stopped by ``signum`` (SIGTERM or SIGHUP) while it cut a corpus."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`Stopped` on SIGTERM or SIGHUP in the main thread while the block runs; a
    signal ignored (``nohup``) stays ignored, and the handlers found are put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    found = {}
    for signum in _SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not signal.SIG_IGN:
            found[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in found.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
