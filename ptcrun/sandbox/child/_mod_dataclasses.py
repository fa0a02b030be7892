"""``dataclasses`` for programs: ``@dataclass`` records, built without generated code.

The real module writes the source of ``__init__``, ``__repr__`` and ``__eq__`` and runs it with
``exec``, which the tripwire refuses to program code, and which must never be let through by a
trusted section (the source carries the program's names and defaults). Here each method is a
closure over the class's list of fields, written once in this file, so nothing is compiled.

What a program gets, as in CPython: ``@dataclass`` and ``@dataclass(...)`` with ``init``,
``repr``, ``eq``, ``order``, ``unsafe_hash``, ``frozen``, ``match_args`` and ``kw_only``;
``field(default=..., default_factory=..., init=, repr=, hash=, compare=, metadata=, kw_only=)``;
``fields``, ``asdict``, ``astuple``, ``replace``, ``is_dataclass``, ``MISSING`` and
``FrozenInstanceError``. Inheritance between dataclasses, ``__post_init__``, ``ClassVar``
annotations (also as strings, under ``from __future__ import annotations``), the check that a
list, dict or set is no default, and methods the class defines itself win over generated ones.

The rules: ``@dataclass`` decorates only a class the program made (never a host class); the
methods it adds are the program's class's own and hand out nothing else; ``asdict`` and
``astuple`` copy leaf values with the sandbox's ``copy.deepcopy``, which refuses host objects
instead of rebuilding them through their reduction. Not offered: ``slots=True`` (it makes a
new class), ``InitVar``, ``KW_ONLY`` and ``make_dataclass``.

It runs past 400 lines on purpose: the decorator and the functions that read its fields share
one private table of fields, which no other module should see.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import typing
import weakref
from collections.abc import Callable
from typing import Any

from ._mod_classes import is_program_class
from ._mod_copy import deepcopy

__all__ = ["MEMBERS"]

MISSING = dataclasses.MISSING
FrozenInstanceError = dataclasses.FrozenInstanceError
# A ClassVar annotation kept as a string (from __future__ import annotations), as the program
# wrote it: "ClassVar[int]", "typing.ClassVar[int]".
_CLASS_VAR_STRING = re.compile(r"(?:typing\.)?ClassVar\b")


class Field:
    """One field of a dataclass, as ``dataclasses.fields`` gives it."""

    __slots__ = (
        "compare", "default", "default_factory", "hash", "init", "kw_only", "metadata", "name",
        "repr", "type",
    )

    def __init__(
        self, default: Any, default_factory: Any, init: bool, repr: bool, hash: bool | None,
        compare: bool, metadata: Any, kw_only: Any,
    ) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = bool(init)
        self.repr = bool(repr)
        self.hash = hash
        self.compare = bool(compare)
        self.metadata = {} if metadata is None else dict(metadata)
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
            f"default_factory={self.default_factory!r},init={self.init!r},repr={self.repr!r},"
            f"hash={self.hash!r},compare={self.compare!r},metadata={self.metadata!r},"
            f"kw_only={self.kw_only!r})"
        )


def field(
    *, default: Any = MISSING, default_factory: Any = MISSING, init: bool = True,
    repr: bool = True, hash: bool | None = None, compare: bool = True, metadata: Any = None,
    kw_only: Any = MISSING,
) -> Any:
    """``dataclasses.field``: the options of one field."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, hash, compare, metadata, kw_only)


#: The fields of each dataclass, in order (kept here, not on the class, where no program
#: could reach or change them).
_FIELDS: weakref.WeakKeyDictionary[type, dict[str, Field]] = weakref.WeakKeyDictionary()
_PARAMS: weakref.WeakKeyDictionary[type, dict[str, bool]] = weakref.WeakKeyDictionary()


