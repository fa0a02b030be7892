"""The audit-hook tripwire: refuse introspection, dynamic code and I/O events in program code.

CPython raises an audit event (PEP 578) before many sensitive operations: opening a file,
importing a module that is not loaded yet, compiling or exec-ing code, reading a frame or a
code object (``tb_frame``, ``gi_frame``, ``__code__``), building functions or code objects by
hand, walking the garbage collector, starting processes, opening sockets, calling ctypes.
The tripwire is a hook that turns those events into ``PermissionError("blocked by the
sandbox: <event>")`` unless the current thread is inside a ``trusted()`` section.

It is a backstop behind the RestrictedPython policy, not a wall: PEP 578 hooks cannot stop
code that already runs arbitrary Python (such code could enter ``trusted()`` itself). The
wall is the kernel layers in ``_confine``; the tripwire makes a policy mistake show up as a
clear error instead of a quiet escape, and it costs nothing on the hot path.

Contract for the code that runs programs:

* Compile the program inside ``with trusted():`` (``compile`` is refused elsewhere).
* Run it with ``exec_program(code, namespace)``, *outside* any ``trusted()`` section. It
  allows exactly one ``exec`` event, for that very code object, on this thread; the program
  body then runs untrusted. Never ``exec`` a program inside ``trusted()``: the flag would
  stay set while the program runs.
* Read tracebacks and frames of a program's errors inside ``trusted()``, and never call
  program-defined objects (their ``__str__``, callbacks) from inside it.
* Threads start untrusted; ``trusted()`` is per thread.

Outside ``trusted()`` only a few harmless events pass (``time.sleep``, ``builtins.id``,
``array.__new__``, the exception hooks, thread start on newer Pythons); every other event is
refused, so an event added by a future Python is refused until someone allows it here.
Inside ``trusted()`` everything passes except starting processes, signalling processes and
opening sockets, which nothing trusted in the child does either.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["exec_program", "install_tripwire", "trusted"]

_HARMLESS = frozenset({
    "builtins.id",
    "time.sleep",
    "array.__new__",
    "sys.excepthook",
    "sys.unraisablehook",
    "_thread.start_new_thread",
    "cpython._PySys_ClearAuditHooks",
})
# Refused even inside trusted(): nothing trusted in the child starts or signals processes or
# opens sockets, so a program that reaches a trusted section by accident still cannot.
_NEVER = (
    "subprocess.", "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn",
    "os.spawn", "os.kill", "os.killpg", "socket.", "pty.",
)


class _ThreadState(threading.local):
    depth = 0
    program: types.CodeType | None = None


_state = _ThreadState()
_installed = False
_install_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _HARMLESS:
        return
    if _state.depth:
        if not event.startswith(_NEVER):
            return
    elif event == "exec" and _state.program is not None and args and args[0] is _state.program:
        _state.program = None
        return
    raise PermissionError(f"blocked by the sandbox: {event}")


def install_tripwire() -> None:
    """Add the audit hook to this process; it lasts until the process ends.

    Call it in the child once its own imports and warm-up are done; calling it again does
    nothing. From then on, audit events outside ``trusted()`` raise ``PermissionError``.
    """
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


@contextmanager
def trusted() -> Iterator[None]:
    """Let the current thread raise any audit event (except process and socket ones) inside.

    For the child's own work on a program: compiling it, reading its traceback. Sections
    nest. Program code must never run inside one; use ``exec_program`` to run it.
    """
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1


def exec_program(code: types.CodeType, namespace: dict[str, Any]) -> None:
    """Execute a compiled program in namespace, with the tripwire armed for its body.

    The tripwire lets through the ``exec`` event of exactly this code object, once; whatever
    the body does afterwards is checked like any untrusted code.

    Raises:
        RuntimeError: called inside ``trusted()``, where the program would run unchecked.
        Whatever the program raises.
    """
    if _state.depth:
        raise RuntimeError(
            "exec_program() was called inside trusted(), so the program would run with the "
            "tripwire off; call it outside the trusted section."
        )
    _state.program = code
    try:
        exec(code, namespace)
    finally:
        _state.program = None
