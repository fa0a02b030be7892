"""Which classes programs made: the registry the module wrappers consult.

``copy``, ``dataclasses`` and ``collections.namedtuple`` act on a program's own classes only: a
class made by a program's ``class`` statement (the write guard's ``make_class`` records it) or by
``namedtuple``. They never run on the host's classes, whose instances the program may hold
(``data``, ``tool``, ``budget``, ``Failure``) but must not take apart or rebuild.

A child runs one session, so one registry per process is one per session; weak references keep
it from holding a class alive.

``build_class`` is how a program's class statement makes the class: ``type(name, bases, ns)``,
or, when a base comes with a metaclass of its own (``enum.Enum``, ``typing.Protocol``,
``typing.TypedDict``), that metaclass with the namespace its ``__prepare__`` expects, as a class
statement without the sandbox's hook would. The metaclass itself is never handed to the program.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["build_class", "is_program_class", "record_program_class", "register_class_maker"]

ClassMaker = Callable[..., type]

_classes: weakref.WeakSet[type] = weakref.WeakSet()
#: Bases that make the class themselves (``typing.NamedTuple``), and how.
_makers: list[tuple[type, ClassMaker]] = []


def record_program_class(cls: type) -> None:
    """Note that a program made ``cls``."""
    _classes.add(cls)


def is_program_class(cls: object) -> bool:
    """Whether ``cls`` is a class a program made."""
    return isinstance(cls, type) and cls in _classes


def register_class_maker(base: type, maker: ClassMaker) -> None:
    """Have ``maker(name, bases, namespace, **kwargs)`` make every class that names ``base``."""
    _makers.append((base, maker))


def build_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
    """Make the class a ``class`` statement with these bases and body defines."""
    for known, maker in _makers:
        if any(base is known for base in bases):
            return maker(name, bases, namespace, **kwargs)
    meta: type = type
    for base in bases:
        kind = type(base)
        if issubclass(kind, meta):
            meta = kind
        elif not issubclass(meta, kind):
            raise TypeError(
                f"class {name!r}: metaclass conflict: its bases have unrelated metaclasses"
            )
    if meta is type:
        return type(name, bases, namespace, **kwargs)
    # The body ran into a plain dict; replay it, in order, into the namespace the metaclass
    # builds from (enum's records each member as it is assigned).
    prepared = meta.__prepare__(name, bases, **kwargs)
    for key, value in namespace.items():
        prepared[key] = value
    cls: type = meta(name, bases, prepared, **kwargs)
    return cls
