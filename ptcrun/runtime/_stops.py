"""How a run ends when something outside it stops it: a signal, or an exception nobody foresaw.

``timeout``, ``docker stop`` and systemd send SIGTERM; a terminal that closes sends SIGHUP; Ctrl-C
sends SIGINT, which trio raises as ``KeyboardInterrupt``. Each must end a run as a clock does:
the calls in flight cancelled, the sandbox child stopped, ``run.end`` written with status
``cancelled``, and a :class:`~ptcrun.Result` that names the signal. Only the code that owns the
event loop may take over signals, so :func:`go_until_signal` is used by ``Runtime.run`` (and so by
``ptcrun run``), never by ``Runtime.arun``: a trio application decides itself what SIGTERM means.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from .. import errors
from .._tools import describe_exception

__all__ = ["STOP_SIGNALS", "go_until_signal", "holds", "stop_error", "unexpected_error"]

#: The signals ``Runtime.run`` turns into a ``cancelled`` Result, besides SIGINT (Ctrl-C), which
#: trio delivers as KeyboardInterrupt.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_R = TypeVar("_R")

_ADVICE = {
    "SIGINT": "Run it again to finish it.",
    "SIGTERM": (
        "Whatever sent it (timeout, docker stop, systemd, kill) ended the run; give the run "
        "more time there, or run it again."
    ),
    "SIGHUP": (
        "The terminal that started it went away; run it under nohup, tmux or screen to "
        "outlive the terminal."
    ),
}


async def go_until_signal(go: Callable[[], Awaitable[_R]], stop: Callable[[signal.Signals], None]) -> _R:
    """Await ``go()``; call ``stop(signum)`` for each SIGTERM or SIGHUP that arrives meanwhile.

    Must run in the main thread. ``trio.open_signal_receiver`` installs the handlers, and puts
    the previous ones back when ``go()`` is over.
    """
    with trio.open_signal_receiver(*STOP_SIGNALS) as received:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in received:
                    stop(signal.Signals(signum))

            nursery.start_soon(watch)
            try:
                return await go()
            finally:
                nursery.cancel_scope.cancel()


def holds(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is one of ``kinds``, or a group holding one, however deep."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(kinds) is not None
    return isinstance(exc, kinds)


def stop_error(signum: signal.Signals) -> errors.PtcrunError:
    """The error of a run a signal stopped: which signal, what was kept, and the fix."""
    if signum == signal.SIGINT:
        what = "interrupted by SIGINT (Ctrl-C)"
    else:
        what = f"stopped by {signum.name} (signal {int(signum)})"
    return errors.PtcrunError(
        f"the run was {what} before it finished; the calls in flight were cancelled and the "
        f"sandbox stopped, and the transcript keeps every call that finished. "
        f"{_ADVICE.get(signum.name, 'Run it again to finish it.')}"
    )


def unexpected_error(exc: BaseException) -> errors.PtcrunError:
    """The error of a run that stopped on an exception ptcrun did not foresee (a bug).

    The message names the exception and the innermost place it was raised; the exception itself
    is the error's ``__cause__``, with its traceback.
    """
    leaf = exc
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    frames = traceback.extract_tb(leaf.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" in {last.name} ({Path(last.filename).name}:{last.lineno})"
    error = errors.PtcrunError(
        f"the run stopped on an unexpected {describe_exception(exc)}{where}. ptcrun should have "
        f"turned this into a clear error: please report it with the transcript; the exception "
        f"is this error's __cause__."
    )
    error.__cause__ = exc
    return error
