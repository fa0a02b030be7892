"""The guards of ``except`` and ``with``: what ends the program cannot be caught or swallowed.

``done()``, ``fail()``, a cancellation and a limit end a program by raising a ``BaseException``
that is not an ``Exception``. The compile policy refuses ``except BaseException`` and routes every
``except`` clause through ``_catchable_`` (:func:`catchable`) and every ``with`` item through
``_with_`` (:func:`guarded_with`), and this module makes them hold at run time:

* ``except``: only ``Exception`` and its subclasses; while a ``BaseException`` that is not an
  ``Exception`` is on its way out, no clause matches, not even one for an exception raised over
  it (by a ``finally`` block or an ``__exit__``).
* ``with``: the context manager's ``__exit__`` may swallow an ``Exception``, never ``done()``,
  ``fail()`` or a cancellation; a program's own ``__exit__`` never sees those, nor a traceback.
"""

from __future__ import annotations

import sys

from ._class_of import ClassOf
from ._mod_classes import is_program_class
from ._modules import ContainerType

__all__ = ["catchable", "guarded_with"]


#: How far back ``catchable`` follows the chain of exceptions raised over one another.
_CONTEXT_DEPTH = 100


def _is_exception_class(spec: object) -> bool:
    return isinstance(spec, type) and issubclass(spec, Exception)


def _is_catchable(spec: object) -> bool:
    # A flat tuple, as Python requires: no recursion into nested tuples, however deep.
    if type(spec) is tuple:
        return all(_is_exception_class(item) for item in spec)
    return _is_exception_class(spec)


def _ends_the_program(pending: BaseException | None) -> bool:
    """Whether pending is an exception that is not an Exception, or was raised over one.

    A generator being closed is not the program ending: what its ``finally`` block raises
    and catches while ``GeneratorExit`` is on its way out behaves as in Python.
    """
    if pending is None:
        return False
    if not isinstance(pending, Exception):
        return True
    for _ in range(_CONTEXT_DEPTH):
        pending = pending.__context__
        if pending is None:
            return False
        if not isinstance(pending, (Exception, GeneratorExit)):
            return True
    return False


def catchable(spec: object) -> object:
    """The ``_catchable_`` hook, wrapped around the classes of every ``except`` clause.

    Python evaluates the clause after the exception being handled is set, so this sees it:
    when that exception is not an ``Exception`` (``done()``, ``fail()``, a cancellation), or
    was raised while one was on its way out (by a ``finally`` block or a context manager's
    ``__exit__``), the clause becomes ``except ():``, which matches nothing, so the exception
    goes on unchanged. Otherwise the clause must name only Exception subclasses; the tuple
    Python matches is an exact copy of the one checked.
    """
    if _ends_the_program(sys.exc_info()[1]):
        return ()
    if spec is None:  # a bare ``except:``, which the compile policy made ``_catchable_(None)``
        return Exception
    if type(spec) is not tuple and issubclass(type(spec), tuple):
        # The tuple's own items, not what a subclass's methods would yield.
        spec = tuple(tuple.__iter__(spec))  # type: ignore[arg-type]
    # `except type(e):` names the class behind the stand-in type() gave.
    if type(spec) is tuple:
        spec = tuple(item._type if isinstance(item, ClassOf) else item for item in spec)
    elif isinstance(spec, ClassOf):
        spec = spec._type
    if _is_catchable(spec):
        return spec
    if isinstance(spec, ContainerType):
        spec = spec._type
    what = spec.__name__ if isinstance(spec, type) else type(spec).__name__
    raise TypeError(
        f"'except' can only name Exception and its subclasses in the sandbox, not {what!r}. "
        "Write 'except Exception:'."
    )


class _Context:
    """What a ``with`` statement enters in place of the context manager a program gave it.

    It calls the manager's own ``__enter__`` and ``__exit__``, but an ``__exit__`` that
    returns true swallows only an ``Exception``: ``done()``, ``fail()``, a cancellation or a
    limit goes on, as ``except Exception`` lets it.

    A program's own manager never sees what ends the program: while ``done()``, ``fail()``, a
    cancellation or a limit is on its way out, its ``__exit__`` is called as on a normal exit,
    ``(None, None, None)``, so it cleans up but cannot hold, inspect or re-raise the host's
    exception. For an ``Exception`` it gets the class and the exception, and ``None`` for the
    traceback, which leads to frames.
    """

    __slots__ = ("_enter", "_exit", "_manager", "_program")

    def __init__(self, manager: object) -> None:
        kind = type(manager)
        try:  # looked up on the class, as the with statement does
            self._enter = kind.__enter__  # type: ignore[attr-defined]
            self._exit = kind.__exit__  # type: ignore[attr-defined]
        except AttributeError:
            raise TypeError(
                f"{kind.__name__!r} object does not support the context manager protocol"
            ) from None
        self._manager = manager
        self._program = is_program_class(kind)

    def __enter__(self) -> object:
        return self._enter(self._manager)

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        # Also an Exception raised over done() (by a finally block): swallowing it would let
        # the program run on, and call tools, after it ended.
        if _ends_the_program(exc):
            if self._program:
                self._exit(self._manager, None, None, None)
            else:
                self._exit(self._manager, kind, exc, tb)
            return False
        swallow = self._exit(self._manager, kind, exc, None if self._program else tb)
        return bool(swallow)


def guarded_with(manager: object) -> object:
    """The ``_with_`` hook, wrapped around the context manager of every ``with`` item."""
    return _Context(manager)
