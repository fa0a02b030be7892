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

Program code never runs trusted, and two mechanisms hold that even where the code inside a
section cannot see it coming:

* The garbage collector could otherwise finalize a program's object in the middle of a
  section (a paused generator with a ``finally`` block, left in a reference cycle, runs that
  block when it is collected), on the thread that happened to allocate. So automatic
  collection is paused while any thread is inside a section, and the garbage is finalized
  after it, untrusted.
* Whatever the path, an event raised while a frame of a program (a code object that
  ``exec_program`` ran, or code compiled from the same file name) is on the stack between the
  event and the innermost ``trusted()`` of the thread is judged as untrusted. A program frame
  *below* the section (the program called ``namedtuple``, which opened it) does not count.

Nothing that evaluates strings or executes generated code on behalf of a program runs inside a
section unless the code is built only from checked, exact values (``namedtuple`` with field
names it validates itself); ``typing``'s string annotations and ``dataclasses``' generated
methods do not qualify.

Outside ``trusted()`` only a few harmless events pass (``time.sleep``, ``builtins.id``,
``array.__new__``, the exception hooks, thread start on newer Pythons); every other event is
refused, so an event added by a future Python is refused until someone allows it here.
Inside ``trusted()`` every event of the child's own code passes except starting processes,
signalling processes and opening sockets, which nothing trusted in the child does either.
"""

from __future__ import annotations

import gc
import sys
import threading
import types
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
    checking = False  # walking the stack: the walk's own events pass (see _walking)

    def __init__(self) -> None:
        #: The frame that opened each trusted() section of this thread, innermost last.
        self.entries: list[types.FrameType] = []


_state = _ThreadState()
_installed = False
_install_lock = threading.Lock()
#: File names of the programs exec_program ran; their frames are never trusted.
_program_files: set[str] = set()
# Automatic garbage collection is paused while any thread is inside a trusted section.
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _HARMLESS:
        return
    if _state.depth:
        if event.startswith(_NEVER):
            raise PermissionError(f"blocked by the sandbox: {event}")
        if (_state.checking and _walking(event, args)) or not _program_code_inside_section():
            return
    elif event == "exec" and _state.program is not None and args and args[0] is _state.program:
        _state.program = None
        return
    raise PermissionError(f"blocked by the sandbox: {event}")


def _walking(event: str, args: tuple[Any, ...]) -> bool:
    """Whether event is one that walking the stack raises: reading a frame's code object.

    Only these pass while a walk is under way, so code that runs in the middle of one (a
    finalizer the collector calls) gets no other event through.
    """
    if event == "sys._getframe":
        return True
    return (
        event == "object.__getattr__" and len(args) == 2 and args[1] == "f_code"
        and type(args[0]) is types.FrameType
    )


def _program_code_inside_section() -> bool:
    """Whether a program's frame runs between here and the innermost trusted() entry."""
    if not _program_files:
        return False
    walking = _state.checking
    _state.checking = True  # sys._getframe and f_code raise events of their own
    try:
        entry = _state.entries[-1] if _state.entries else None
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None and frame is not entry:
            if frame.f_code.co_filename in _program_files:
                return True
            frame = frame.f_back
        return False
    finally:
        _state.checking = walking


def _pause_gc() -> None:
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1


def _resume_gc() -> None:
    global _gc_pauses
    with _gc_lock:
        _gc_pauses -= 1
        if _gc_pauses == 0 and _gc_was_enabled:
            gc.enable()


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


class _Trusted:
    """The context manager ``trusted()`` returns; its state is the calling thread's."""

    __slots__ = ()

    def __enter__(self) -> None:
        _pause_gc()
        _state.depth += 1
        walking = _state.checking
        _state.checking = True  # the sys._getframe event is the section's own
        try:
            _state.entries.append(sys._getframe(1))
        except BaseException:  # (a MemoryError) no section was opened: undo the rest
            _state.depth -= 1
            _resume_gc()
            raise
        finally:
            _state.checking = walking

    def __exit__(self, *exc_info: object) -> None:
        _state.entries.pop()
        _state.depth -= 1
        _resume_gc()


_TRUSTED = _Trusted()


def trusted() -> _Trusted:
    """Let the current thread raise any audit event (except process and socket ones) inside.

    For the child's own work on a program: compiling it, reading its traceback. Sections
    nest. Program code must never run inside one; use ``exec_program`` to run it. While any
    thread is inside a section, automatic garbage collection waits, so no program object is
    finalized (and no program ``finally`` block runs) in it; an event raised by program code
    that gets into a section anyway is refused as if the section were not there.
    """
    return _TRUSTED


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
    _program_files.add(code.co_filename)
    _state.program = code
    try:
        exec(code, namespace)
    finally:
        _state.program = None
