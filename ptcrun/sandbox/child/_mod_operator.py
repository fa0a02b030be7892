"""``operator`` for programs: the operators as functions, and getters that obey the guards.

``operator.attrgetter`` and ``methodcaller`` look attributes up in C, past ``_getattr_``:
``attrgetter("__globals__")`` would read what ``f.__globals__`` may not. Here they are
wrappers that look every name up with the attribute guard (an exact ``str``, no ``_``, no
hidden name, no module or other hidden value), when called, as ``getattr`` in a program does.
The names are checked once more when the getter is made, so a typo fails where it is written.

Left out: ``setitem``, ``delitem`` and the in-place operators (``iadd``...), which change their
first argument past the write guard; a program writes ``x[k] = v`` or ``x += y`` instead.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["MEMBERS", "attrgetter", "methodcaller"]


def _attribute_guard() -> Any:
    # Imported when called: the attribute guard imports the module proxies, which import this.
    from . import _attributes

    return _attributes


def _check(name: object) -> str:
    if type(name) is not str:
        raise TypeError(f"attribute name must be a string, not {type(name).__name__!r}")
    for part in name.split("."):
        _attribute_guard().check_attribute_name(part)
    return name


class _AttrGetter:
    __slots__ = ("_paths",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self._paths = tuple(tuple(name.split(".")) for name in names)

    def __call__(self, obj: object) -> Any:
        getattr_ = _attribute_guard().guarded_getattr
        values = []
        for path in self._paths:
            value = obj
            for part in path:
                value = getattr_(value, part)
            values.append(value)
        return values[0] if len(values) == 1 else tuple(values)

    def __repr__(self) -> str:
        return f"operator.attrgetter({', '.join(repr('.'.join(p)) for p in self._paths)})"


class _MethodCaller:
    __slots__ = ("_args", "_kwargs", "_name")

    def __init__(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._name = name
        self._args = args
        self._kwargs = kwargs

    def __call__(self, obj: object) -> Any:
        return _attribute_guard().guarded_getattr(obj, self._name)(*self._args, **self._kwargs)

    def __repr__(self) -> str:
        return f"operator.methodcaller({self._name!r}, ...)"


def attrgetter(attr: str, /, *attrs: str) -> Any:
    """``operator.attrgetter``: a callable reading the named (dotted) attributes of its argument."""
    return _AttrGetter(tuple(_check(name) for name in (attr, *attrs)))


def methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """``operator.methodcaller``: a callable calling the named method of its argument."""
    if type(name) is not str or "." in name:
        raise TypeError("methodcaller() takes a method name: an exact str without dots")
    return _MethodCaller(_check(name), args, dict(kwargs))


_PLAIN = (
    "abs", "add", "and_", "call", "concat", "contains", "countOf", "eq", "floordiv", "ge",
    "getitem", "gt", "index", "indexOf", "inv", "invert", "is_", "is_not", "itemgetter", "le",
    "length_hint", "lshift", "lt", "matmul", "mod", "mul", "ne", "neg", "not_", "or_", "pos",
    "pow", "rshift", "sub", "truediv", "truth", "xor",
)

#: What ``import operator`` serves.
MEMBERS: dict[str, object] = {name: getattr(operator, name) for name in _PLAIN if hasattr(operator, name)}
MEMBERS.update(attrgetter=attrgetter, methodcaller=methodcaller)