def _is_class_var(annotation: Any) -> bool:
    if type(annotation) is str:
        return _CLASS_VAR_STRING.match(annotation) is not None
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def _collect(cls: type, kw_only: bool) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        fields.update(_FIELDS.get(base, {}))
    # The class's own annotations, as written (inspect is not loaded in the child for this).
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    for name, annotation in list(annotations.items()):
        if _is_class_var(annotation):
            continue
        default = cls.__dict__.get(name, MISSING)
        # Exactly a Field: a program's subclass of it is a plain default value.
        spec = default if type(default) is Field else field(default=default)
        spec.name = str.__str__(name)
        spec.type = annotation
        if spec.kw_only is MISSING:
            spec.kw_only = kw_only
        if spec.default is not MISSING and type(spec.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(spec.default)} for field {name} is not allowed: use "
                "default_factory"
            )
        if type(default) is Field:
            if spec.default is MISSING:
                type.__delattr__(cls, name)
            else:
                type.__setattr__(cls, name, spec.default)
        fields[spec.name] = spec
    return fields


def _check_self(self: Any, cls: type, method: str) -> None:
    # A program can call the methods through the class (P.__init__(x)); with any other object
    # they would read and write its attributes past the guards (a frozen __init__ writes with
    # object.__setattr__), so they serve the dataclass's own instances only.
    if not isinstance(self, cls):
        raise TypeError(
            f"{cls.__qualname__}.{method}() needs a {cls.__qualname__!r} object, "
            f"not {type(self).__name__!r}"
        )


def _values(obj: Any, fields: list[Field]) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in fields)


def _make_init(cls: type, fields: dict[str, Field], frozen: bool) -> Callable[..., None]:
    cls_name = cls.__qualname__
    params = [f for f in fields.values() if f.init]
    positional = [f for f in params if not f.kw_only]
    keyword = {f.name: f for f in params if f.kw_only}
    seen_default = False
    for f in positional:
        if f.default is MISSING and f.default_factory is MISSING:
            if seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
        else:
            seen_default = True
    others = [f for f in fields.values() if not f.init]
    required = sum(1 for f in positional if f.default is MISSING and f.default_factory is MISSING)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _check_self(self, cls, "__init__")
        where = f"{cls_name}.__init__()"
        if len(args) > len(positional):
            count = f"{len(positional) + 1}" if required == len(positional) else (
                f"from {required + 1} to {len(positional) + 1}"
            )
            raise TypeError(
                f"{where} takes {count} positional arguments but {len(args) + 1} were given"
            )
        values: dict[str, Any] = {}
        for f, value in zip(positional, args, strict=False):
            values[f.name] = value
        for name, value in kwargs.items():
            if name in values:
                raise TypeError(f"{where} got multiple values for argument {name!r}")
            if name not in keyword and name not in {f.name for f in positional}:
                raise TypeError(f"{where} got an unexpected keyword argument {name!r}")
            values[name] = value
        missing: dict[bool, list[str]] = {False: [], True: []}
        for f in params:
            if f.name in values:
                continue
            if f.default_factory is not MISSING:
                values[f.name] = f.default_factory()
            elif f.default is not MISSING:
                values[f.name] = f.default
            else:
                missing[bool(f.kw_only)].append(f.name)
        for kw_only, names in missing.items():
            if names:
                kind = "keyword-only" if kw_only else "positional"
                raise TypeError(
                    f"{where} missing {len(names)} required {kind} "
                    f"argument{'s' if len(names) > 1 else ''}: {_listed(names)}"
                )
        for f in others:
            if f.default_factory is not MISSING:
                values[f.name] = f.default_factory()
            elif f.default is not MISSING:
                values[f.name] = f.default
        for name, value in values.items():
            if frozen:
                object.__setattr__(self, name, value)
            else:
                setattr(self, name, value)
        post_init = getattr(type(self), "__post_init__", None)
        if post_init is not None:
            post_init(self)

    return __init__


