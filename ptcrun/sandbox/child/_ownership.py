"""The write guard: which values a program may change, the ``_write_`` and ``_inplacevar_`` hooks.

``_policy`` rewrites every attribute or item write into a write on ``_write_(obj)`` and every
augmented assignment into ``_inplacevar_``. A program may change only lists, dicts, sets,
bytearrays, Counters, defaultdicts, OrderedDicts, deques and the program's own classes and their
instances; everything else (``data``, ``budget``, module proxies, functions) is read-only, and a
write to it says what can be changed instead. The ``setattr`` and ``delattr`` builtins follow the
same rules, and the ``__metaclass__`` hook that makes a program's classes records them here.
"""

from __future__ import annotations

import collections
import decimal
import operator
import weakref
from collections.abc import Callable
from typing import Any

from ._attributes import check_attribute_name
from ._class_of import ClassOf
from ._mod_classes import build_class, record_program_class
from ._modules import ContainerType, ModuleProxy
from ._names import is_dunder

__all__ = ["Ownership"]


_CHANGEABLE = (
    "only lists, dicts, sets, bytearrays, Counters, defaultdicts, OrderedDicts, deques and the program's "
    "own classes and their instances can be changed in the sandbox. Change a copy instead, "
    "e.g. list(x) or dict(x)."
)


class _ReadOnly:
    """What ``_write_`` returns for a value the program may not change: every write raises."""

    __slots__ = ("_what",)
    _what: str

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError(f"cannot set attribute {name!r} of {self._what}: {_CHANGEABLE}")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"cannot delete attribute {name!r} of {self._what}: {_CHANGEABLE}")

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError(f"cannot assign to an item of {self._what}: {_CHANGEABLE}")

    def __delitem__(self, key: object) -> None:
        raise TypeError(f"cannot delete an item of {self._what}: {_CHANGEABLE}")


def _describe(obj: object) -> str:
    if isinstance(obj, ModuleProxy):
        return f"module {obj._name!r}"
    if isinstance(obj, (ContainerType, ClassOf)):
        return f"class {obj._type.__name__!r}"
    if isinstance(obj, type):
        return f"class {obj.__name__!r}"
    return f"a {type(obj).__name__!r} object"


_OWNED_TYPES = frozenset(
    {list, dict, set, bytearray, collections.Counter, collections.defaultdict,
     collections.OrderedDict, collections.deque,
     # A decimal context is the calling thread's arithmetic settings (getcontext().prec = 6).
     decimal.Context, type(decimal.Context().traps)}
)
_OPERATORS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = {
    "+=": (operator.iadd, operator.add),
    "-=": (operator.isub, operator.sub),
    "*=": (operator.imul, operator.mul),
    "/=": (operator.itruediv, operator.truediv),
    "//=": (operator.ifloordiv, operator.floordiv),
    "%=": (operator.imod, operator.mod),
    "**=": (operator.ipow, operator.pow),
    "<<=": (operator.ilshift, operator.lshift),
    ">>=": (operator.irshift, operator.rshift),
    "&=": (operator.iand, operator.and_),
    "|=": (operator.ior, operator.or_),
    "^=": (operator.ixor, operator.xor),
    "@=": (operator.imatmul, operator.matmul),
}


class Ownership:
    """Which values one program namespace may change: the ``_write_`` and ``_inplacevar_`` hooks.

    A program owns the builtin containers it can create (exact list, dict, set, Counter,
    defaultdict, OrderedDict, deque) and the classes its ``class`` statements made, with their
    instances; ``make_class`` is the ``__metaclass__`` hook that records them. Ownership is by
    type, so a list the host handed over is changeable too: the host hands over tuples and
    read-only mappings.
    """

    __slots__ = ("_classes",)

    def __init__(self) -> None:
        self._classes: weakref.WeakSet[type] = weakref.WeakSet()

    def owns(self, obj: object) -> bool:
        kind = type(obj)
        if kind in _OWNED_TYPES or kind in self._classes:
            return True
        return isinstance(obj, type) and obj in self._classes

    def write(self, obj: object) -> object:
        """The ``_write_`` hook: obj itself if the program owns it, else a refusing stand-in."""
        return obj if self.owns(obj) else _ReadOnly(_describe(obj))

    def inplacevar(self, op: str, target: object, value: object) -> object:
        """The ``_inplacevar_`` hook: ``target op= value``.

        In place only on values the program owns, where it equals a method call the program
        could make anyway (``xs += ys`` is ``xs.extend(ys)``); on anything else the plain
        operator, so ``data += ("x",)`` rebinds the name and leaves the host's tuple alone.
        """
        in_place, plain = _OPERATORS[op]
        return (in_place if self.owns(target) else plain)(target, value)

    def make_class(
        self, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> type:
        """The ``__metaclass__`` hook: build a program's class and record it as owned."""
        cls = build_class(name, bases, namespace, **kwargs)
        if issubclass(cls, BaseException) and not issubclass(cls, Exception):
            raise TypeError(
                f"class {name!r} cannot derive from a BaseException that is not an Exception "
                "in the sandbox; derive from Exception"
            )
        self._classes.add(cls)
        record_program_class(cls)
        return cls

    def setattr(self, obj: object, name: str, value: object) -> None:
        """The ``setattr`` builtin: the same rules as ``obj.name = value``."""
        setattr(self.write(obj), self._writable_name(obj, name), value)

    def delattr(self, obj: object, name: str) -> None:
        """The ``delattr`` builtin: the same rules as ``del obj.name``."""
        delattr(self.write(obj), self._writable_name(obj, name))

    def _writable_name(self, obj: object, name: object) -> str:
        # As the compile policy rules for `obj._x = v`: a private name only on the program's
        # own objects, never a dunder.
        if type(name) is str and name.startswith("_") and not is_dunder(name) and self.owns(obj):
            return name
        return check_attribute_name(name)
