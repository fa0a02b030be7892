"""What ``type(x)``, ``x.__class__`` and ``super`` give a program: a class, or a stand-in for one.

A class is a way in: calling it runs its constructor, deriving from it inherits its methods, and
its metaclass builds classes past the compile policy's checks. So a program gets a class as it is
only when it could name it anyway (a builtin, a served module's class, a host name such as
``Failure``, its own class, an enum: :func:`offer` records the ones from outside). Any other
class comes back as a :class:`ClassOf`, which answers ``isinstance``, ``except`` and
``__name__`` and builds nothing. ``type`` is :class:`TypeOf`: one argument, never a metaclass;
``super`` is :class:`Super`, which refuses those stand-ins in a program's words.

The attribute guard (``_attributes``) gives ``x.__class__`` from here; the write guard
(``_ownership``) and the ``except`` guard (``_handlers``) look behind the stand-ins. Their base,
``ClassStandIn``, lives in ``_stand_ins``, so that ``copy`` can know them without this module.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterable
from typing import Any

from ._mod_classes import is_program_class
from ._modules import ContainerType
from ._stand_ins import ClassStandIn, named_as_classes

__all__ = ["TYPE", "ClassOf", "Super", "TypeOf", "class_of", "offer", "real_class"]


#: The classes a program can name (builtins, module members, host names), which ``type(x)``
#: hands out as they are; see :func:`offer`.
_OFFERED: set[type] = set()
#: The container stand-ins (``list``, ``dict``...) by the class they stand for.
_CONTAINER_OF: dict[type, ContainerType] = {}
#: One stand-in per class a program cannot name, so ``type(a) is type(b)`` holds.
_CLASS_OF: dict[type, ClassOf] = {}


def offer(values: Iterable[object]) -> None:
    """Record the classes among values (and behind container stand-ins) as ones a program can
    name: ``type(x)`` of their instances gives the class itself."""
    for value in values:
        if isinstance(value, ContainerType):
            _CONTAINER_OF[value._type] = value
            _OFFERED.add(value._type)
        elif isinstance(value, type) and not issubclass(value, type):
            _OFFERED.add(value)


def _nameable(kind: type) -> bool:
    # An enum class made by Enum("Color", "RED GREEN") is the program's, though no class
    # statement made it; calling it looks a member up, and building another one needs Enum.
    return kind in _OFFERED or is_program_class(kind) or issubclass(kind, enum.Enum)


class ClassOf(ClassStandIn):
    """What ``type(x)`` and ``x.__class__`` give for an object whose class a program cannot name
    (``tool``, ``budget``, a module proxy, a function, a generator, ``type(None)``).

    It answers ``isinstance``, ``issubclass``, ``except``, ``==``/``is`` and ``__name__``, but
    it cannot build an object, be derived from or hand out the class's attributes: the class's
    constructor and methods would run the sandbox's own code on the program's values (a
    ``Tools`` around a program's object as its link calls that object's methods with the
    protocol's frames).
    """

    __slots__ = ("_type",)
    _type: type

    def __init__(self, kind: type) -> None:
        object.__setattr__(self, "_type", kind)

    def _refusal(self, what: str) -> str:
        return (
            f"{what} in the sandbox: the class of an object the sandbox made answers "
            "isinstance(), except and __name__ only"
        )

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise TypeError(self._refusal(f"objects of class {self._type.__name__!r} cannot be made"))

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._type)

    def __subclasscheck__(self, cls: object) -> bool:
        return issubclass(real_class(cls), self._type)  # type: ignore[arg-type]

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type, ...]:
        raise TypeError(self._refusal(f"a class cannot derive from {self._type.__name__!r}"))

    def __getattr__(self, attr: str) -> object:
        raise AttributeError(
            self._refusal(f"{attr!r} of class {self._type.__name__!r} is not available")
        )

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError(self._refusal(f"class {self._type.__name__!r} is read-only"))

    def __repr__(self) -> str:
        return repr(self._type)


def real_class(obj: object) -> object:
    """The class behind a container stand-in or a ClassOf; anything else as it is."""
    if isinstance(obj, (ContainerType, ClassOf)):
        return obj._type
    return obj


def class_of(obj: object) -> object:
    """``type(obj)`` as a program gets it (the rules are :class:`TypeOf`'s)."""
    kind = builtins.type(obj)
    if kind is builtins.type or kind in (TypeOf, ContainerType, ClassOf):
        return TYPE
    if issubclass(kind, builtins.type):
        raise TypeError(
            f"type() of this class is its metaclass {kind.__name__!r}, which the sandbox "
            "does not hand out; use isinstance(x, type) to ask whether x is a class"
        )
    container = _CONTAINER_OF.get(kind)
    if container is not None:
        return container
    if kind is builtins.super:  # super(C, obj) makes a plain one, super() a Super
        return Super
    if _nameable(kind):
        return kind
    stand_in = _CLASS_OF.get(kind)
    if stand_in is None:
        stand_in = _CLASS_OF.setdefault(kind, ClassOf(kind))
    return stand_in


class TypeOf(ClassStandIn):
    """The ``type`` builtin of programs: ``type(x)`` with one argument, never a metaclass.

    ``type(x) is int``, ``type(x).__name__`` and ``isinstance(x, type)`` work as in Python.
    ``type(name, bases, namespace)`` is refused: it would define special methods the compile
    policy checks in class statements. The type of a class (or of a stand-in for one) is this
    stand-in itself, never the real metaclass, so ``type(type(x))`` hands out nothing new; a
    class whose metaclass is another one (an enum) is refused. The container types come back
    as the stand-ins programs know by name, so ``type([]) is list`` holds; a class the program
    can name (a builtin, a module's class, a host name, its own) comes back as it is; any other
    class as a :class:`ClassOf`, which cannot build objects.
    """

    __slots__ = ()
    #: What ``type.__name__`` reads (check_private allows ``__name__`` of this stand-in).
    __name__ = "type"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("type is read-only in the sandbox")

    def __call__(self, *args: object, **kwargs: object) -> object:
        if len(args) != 1 or kwargs:
            raise TypeError(
                "type() takes exactly one argument in the sandbox, the object whose class you "
                "want; to make a class, write a class statement"
            )
        return class_of(args[0])

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, (builtins.type, ContainerType, TypeOf, ClassOf))

    def __subclasscheck__(self, cls: object) -> bool:
        return cls is self

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type, ...]:
        raise TypeError(
            "a class cannot derive from type in the sandbox: metaclasses are not available"
        )

    def __repr__(self) -> str:
        return "<class 'type'>"


