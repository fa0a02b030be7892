"""``typing`` for programs: the names annotations use, and nothing that evaluates them.

Models annotate everything (``def f(rows: List[Dict[str, Any]]) -> Optional[int]``), so the
special forms, the generic aliases, ``TypeVar``, ``Generic``, ``Protocol``, ``TypedDict``,
``cast`` and ``TYPE_CHECKING`` are served as they are. Their own attributes start with ``_``
(``__origin__``, ``__args__``) and stay behind the attribute guard; an alias such as
``Type[int]`` cannot be called to build a class.

Left out, because they evaluate annotation strings or hand out what the guards hide:
``get_type_hints`` (evaluates strings as code), ``get_origin``/``get_args`` (``get_origin(Type)``
is the metaclass ``type``), ``ForwardRef`` and ``reveal_type`` (writes to the process's stderr).
Two places in ``typing`` meet the tripwire on their way to harmless results, and are adapted
once, when this module is imported (where frames and ``compile`` are allowed, as in a test
process, they behave exactly as before):

* ``ForwardRef("Node")``, which ``Optional["Node"]`` and string annotations build, compiles the
  string, and the tripwire refuses ``compile`` to program code. It compiles an exact ``str``
  inside a trusted section here: compiling runs nothing (the child compiles every program the
  same way), and evaluating the code, which only ``get_type_hints`` would do, stays refused.
* ``TypeVar`` and ``Protocol`` ask ``sys._getframe`` for the caller's module name, which the
  tripwire refuses; they get ``None`` instead, as on a Python without frames.

``typing``'s own ``NamedTuple`` builds its class with ``exec``. Here both forms,
``NamedTuple("P", [("x", int)])`` and ``class P(NamedTuple): x: int``, go through the sandbox's
``collections.namedtuple`` (field names checked, generated code built from them alone); the
class form's methods and defaults are copied onto the class as typing copies them.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from ._mod_classes import register_class_maker
from ._tripwire import trusted

__all__ = ["members"]

_NAMES = (
    "TYPE_CHECKING", "AbstractSet", "Annotated", "Any", "AnyStr", "Callable", "ClassVar",
    "Collection", "Container", "Counter", "DefaultDict", "Deque", "Dict", "Final", "FrozenSet",
    "Generator", "Generic", "Hashable", "ItemsView", "Iterable", "Iterator", "KeysView", "List",
    "Literal", "LiteralString", "Mapping", "MappingView", "Match", "MutableMapping",
    "MutableSequence", "MutableSet", "Never", "NoReturn", "NotRequired", "Optional",
    "OrderedDict", "Pattern", "Protocol", "Required", "Reversible", "Self", "Sequence", "Set",
    "Sized", "SupportsAbs", "SupportsFloat", "SupportsIndex", "SupportsInt", "SupportsRound",
    "Text", "Tuple", "Type", "TypeAlias", "TypeVar", "TypedDict", "Union", "ValuesView",
    "assert_never", "assert_type", "cast",
)


_forward_ref_init = typing.ForwardRef.__init__
_caller = getattr(typing, "_caller", None)


def _init_forward_ref(
    self: typing.ForwardRef, arg: Any, is_argument: Any = True, module: Any = None, *, is_class: Any = False
) -> None:
    exact = (
        type(arg) is str and type(is_argument) is bool and type(is_class) is bool
        and (module is None or type(module) is str)
    )
    if not exact:  # typing's own checks refuse it, untrusted
        _forward_ref_init(self, arg, is_argument, module, is_class=is_class)
        return
    with trusted():
        _forward_ref_init(self, arg, is_argument, module, is_class=is_class)


def _caller_or_none(depth: int = 1, default: str = "__main__") -> str | None:
    try:
        return sys._getframe(depth + 1).f_globals.get("__name__", default)  # type: ignore[no-any-return]
    except (AttributeError, ValueError, PermissionError):
        return None


typing.ForwardRef.__init__ = _init_forward_ref  # type: ignore[method-assign]
if _caller is not None:
    typing._caller = _caller_or_none  # type: ignore[attr-defined]


class _NamedTupleBase:
    """What ``class P(NamedTuple):`` derives from as the class statement runs; the class it
    makes is a namedtuple, built by the maker below."""

    __slots__ = ()


def _named_tuple_bases(bases: tuple[object, ...]) -> tuple[type, ...]:
    return (_NamedTupleBase,)


# As typing's NamedTupleMeta: these may not be defined in the class body, and these few names
# of the body are not copied onto the class.
_PROHIBITED = frozenset({
    "__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make",
    "_replace", "_asdict", "_source",
})
_NOT_COPIED = frozenset({"__module__", "__name__", "__annotations__"})
_AUDITED = frozenset({"__qualname__", "__doc__"})


def _class_maker(namedtuple: Callable[..., type]) -> Callable[..., type]:
    def make(name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
        """``class P(NamedTuple): x: int; y: int = 0``, as typing makes it, without exec."""
        if bases != (_NamedTupleBase,) or kwargs:
            raise TypeError("can only inherit from a NamedTuple type and Generic")
        fields = list(namespace.get("__annotations__", {}))
        defaults: list[Any] = []
        with_default: list[str] = []
        for field in fields:
            if field in namespace:
                defaults.append(namespace[field])
                with_default.append(field)
            elif defaults:
                raise TypeError(
                    f"Non-default namedtuple field {field} cannot follow default "
                    f"field{'s' if len(with_default) > 1 else ''} {', '.join(with_default)}"
                )
        cls = namedtuple(name, fields, defaults=defaults)
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key in _AUDITED:
                # Setting these on a class raises an audit event, which the tripwire refuses
                # to program code; an exact str from the class body runs nothing when set.
                if type(value) is str:
                    with trusted():
                        type.__setattr__(cls, key, value)
            elif key not in _NOT_COPIED and key not in fields:
                type.__setattr__(cls, key, value)
        return cls

    return make


def members(namedtuple: Callable[..., type]) -> dict[str, object]:
    """What ``import typing`` serves; ``namedtuple`` is the sandbox's ``collections.namedtuple``."""

    def NamedTuple(typename: str, fields: Iterable[tuple[str, Any]] = (), /) -> type:
        """``typing.NamedTuple("P", [("x", int), ("y", float)])``: a namedtuple class."""
        pairs = [tuple(pair) for pair in fields]
        for pair in pairs:
            if len(pair) != 2:
                raise TypeError("NamedTuple fields are (name, type) pairs")
        return namedtuple(typename, [name for name, _ in pairs])

    # Looked up on the object by class statements that name it as a base.
    NamedTuple.__mro_entries__ = _named_tuple_bases  # type: ignore[attr-defined]
    register_class_maker(_NamedTupleBase, _class_maker(namedtuple))
    served: dict[str, object] = {name: getattr(typing, name) for name in _NAMES if hasattr(typing, name)}
    served["NamedTuple"] = NamedTuple
    return served
