"""The attribute guard: what a program may read off an object.

``_policy`` rewrites every attribute read into ``_getattr_``, which is :func:`guarded_getattr`;
the ``getattr``, ``hasattr`` and ``vars`` builtins are this guard too. Each function is pure and
holds no reference to the program's globals, so rebinding a global name (``data = 1``) can never
change how it behaves.

The rules:

* No attribute starting with ``_``, except on the program's own classes, their instances and
  ``super()`` of them: private names their own classes define, and the special methods of
  ``_names.SPECIAL_METHODS``; ``__class__`` of anything (what ``type`` gives), ``__name__`` of
  classes and functions and ``__members__`` of enums (:func:`check_private`).
* A method read off a class the program did not make takes only that class's objects as
  ``self``; a host property's functions are not handed out.
* No frame, code or traceback attribute; no ``mro``; no ``AttributeError.obj``; no value that is
  a module, a frame/code/traceback object, a capsule, a metaclass, ``string.Formatter``, or a
  raw builtin the sandbox does not offer (``getattr``, ``open``, ``print`` ...).
* ``str.format``/``format_map`` work but refuse attribute or index lookups inside fields, nested
  format specs included.
* Attribute names must be exact ``str``: a ``str`` subclass can look like any name in a dict
  lookup while its own methods (``startswith``) say otherwise.

Writes are the write guard's (``_ownership``), which names the same way through
:func:`check_attribute_name`.

It runs just past 400 lines on purpose: every rule of an attribute read is in one file.
"""

from __future__ import annotations

import abc
import builtins
import datetime
import enum
import functools
import string
import types
from collections.abc import Callable, Mapping
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from ._class_of import ClassOf, TypeOf, class_of, real_class
from ._mod_classes import is_program_class
from ._modules import ContainerType
from ._names import SPECIAL_METHODS, is_dunder

__all__ = [
    "HIDDEN_ATTRIBUTES",
    "check_attribute_name",
    "check_format_string",
    "check_private",
    "guarded_getattr",
    "guarded_hasattr",
    "guarded_vars",
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