def _listed(names: list[str]) -> str:
    """Names as CPython lists missing arguments: 'a', 'a' and 'b', 'a', 'b', and 'c'."""
    quoted = [repr(n) for n in names]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


_repr_running = threading.local()


def _make_repr(cls: type, fields: list[Field]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        _check_self(self, cls, "__repr__")
        running: set[tuple[int, int]] = _repr_running.__dict__.setdefault("keys", set())
        key = (id(self), threading.get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields)
        finally:
            running.discard(key)
        return f"{type(self).__qualname__}({shown})"

    return __repr__


def _make_compare(
    cls: type, fields: list[Field], name: str, op: Callable[[Any, Any], bool]
) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        _check_self(self, cls, name)
        if type(other) is not type(self):
            return NotImplemented
        return op(_values(self, fields), _values(other, fields))

    return compare


def _make_hash(cls: type, fields: list[Field]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        _check_self(self, cls, "__hash__")
        return hash(_values(self, fields))

    return __hash__


def _make_frozen(cls: type, fields: dict[str, Field]) -> tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        _check_self(self, cls, "__setattr__")
        if type(self) is cls or name in fields:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        _check_self(self, cls, "__delattr__")
        if type(self) is cls or name in fields:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    return __setattr__, __delattr__


def _set(cls: type, name: str, value: Any) -> bool:
    """Add a method unless the class defines it itself (as CPython's dataclass does)."""
    if name in cls.__dict__:
        return False
    type.__setattr__(cls, name, value)
    return True


_ORDER = {"__lt__": lambda a, b: a < b, "__le__": lambda a, b: a <= b,
          "__gt__": lambda a, b: a > b, "__ge__": lambda a, b: a >= b}


def _process(
    cls: type, *, init: bool, repr: bool, eq: bool, order: bool, unsafe_hash: bool,
    frozen: bool, match_args: bool, kw_only: bool,
) -> type:
    if not is_program_class(cls):
        raise TypeError(
            "dataclass() decorates the program's own classes in the sandbox, "
            f"not {getattr(cls, '__name__', type(cls).__name__)!r}"
        )
    for base in cls.__mro__[1:]:
        if base in _PARAMS and _PARAMS[base]["frozen"] != frozen:
            this, that = ("frozen", "non-frozen") if frozen else ("non-frozen", "frozen")
            raise TypeError(f"cannot inherit {this} dataclass from a {that} one")
    fields = _collect(cls, kw_only)
    _FIELDS[cls] = fields
    _PARAMS[cls] = {"frozen": frozen, "eq": eq}
    listed = list(fields.values())
    if init:
        _set(cls, "__init__", _make_init(cls, fields, frozen))
    if repr:
        _set(cls, "__repr__", _make_repr(cls, [f for f in listed if f.repr]))
    compared = [f for f in listed if f.compare]
    if eq:
        _set(cls, "__eq__", _make_compare(cls, compared, "__eq__", lambda a, b: a == b))
    if order:
        if not eq:
            raise ValueError("eq must be true if order is true")
        for name, op in _ORDER.items():
            if not _set(cls, name, _make_compare(cls, compared, name, op)):
                raise TypeError(
                    f"Cannot overwrite attribute {name} in class {cls.__name__}. Consider using "
                    "functools.total_ordering"
                )
    if frozen:
        for name, method in zip(("__setattr__", "__delattr__"), _make_frozen(cls, fields), strict=True):
            if name in cls.__dict__:
                raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
            type.__setattr__(cls, name, method)
    hashed = [f for f in listed if (f.compare if f.hash is None else f.hash)]
    explicit_hash = "__hash__" in cls.__dict__ and cls.__dict__["__hash__"] is not None
    if unsafe_hash:
        if explicit_hash:
            raise TypeError(f"Cannot overwrite attribute __hash__ in class {cls.__name__}")
        type.__setattr__(cls, "__hash__", _make_hash(cls, hashed))
    elif eq and frozen and not explicit_hash:
        type.__setattr__(cls, "__hash__", _make_hash(cls, hashed))
    elif eq and not explicit_hash:
        type.__setattr__(cls, "__hash__", None)
    if match_args:
        _set(cls, "__match_args__", tuple(f.name for f in listed if f.init and not f.kw_only))
    return cls


def dataclass(
    cls: Any = None, /, *, init: bool = True, repr: bool = True, eq: bool = True,
    order: bool = False, unsafe_hash: bool = False, frozen: bool = False, match_args: bool = True,
    kw_only: bool = False, slots: bool = False,
) -> Any:
    """``dataclasses.dataclass``, as a decorator with or without arguments."""
    if slots:
        raise TypeError("dataclass(slots=True) is not available in the sandbox; leave slots out")
    options = {
        "init": bool(init), "repr": bool(repr), "eq": bool(eq), "order": bool(order),
        "unsafe_hash": bool(unsafe_hash), "frozen": bool(frozen), "match_args": bool(match_args),
        "kw_only": bool(kw_only),
    }

    def wrap(klass: Any) -> Any:
        return _process(klass, **options)

    return wrap if cls is None else wrap(cls)


def _fields_of(obj: Any) -> dict[str, Field]:
    cls = obj if isinstance(obj, type) else type(obj)
    fields = _FIELDS.get(cls) if is_program_class(cls) else None
    if fields is None:
        raise TypeError("must be called with a dataclass type or instance")
    return fields


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """``dataclasses.fields``: the fields of a dataclass or of one of its instances."""
    return tuple(_fields_of(class_or_instance).values())


def is_dataclass(obj: Any) -> bool:
    """``dataclasses.is_dataclass``."""
    cls = obj if isinstance(obj, type) else type(obj)
    return is_program_class(cls) and cls in _FIELDS


def _is_instance(obj: Any) -> bool:
    return not isinstance(obj, type) and is_dataclass(obj)


def _as(obj: Any, factory: Callable[[Any], Any], as_dict: bool) -> Any:
    if _is_instance(obj):
        values = [(f.name, _as(getattr(obj, f.name), factory, as_dict)) for f in fields(obj)]
        return factory(values if as_dict else [v for _, v in values])
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields") and is_program_class(type(obj)):
        return type(obj)(*[_as(v, factory, as_dict) for v in obj])
    if type(obj) in (list, tuple):
        return type(obj)(_as(v, factory, as_dict) for v in obj)
    if type(obj) is dict:
        return {_as(k, factory, as_dict): _as(v, factory, as_dict) for k, v in obj.items()}
    return deepcopy(obj)


def asdict(obj: Any, *, dict_factory: Callable[[Any], Any] = dict) -> Any:
    """``dataclasses.asdict``: a dataclass instance as a dict, recursively."""
    if not _is_instance(obj):
        raise TypeError("asdict() should be called on dataclass instances")
    return _as(obj, dict_factory, True)


def astuple(obj: Any, *, tuple_factory: Callable[[Any], Any] = tuple) -> Any:
    """``dataclasses.astuple``: a dataclass instance as a tuple, recursively."""
    if not _is_instance(obj):
        raise TypeError("astuple() should be called on dataclass instances")
    return _as(obj, tuple_factory, False)


def replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace``: a new instance with some fields changed."""
    if not _is_instance(obj):
        raise TypeError("replace() should be called on dataclass instances")
    for f in fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(
                    f"field {f.name} is declared with init=False, it cannot be specified with replace()"
                )
            continue
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


#: What ``import dataclasses`` serves.
MEMBERS: dict[str, object] = {
    "FrozenInstanceError": FrozenInstanceError, "MISSING": MISSING, "asdict": asdict,
    "astuple": astuple, "dataclass": dataclass, "field": field, "fields": fields,
    "is_dataclass": is_dataclass, "replace": replace,
}
