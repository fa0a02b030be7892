"""The guards behind RestrictedPython's hooks: what a program may read, write and catch.

``_policy`` rewrites every attribute read into ``_getattr_``, every attribute or item write
into a write on ``_write_(obj)``, every augmented assignment into ``_inplacevar_`` and every
``except`` clause into ``_catchable_(...)``. This module holds what those hooks call.
Each guard is a small pure function or object with no reference to the program's globals, so
rebinding a global name (``data = 1``) can never change how a guard behaves.

The rules, in one place:

* Reads: no attribute starting with ``_``, except on the program's own classes, their
  instances and ``super()`` of them: private names their own classes define, and the
  special methods of ``_names.SPECIAL_METHODS``; ``__class__`` of anything (what ``type``
  gives), ``__name__`` of classes and functions and ``__members__`` of enums
  (:func:`check_private`). A method read off a class the program did not make takes only that
  class's objects as ``self``; a host property's functions are not handed out. No frame, code or traceback
  attribute; no ``mro``; no ``AttributeError.obj``; no value that is a module, a
  frame/code/traceback object, a capsule, a metaclass, ``string.Formatter``, or a raw builtin
  the sandbox does not offer (``getattr``, ``open``, ``print`` ...). ``str.format``/
  ``format_map`` work but refuse attribute or index lookups inside fields, nested format
  specs included.
* Writes: only to lists, dicts, sets, bytearrays, Counters, defaultdicts, OrderedDicts,
  deques and the program's own classes and their instances. Everything else (``data``,
  ``budget``, module proxies, functions) is read-only.
* ``type``: one argument, never a metaclass, and a stand-in that builds nothing for a class the
  program cannot name (:class:`TypeOf`, :class:`ClassOf`).
* ``except``: only ``Exception`` and its subclasses; while a ``BaseException`` that is not an
  ``Exception`` (``done()``, ``fail()``, a cancellation) is on its way out, no clause matches,
  not even one for an exception raised over it (by a ``finally`` block or an ``__exit__``).
* ``with``: the context manager's ``__exit__`` may swallow an ``Exception``, never ``done()``,
  ``fail()`` or a cancellation; a program's own ``__exit__`` never sees those, nor a traceback.
* Names: attribute names must be exact ``str``; a ``str`` subclass can look like any name in a
  dict lookup while its own methods (``startswith``) say otherwise.

It runs past 400 lines on purpose: every rule a program meets at run time is in one file.
"""

from __future__ import annotations

import abc
import builtins
import collections
import datetime
import decimal
import enum
import functools
import operator
import string
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from ._mod_classes import build_class, is_program_class, record_program_class
from ._modules import ContainerType, ModuleProxy
from ._names import SPECIAL_METHODS, is_dunder
from ._stand_ins import ClassStandIn, named_as_classes

__all__ = [
    "HIDDEN_ATTRIBUTES",
    "TYPE",
    "ClassOf",
    "Ownership",
    "Super",
    "TypeOf",
    "catchable",
    "check_attribute_name",
    "check_format_string",
    "check_private",
    "class_of",
    "guarded_apply",
    "guarded_getattr",
    "guarded_hasattr",
    "guarded_vars",
    "guarded_with",
    "offer",
    "real_class",
]

#: Attribute names refused even though they do not start with "_": frame and code
#: attributes, and ``mro``, which hands out ``object`` and the exception base classes.
HIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"mro"}

_RAISE: Any = object()

# Raw builtins that are harmless to meet again as an attribute value; every other function
# of the builtins module (getattr, open, print, eval, ...) is refused wherever it turns up.
# (Sets of functions, not of id()s: id() raises an audit event on every call.)
_HARMLESS_BUILTINS = frozenset(
    getattr(builtins, name)
    for name in (
        "abs", "ascii", "bin", "callable", "chr", "divmod", "format", "hex", "isinstance",
        "issubclass", "iter", "len", "next", "oct", "ord", "pow", "repr", "round",
    )
)
# Python functions that write attributes behind _write_'s back.
_FORBIDDEN_FUNCTIONS = frozenset(
    {functools.update_wrapper, functools.wraps, functools.total_ordering}
)
_HIDDEN_TYPES = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    type(datetime.datetime_CAPI),  # capsules
    string.Formatter,
)
_FORMATTER = string.Formatter()


