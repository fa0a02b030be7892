"""``copy`` for programs: ``copy`` and ``deepcopy`` of values a program owns, nothing else.

The real module copies through ``__reduce_ex__``, ``__setstate__``, ``copyreg.dispatch_table`` and
its own ``_deepcopy_dispatch``: paths that rebuild any object, host objects included, and write
its state past the write guard. These wrappers know a short list of shapes instead:

* values that need no copy (numbers, text, bytes, ``None``, dates, decimals, fractions, compiled
  patterns, enum members, functions, classes (``list``, ``type`` and ``type(tool)`` too), pmap
  ``Failure`` values) are returned as they are, as ``copy.deepcopy`` returns them;
* the built-in containers a program can make (list, dict, set, frozenset, tuple, bytearray,
  Counter, OrderedDict, defaultdict, deque) are rebuilt, item by item for ``deepcopy``;
* instances of the program's own classes (``class`` statements, ``namedtuple``, dataclasses) are
  rebuilt as ``copy`` does it (``cls.__new__`` with the arguments of the built-in base's
  ``__getnewargs__``, then the instance's ``__dict__``, then list items through ``append`` and
  dict items through item assignment, which run the class's own methods), unless a class
  of the program defines a reduction or copy hook, which is refused;
* anything else (``data`` as a mapping, ``tool``, ``budget``, module proxies, iterators, files
  in memory) raises ``TypeError`` naming the copy to make instead.

Cycles and shared references are kept, as ``deepcopy``'s memo keeps them.
"""

from __future__ import annotations

import collections
import copy as stdlib_copy
import datetime
import decimal
import enum
import fractions
import re
import types
from typing import Any

from ._failure import Failure
from ._mod_classes import is_program_class
from ._stand_ins import ClassStandIn

__all__ = ["MEMBERS", "copy", "deepcopy"]

_AS_IS = frozenset({
    type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis),
    type(NotImplemented), decimal.Decimal, fractions.Fraction, datetime.date, datetime.datetime,
    datetime.time, datetime.timedelta, datetime.timezone, re.Pattern, re.Match,
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, Failure,
})
_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)
_SEQUENCES = (list, set, frozenset, tuple, bytearray)
# A program's class that defines one of these asks to be copied its own way; copy.copy would
# call it, and these wrappers refuse instead.
_HOOKS = ("__reduce__", "__reduce_ex__", "__copy__", "__deepcopy__", "__getstate__",
          "__setstate__", "__getnewargs__", "__getnewargs_ex__")
# The built-in bases a program's class may extend and still be copied.
_BASES = (list, dict, tuple, int, float, complex, str, bytes, object)


def _unknown(x: object, how: str) -> TypeError:
    hint = " Copy its items instead, e.g. dict(x) or list(x)." if hasattr(type(x), "__iter__") else ""
    return TypeError(
        f"copy.{how}() copies numbers, text, containers and the program's own objects in the "
        f"sandbox, not {type(x).__name__!r} objects.{hint}"
    )


def _program_base(cls: type, how: str) -> type:
    """The built-in base whose layout a program's class shares; refuse copy hooks on the way."""
    for klass in cls.__mro__:
        if is_program_class(klass):
            for hook in _HOOKS:
                # namedtuple's own __getnewargs__ is the one hook copy may use.
                if hook in klass.__dict__ and not (
                    hook == "__getnewargs__" and "_fields" in klass.__dict__
                ):
                    raise TypeError(
                        f"copy.{how}() of a {cls.__name__!r}: the class defines {hook}, which the "
                        "sandbox does not call. Build the copy yourself."
                    )
        elif klass in _BASES:
            return klass
        else:
            raise TypeError(
                f"copy.{how}() of a {cls.__name__!r} is not available in the sandbox: it extends "
                f"{klass.__name__!r}. Build the copy yourself."
            )
    return object  # pragma: no cover - every MRO ends in object