#: The ``type`` of every program.
TYPE = TypeOf()


class Super(super):
    """The ``super`` of programs: ``super()`` and ``super(C, obj)`` as in Python.

    ``super()`` with no arguments makes one of these: ``__new__`` is Python code, but the set-up
    that finds the method's class and ``self`` runs after it returns, in C, in the program's
    frame (an ``__init__`` here would hide that frame). With arguments, the stand-ins are
    looked at first: the stand-ins no class may be read through (``type``, the class of an
    object the sandbox made) are refused in a program's words, where ``super`` would name the
    stand-in's own class, and ``super(list, x)`` makes a plain ``super`` of the class ``list``
    stands for (``type()`` of it is this class, ``isinstance(it, super)`` is false).
    """

    __slots__ = ()

    def __new__(cls, *args: object) -> Any:
        if not args:
            return builtins.super.__new__(cls)
        first = args[0]
        if isinstance(first, TypeOf):
            raise TypeError(
                "super() argument 1 must be a type, not 'type': metaclasses are not available in the sandbox"
            )
        if isinstance(first, ClassOf):
            raise TypeError(
                f"super() argument 1 must be a type, not {first._type.__name__!r}, the class of an "
                "object the sandbox made, whose methods the sandbox does not hand out"
            )
        if any(isinstance(arg, ContainerType) for arg in args):
            return builtins.super(*(real_class(a) if isinstance(a, ContainerType) else a for a in args))
        return builtins.super.__new__(cls)


Super.__name__ = Super.__qualname__ = "super"
Super.__module__ = "builtins"
named_as_classes(ClassOf, TypeOf)