def _private(name: str) -> AttributeError:
    return AttributeError(
        f"{name!r} is not allowed: names starting with '_' are private in the sandbox"
    )


def check_attribute_name(name: object) -> str:
    """Return name if a program may read or write an attribute of that name on any object;
    raise if not. Names starting with ``_`` are refused here: see :func:`check_private`."""
    if type(name) is not str:
        raise TypeError(f"attribute name must be a string, not {type(name).__name__!r}")
    if name.startswith("_"):
        raise _private(name)
    if name in HIDDEN_ATTRIBUTES:
        raise AttributeError(
            f"{name!r} is not allowed: frame, code and class-hierarchy attributes are hidden in "
            "the sandbox"
        )
    return name


def _check_value(name: str, value: object) -> object:
    kind = type(value)
    if isinstance(value, _HIDDEN_TYPES) or (
        kind is types.FunctionType and value in _FORBIDDEN_FUNCTIONS
    ):
        what = "a module" if isinstance(value, types.ModuleType) else "an internal object"
        raise AttributeError(
            f"{name!r} is not allowed: it refers to {what}, which the sandbox does not hand out. "
            "Import one of the allowed modules instead."
        )
    if isinstance(value, type) and issubclass(value, (type, string.Formatter)):
        raise AttributeError(
            f"{name!r} is not allowed: metaclasses and formatters are hidden in the sandbox"
        )
    if (
        type(value) is types.BuiltinFunctionType
        and value.__self__ is builtins
        and value not in _HARMLESS_BUILTINS
    ):
        raise AttributeError(
            f"{name!r} is not allowed: it refers to the raw builtin {value.__name__}()"
        )
    if (
        isinstance(value, types.MethodType)
        and value.__func__ is abc.ABCMeta.register
        and not is_program_class(value.__self__)
    ):
        # typing.Mapping.register(str) would make every str a Mapping for the child's own code.
        raise AttributeError(
            f"{name!r} is not allowed: registering with an abstract class the program did not "
            "make would change isinstance() for the whole sandbox"
        )
    return value


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


def _class_attribute(cls: type, name: str) -> object:
    # Read through type's own slots: no metaclass of the program's can answer instead.
    return type.__getattribute__(cls, name)


def _program_class(obj: object) -> type | None:
    """The program's class behind obj (a program class, its instance, or a super() of either)."""
    if isinstance(obj, super):
        walked = obj.__self_class__  # type: ignore[attr-defined]  # None for an unbound super
        return walked if is_program_class(walked) else None
    if isinstance(obj, type):
        return obj if is_program_class(obj) else None
    kind = type(obj)
    return kind if is_program_class(kind) else None


def _defined_outside_the_program(cls: type, name: str, *, as_class: bool) -> bool:
    """Whether a class the program did not make defines name where a lookup on cls looks."""
    chain: tuple[type, ...] = _class_attribute(cls, "__mro__")  # type: ignore[assignment]
    if as_class:  # a class's attributes also come from its metaclass
        chain += _class_attribute(type(cls), "__mro__")  # type: ignore[operator]
    return any(
        name in _class_attribute(klass, "__dict__")  # type: ignore[operator]
        and not is_program_class(klass)
        for klass in chain
    )


def _plain_lineage(cls: type) -> bool:
    """Whether every class cls derives from is the program's own or a builtin type."""
    chain: tuple[type, ...] = _class_attribute(cls, "__mro__")  # type: ignore[assignment]
    return all(
        is_program_class(klass) or _class_attribute(klass, "__module__") == "builtins"
        for klass in chain
    )