def _rebuild(x: Any, how: str, copy_item: Any, memo: dict[int, Any] | None) -> Any:
    cls = type(x)
    base = _program_base(cls, how)
    newargs = getattr(cls, "__getnewargs__", None)
    args = tuple(copy_item(a) for a in newargs(x)) if newargs is not None else ()
    y = cls.__new__(cls, *args)
    if memo is not None:
        memo[id(x)] = y
    state = getattr(x, "__dict__", None)
    if state:
        # As copy does it: past the class's __setattr__, so frozen records copy too.
        y.__dict__.update({key: copy_item(value) for key, value in state.items()})
    # The items as copy adds them, through the class's own append and item assignment.
    if base is list:
        for item in list(list.__iter__(x)):
            y.append(copy_item(item))
    elif base is dict:
        for key, value in list(dict.items(x)):
            y[copy_item(key)] = copy_item(value)
    return y


def _container(x: Any, kind: type, copy_item: Any) -> Any:
    if kind is collections.defaultdict:
        y: Any = collections.defaultdict(x.default_factory)
        for key, value in x.items():
            y[copy_item(key)] = copy_item(value)
        return y
    if kind is collections.deque:
        return collections.deque([copy_item(item) for item in x], x.maxlen)
    if kind in _MAPPINGS:
        return kind({copy_item(key): copy_item(value) for key, value in x.items()})
    return kind([copy_item(item) for item in x])


def _empty(x: Any, kind: type) -> Any:
    if kind is collections.defaultdict:
        return collections.defaultdict(x.default_factory)
    if kind is collections.deque:
        return collections.deque(maxlen=x.maxlen)
    return kind()


def _needs_no_copy(x: object) -> bool:
    # A class is copied by reference, as copy does it; so is what a program has for one.
    return type(x) in _AS_IS or isinstance(x, (type, ClassStandIn, enum.Enum))


def copy(x: Any) -> Any:
    """``copy.copy``: a shallow copy of a container or of one of the program's own objects."""
    kind = type(x)
    if _needs_no_copy(x) or kind in (tuple, frozenset):
        return x
    if kind in _SEQUENCES or kind in _MAPPINGS or kind in (collections.defaultdict, collections.deque):
        return _container(x, kind, lambda item: item)
    if is_program_class(kind):
        return _rebuild(x, "copy", lambda item: item, None)
    raise _unknown(x, "copy")


def deepcopy(x: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy``: a copy of a container or program object and of everything in it.

    A ``memo`` is accepted, as a dict, and left as it is: the memo of ``copy`` is keyed by
    ``id()``, the address of each object, which the sandbox does not hand out.
    """
    if memo is not None and type(memo) is not dict:
        raise TypeError("copy.deepcopy() memo must be a dict or None")
    return _deep(x, {})


def _deep(x: Any, memo: dict[int, Any]) -> Any:
    if _needs_no_copy(x):
        return x
    key = id(x)
    if key in memo:
        return memo[key]
    kind = type(x)

    def item(value: Any) -> Any:
        return _deep(value, memo)

    if kind is tuple or kind is frozenset:
        y = _container(x, kind, item)
        # As deepcopy does: a tuple of values that needed no copy is itself.
        if all(a is b for a, b in zip(x, y, strict=True)):
            y = x
    elif kind in _SEQUENCES or kind in _MAPPINGS or kind in (collections.defaultdict, collections.deque):
        # Registered first, so a container holding itself copies to one holding the copy.
        y = _empty(x, kind)
        memo[key] = y
        copied = _container(x, kind, item)
        if kind in (list, bytearray, collections.deque):
            y.extend(copied)
        else:
            y.update(copied)
    elif is_program_class(kind):
        y = _rebuild(x, "deepcopy", item, memo)
    else:
        raise _unknown(x, "deepcopy")
    memo[key] = y
    return y


MEMBERS: dict[str, object] = {"copy": copy, "deepcopy": deepcopy, "Error": stdlib_copy.Error}