def check_private(obj: object, name: str) -> None:
    """Raise unless a program may read ``obj.<name>`` for a name starting with ``_``.

    * ``_count`` (and the mangled ``_Class__count``) only on the program's own classes, their
      instances and ``super()`` of them, and only where no class the program did not make
      defines the name: a program's subclass of a host class reaches none of the host's
      internals.
    * A special method of ``SPECIAL_METHODS`` on the same objects: ``super().__init__(...)``,
      ``Base.__repr__(self)``.
    * ``__class__`` of any object: what ``type(obj)`` gives (never a metaclass, and for a
      class the program cannot name a stand-in that cannot build objects); ``__name__`` of
      classes and functions (an exact str).
    * ``__members__`` of an enum class: a read-only mapping of its members.
    * ``__dict__`` of the program's own instances whose classes are all the program's or
      builtins (``json.dumps(self.__dict__)``): what a host class's ``__init__`` stored on a
      subclass's instance stays out of reach.

    Every other dunder stays refused, and so does every private name of any object the program
    did not make: ``().__class__.__base__``, ``tool._link``, ``json.__name__``.
    """
    if name == "__class__" or (name == "__name__" and isinstance(
        obj, (type, ContainerType, TypeOf, ClassOf, types.FunctionType,
              types.BuiltinFunctionType, types.MethodType)
    )):
        return
    if name == "__members__" and isinstance(obj, enum.EnumType):
        return  # a read-only mapping of the enum's members by name
    cls = _program_class(obj)
    if cls is not None:
        if name == "__dict__":
            if not isinstance(obj, (type, super)) and _plain_lineage(cls):
                return
        elif is_dunder(name):
            if name in SPECIAL_METHODS:
                return
        elif not _defined_outside_the_program(cls, name, as_class=isinstance(obj, type)):
            return
    raise AttributeError(
        f"{name!r} is not allowed: names starting with '_' are private in the sandbox; a program "
        "may use them only on its own classes and their instances"
        if cls is None or not is_dunder(name) else
        f"{name!r} is not allowed: names starting with '_' are private in the sandbox, and "
        f"{name!r} is not a special method a program's class may use"
    )


def _special_value(obj: object, name: str) -> object:
    """The value of a private name check_private allowed."""
    if name == "__name__":
        value = getattr(real_class(obj), name)
        return str.__str__(value) if isinstance(value, str) else ""
    if name == "__class__":
        try:
            return class_of(obj)  # exactly what type(obj) gives
        except TypeError as exc:  # a metaclass
            raise AttributeError(str(exc)) from None
    return getattr(obj, name)


def _owner_of_method(obj: object, name: str, value: object) -> type | None:
    """The class whose method value is, when value was read unbound off a class (``C.f``,
    ``super(C, C).f``); None when value is no such function."""
    if type(value) is not types.FunctionType:
        return None
    if isinstance(obj, super):
        cls = obj.__self_class__  # type: ignore[attr-defined]  # None for an unbound super
    elif isinstance(obj, type):
        cls = obj
    else:
        return None
    if cls is None:
        return None
    for klass in _class_attribute(cls, "__mro__"):  # type: ignore[attr-defined]
        if _class_attribute(klass, "__dict__").get(name) is value:  # type: ignore[attr-defined]
            return klass  # type: ignore[no-any-return]
    return None


def _self_checked(function: Callable[..., Any], owner: type) -> Callable[..., Any]:
    """function, which only takes an instance of owner as its first argument."""
    where = f"{owner.__name__}.{function.__name__}()"

    def method(*args: Any, **kwargs: Any) -> Any:
        # type's own check: no __subclasscheck__ of an abstract class answers instead.
        if not args or not type.__subclasscheck__(owner, type(args[0])):
            given = f"a {type(args[0]).__name__!r} object" if args else "nothing"
            raise TypeError(
                f"{where} needs a {owner.__name__!r} object as its first argument in the "
                f"sandbox, not {given}"
            )
        return function(*args, **kwargs)

    method.__name__ = function.__name__
    method.__qualname__ = function.__qualname__
    method.__doc__ = function.__doc__
    return method


def _unbound(obj: object, name: str, value: object) -> object:
    """The value a program gets for ``obj.<name>``, once the guards allowed it.

    A method read off a class the program did not make (``json.JSONEncoder.encode``, an
    inherited ``S.__init__`` of ``class S(json.JSONEncoder)``) is a plain function that would
    take any object as ``self`` and write its attributes past ``_write_``: called with
    ``json.JSONEncoder`` itself, its ``__init__`` rewrote the class's separators and
    ``default`` for every encoder in the child. C methods refuse a foreign ``self`` on their
    own; these get the same check. A property's functions are refused for the same reason.
    """
    owner = _owner_of_method(obj, name, value)
    if owner is not None and not is_program_class(owner):
        return _self_checked(value, owner)  # type: ignore[arg-type]
    if (
        name in ("fget", "fset", "fdel")
        and isinstance(obj, property)
        and type(value) is types.FunctionType
        and value.__module__ != "__main__"  # a program's functions are all its module's
    ):
        raise AttributeError(
            f"{name!r} of a property the program did not make is not available in the sandbox: "
            "it would run the class's code on any object; read the attribute of an instance"
        )
    return value


def guarded_getattr(obj: object, name: str, default: object = _RAISE) -> object:
    """``getattr`` for programs: the ``_getattr_`` hook and the ``getattr`` builtin.

    A refused name raises AttributeError even when a default is given, so the program learns
    why. A missing attribute raises a fresh AttributeError with only the message: the original
    one carries ``.obj``, which could be an object the program never held (CVE-2024-47532).
    """
    if type(name) is str and name.startswith("_"):
        check_private(obj, name)  # a refusal raises even with a default, as below
        try:
            value = _special_value(obj, name)
        except AttributeError as exc:
            if default is not _RAISE:
                return default
            message = str(exc)
        else:
            return _check_value(name, _unbound(obj, name, value))
        raise AttributeError(message)
    check_attribute_name(name)  # the one name check: exact str, no hidden name
    if name in ("format", "format_map") and (
        isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
    ):
        return _checked_format(obj, name)
    if name == "obj" and isinstance(obj, AttributeError):
        raise AttributeError("'obj' of an AttributeError is hidden in the sandbox")
    try:
        value = getattr(obj, name)
    except AttributeError as exc:
        if default is not _RAISE:
            return default
        message = str(exc)
    else:
        return _check_value(name, _unbound(obj, name, value))
    raise AttributeError(message)


def guarded_vars(*args: object) -> object:
    """The ``vars`` builtin: ``vars(obj)`` is ``obj.__dict__``, with its rule; no ``vars()``."""
    if len(args) != 1:
        raise TypeError(
            "vars() takes exactly one argument in the sandbox, one of the program's own objects; "
            "the program's variables are not available as a dict"
        )
    return guarded_getattr(args[0], "__dict__")


def guarded_hasattr(obj: object, name: str) -> bool:
    """``hasattr`` on top of guarded_getattr; a refused name raises instead of answering."""
    if type(name) is str and name.startswith("_"):
        check_private(obj, name)
    else:
        check_attribute_name(name)
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def check_format_string(template: str) -> None:
    """Refuse a format string whose fields look anything up: ``{0.attr}``, ``{x[0]}``.

    ``str.format`` follows such lookups in C, past every guard, so fields may only be empty,
    a position or a name; the check recurses into format specs (``{0:{1.attr}}``).
    """
    for _literal, field, spec, _conversion in _FORMATTER.parse(template):
        if field is None:
            continue
        if "." in field or "[" in field:
            raise ValueError(
                f"format field {{{field}}} is not allowed: attribute and index lookups inside "
                "format strings are not available in the sandbox. Pass the value itself, "
                "e.g. '{}'.format(x.name), or use an f-string."
            )
        if spec:
            check_format_string(spec)


def _checked_format(target: str | type, name: str) -> Callable[..., str]:
    """``format``/``format_map`` of a str (bound) or of str or a subclass (unbound), checked."""
    if isinstance(target, str):
        template = target

        def bound_format(*args: Any, **kwargs: Any) -> str:
            check_format_string(template)
            return str.format(template, *args, **kwargs)

        def bound_format_map(mapping: Mapping[str, Any]) -> str:
            check_format_string(template)
            return str.format_map(template, mapping)

        return bound_format if name == "format" else bound_format_map

    def unbound_format(self: str, *args: Any, **kwargs: Any) -> str:
        if isinstance(self, str):
            check_format_string(self)
        return str.format(self, *args, **kwargs)

    def unbound_format_map(self: str, mapping: Mapping[str, Any]) -> str:
        if isinstance(self, str):
            check_format_string(self)
        return str.format_map(self, mapping)

    return unbound_format if name == "format" else unbound_format_map


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


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The ``_apply_`` hook, used for calls with ``*args`` or ``**kwargs``."""
    return func(*args, **kwargs)


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
