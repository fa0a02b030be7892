"""The modules a program may import, and the stand-ins it gets instead of modules and types.

``import x`` in a program calls ``guarded_import``, which knows the modules of
``ALLOWED_MODULES`` (``sandbox/_language.py``). Each is handed out as a ``ModuleProxy`` that
serves a hand-written list of names; a module that needs wrappers has them in a ``_mod_*.py``
file of its own (``_mod_random``, ``_mod_copy``, ``_mod_operator``, ``_mod_typing``,
``_mod_dataclasses``, ``_mod_enum``, ``_mod_re``, ``_mod_itertools``). Real module objects are
never reachable:
``json.codecs`` leads to ``builtins.open``, ``datetime.sys`` to ``sys.modules``, and
``from json import codecs`` skips ``_getattr_`` entirely. The lists also leave out whatever
reads or writes attributes behind the guards' backs (``string.Formatter``,
``functools.update_wrapper``/``wraps``, ``singledispatch``; ``total_ordering`` is a wrapper
that decorates only the program's own classes), classes that
carry shared mutable state (``textwrap.TextWrapper``, ``csv.register_dialect``,
``decimal.DefaultContext``), what opens files (``hashlib.file_digest``, ``base64.encode``) and
``re.DEBUG``, which prints to the process's stdout. docs/security.md says, module by module,
what is left out and why.

Whatever these modules load lazily (hash algorithms, codec tables, the Unicode database) is
loaded when this module is imported, before the child's lock-down closes the files.
"""

from __future__ import annotations

import base64
import bisect
import collections
import csv
import datetime
import decimal
import difflib
import fractions
import functools
import hashlib
import heapq
import io
import itertools
import json
import math
import re
import statistics
import string
import sys
import textwrap
import types
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .._language import ALLOWED_MODULES
from . import (
    _mod_copy,
    _mod_dataclasses,
    _mod_enum,
    _mod_itertools,
    _mod_operator,
    _mod_random,
    _mod_re,
    _mod_typing,
)
from ._mod_classes import is_program_class, record_program_class
from ._stand_ins import ClassStandIn, named_as_classes
from ._tripwire import trusted

__all__ = ["ALLOWED_MODULES", "ContainerType", "ModuleProxy", "guarded_import", "served_modules"]


class ModuleProxy:
    """A read-only stand-in for an allowed module: it serves a fixed set of names, nothing else.

    It never holds or hands out the real module, has no ``__name__`` (so ``from m import x``
    cannot fall back to ``sys.modules``), and refuses every attribute write.
    """

    __slots__ = ("_members", "_name")
    _name: str
    _members: types.MappingProxyType[str, object]

    def __init__(self, name: str, members: Mapping[str, object]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", types.MappingProxyType(dict(members)))

    def __getattr__(self, attr: str) -> object:
        if type(attr) is not str:  # a str subclass may equal a member yet say it is no dunder
            raise AttributeError("attribute names are exact strings in the sandbox")
        try:
            return self._members[attr]
        except KeyError:
            pass
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(
            f"module {self._name!r} has no attribute {attr!r} in the sandbox; "
            f"it offers: {', '.join(sorted(self._members))}"
        )

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError(f"module {self._name!r} is read-only in the sandbox")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError(f"module {self._name!r} is read-only in the sandbox")

    def __repr__(self) -> str:
        return f"<module {self._name!r}>"


class ContainerType(ClassStandIn):
    """A builtin container type (list, tuple, dict, set, frozenset) whose constructor iterates
    its argument through ``_getiter_`` (``iter``) first, as RestrictedPython expects of every
    iteration a program starts.

    It still behaves as the type wherever programs use one: ``isinstance(x, list)``,
    ``issubclass``, ``class Rows(list)``, ``defaultdict(list)``, ``list.append``,
    ``dict.fromkeys``, ``list[int]`` and ``list | None``. It returns real containers.
    """

    __slots__ = ("_type",)
    _type: type

    def __init__(self, kind: type) -> None:
        object.__setattr__(self, "_type", kind)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # dict(mapping) reads keys and items rather than iterating, so it is left alone.
        if len(args) == 1 and not (self._type is dict and hasattr(args[0], "keys")):
            args = (iter(args[0]),)
        return self._type(*args, **kwargs)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(obj, self._type)

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._type)

    def __mro_entries__(self, bases: tuple[object, ...]) -> tuple[type]:
        return (self._type,)

    def __getattr__(self, attr: str) -> object:
        if type(attr) is not str or attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._type, attr)

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError(f"{self._type.__name__} is read-only in the sandbox")

    def __getitem__(self, params: object) -> object:
        # list[int] and the like: each container type has __class_getitem__, which a plain
        # `type` does not declare.
        return self._type[params]  # type: ignore[index]

    def __or__(self, other: object) -> object:
        return self._type | (other._type if isinstance(other, ContainerType) else other)

    def __ror__(self, other: object) -> object:
        return (other._type if isinstance(other, ContainerType) else other) | self._type

    def __repr__(self) -> str:
        return repr(self._type)


named_as_classes(ContainerType)


def _plain_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"namedtuple {what} must be a str, not {type(value).__name__}")
    return str.__str__(value)  # an exact str, even from a str subclass


def _namedtuple(
    typename: str, field_names: str | Iterable[str], *, rename: bool = False, defaults: Any = None
) -> type:
    """``collections.namedtuple``: a tuple subclass with named fields."""
    # namedtuple builds its __new__ with eval(), which the audit tripwire refuses in program
    # code. Its arguments are reduced to plain copies here, outside the trusted section, so
    # that no program code (a str subclass's __eq__, a generator) runs inside it.
    name = _plain_str(typename, "typename")
    if isinstance(field_names, str):
        fields: str | list[str] = _plain_str(field_names, "field names")
    else:
        fields = [_plain_str(field, "field name") for field in field_names]
    rename = bool(rename)
    defaults = None if defaults is None else tuple(defaults)
    cls = _trusted_namedtuple(name, fields, rename, defaults)
    record_program_class(cls)
    return cls


def _trusted_namedtuple(name: str, fields: str | list[str], rename: bool, defaults: Any) -> type:
    with trusted():
        return collections.namedtuple(
            name, fields, rename=rename, defaults=defaults, module="__main__"
        )


def _total_ordering(cls: type) -> type:
    """``functools.total_ordering``, for the program's own classes: it adds the comparisons a
    class leaves out, derived from the ones it defines, as its class body could have."""
    if not is_program_class(cls):
        raise TypeError(
            "functools.total_ordering() decorates the program's own classes in the sandbox, "
            f"not {getattr(cls, '__name__', type(cls).__name__)!r}"
        )
    return functools.total_ordering(cls)


#: The hash algorithms every build of CPython has; ``hashlib.new`` takes only these, so no
#: name reaches OpenSSL's provider lookup (which may load files).
_HASHES = tuple(sorted(hashlib.algorithms_guaranteed))


def _hashlib_new(name: str, data: bytes = b"", **kwargs: Any) -> Any:
    """``hashlib.new``: a hash object of one of ``hashlib.algorithms_guaranteed``."""
    if type(name) is not str or name.lower() not in _HASHES:
        raise ValueError(
            f"hashlib.new() takes one of {', '.join(_HASHES)} in the sandbox, not {name!r}"
        )
    return getattr(hashlib, name.lower())(data, **kwargs)


class _DictReader(csv.DictReader):  # type: ignore[type-arg]
    """``csv.DictReader`` without the setter of ``fieldnames``: ``DictReader.fieldnames.fset``
    is a plain function that writes ``_fieldnames`` on whatever object it is given."""

    fieldnames = property(vars(csv.DictReader)["fieldnames"].fget)


_DictReader.__name__ = _DictReader.__qualname__ = "DictReader"
_DictReader.__module__ = "csv"


def _load_lazy_parts() -> None:
    """Touch now what these modules would load on first use (the lockdown closes the files)."""
    for name in _HASHES:
        hash_ = getattr(hashlib, name)(b"warm")
        hash_.hexdigest(8) if name.startswith("shake") else hash_.hexdigest()
    for text in ("caf\u00e9", "\u2460"):
        unicodedata.normalize("NFKD", text), unicodedata.name(text[-1], ""), unicodedata.numeric(text[-1], 0)
    base64.b85decode(base64.b85encode(b"warm")), base64.a85decode(base64.a85encode(b"warm"))
    base64.b32decode(base64.b32encode(b"warm"))
    list(csv.DictReader(io.StringIO("a,b\n1,2\n")))
    csv.writer(io.StringIO()).writerow([1, "x"])
    format(decimal.Decimal("1.5").sqrt(), ",.3f"), fractions.Fraction("3/4").limit_denominator(2)
    list(difflib.unified_diff(["a"], ["b"])), difflib.get_close_matches("ab", ["abc"])


_NAMES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "bisect": (bisect, (
        "bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right",
    )),
    "collections": (collections, ("Counter", "OrderedDict", "defaultdict", "deque")),
    "datetime": (datetime, (
        "MAXYEAR", "MINYEAR", "UTC", "date", "datetime", "time", "timedelta", "timezone", "tzinfo",
    )),
    "functools": (functools, ("cache", "cmp_to_key", "lru_cache", "partial", "reduce")),
    "heapq": (heapq, (
        "heapify", "heappop", "heappush", "heappushpop", "heapreplace", "merge", "nlargest",
        "nsmallest",
    )),
    "itertools": (itertools, (
        "accumulate", "chain", "combinations", "combinations_with_replacement", "compress",
        "count", "cycle", "dropwhile", "filterfalse", "groupby", "islice", "pairwise",
        "permutations", "product", "repeat", "starmap", "takewhile", "tee", "zip_longest",
    )),
    "json": (json, ("JSONDecodeError", "JSONDecoder", "JSONEncoder", "dumps", "loads")),
    "math": (math, (
        "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil", "comb",
        "copysign", "cos", "cosh", "degrees", "dist", "e", "erf", "erfc", "exp", "exp2", "expm1",
        "fabs", "factorial", "floor", "fmod", "frexp", "fsum", "gamma", "gcd", "hypot", "inf",
        "isclose", "isfinite", "isinf", "isnan", "isqrt", "lcm", "ldexp", "lgamma", "log",
        "log10", "log1p", "log2", "modf", "nan", "nextafter", "perm", "pi", "pow", "prod",
        "radians", "remainder", "sin", "sinh", "sqrt", "tan", "tanh", "tau", "trunc", "ulp",
    )),
    "re": (re, (
        "A", "ASCII", "DOTALL", "I", "IGNORECASE", "M", "MULTILINE", "NOFLAG", "S", "U",
        "UNICODE", "VERBOSE", "X", "Match", "Pattern", "error", "escape",
    )),
    "statistics": (statistics, (
        "NormalDist", "StatisticsError", "correlation", "covariance", "fmean", "geometric_mean",
        "harmonic_mean", "linear_regression", "mean", "median", "median_grouped", "median_high",
        "median_low", "mode", "multimode", "pstdev", "pvariance", "quantiles", "stdev",
        "variance",
    )),
    "string": (string, (
        "Template", "ascii_letters", "ascii_lowercase", "ascii_uppercase", "capwords", "digits",
        "hexdigits", "octdigits", "printable", "punctuation", "whitespace",
    )),
    "textwrap": (textwrap, ("dedent", "fill", "indent", "shorten", "wrap")),
    "base64": (base64, (
        "a85decode", "a85encode", "b16decode", "b16encode", "b32decode", "b32encode",
        "b32hexdecode", "b32hexencode", "b64decode", "b64encode", "b85decode", "b85encode",
        "decodebytes", "encodebytes", "standard_b64decode", "standard_b64encode",
        "urlsafe_b64decode", "urlsafe_b64encode",
    )),
    "copy": (None, ()),
    "dataclasses": (None, ()),
    "csv": (csv, (
        "Dialect", "DictWriter", "Error", "QUOTE_ALL", "QUOTE_MINIMAL",
        "QUOTE_NONE", "QUOTE_NONNUMERIC", "Sniffer", "excel", "excel_tab", "reader",
        "unix_dialect", "writer",
    )),
    "decimal": (decimal, (
        "BasicContext", "Clamped", "Context", "Decimal", "DecimalException", "DivisionByZero",
        "ExtendedContext", "FloatOperation", "Inexact", "InvalidOperation", "MAX_EMAX",
        "MAX_PREC", "MIN_EMIN", "MIN_ETINY", "Overflow", "ROUND_05UP", "ROUND_CEILING",
        "ROUND_DOWN", "ROUND_FLOOR", "ROUND_HALF_DOWN", "ROUND_HALF_EVEN", "ROUND_HALF_UP",
        "ROUND_UP", "Rounded", "Subnormal", "Underflow", "getcontext", "localcontext",
        "setcontext",
    )),
    "difflib": (difflib, (
        "Differ", "IS_CHARACTER_JUNK", "IS_LINE_JUNK", "Match", "SequenceMatcher",
        "context_diff", "get_close_matches", "ndiff", "restore", "unified_diff",
    )),
    "enum": (None, ()),
    "fractions": (fractions, ("Fraction",)),
    "hashlib": (hashlib, _HASHES),
    "io": (io, ("StringIO",)),
    "operator": (None, ()),
    "random": (None, ()),
    "typing": (None, ()),
    "unicodedata": (unicodedata, (
        "bidirectional", "category", "combining", "decimal", "decomposition", "digit",
        "east_asian_width", "is_normalized", "lookup", "mirrored", "name", "normalize",
        "numeric", "unidata_version",
    )),
}
# Names served by a wrapper rather than the module's own object.
_WRAPPED: dict[str, dict[str, object]] = {
    "collections": {"namedtuple": _namedtuple},
    "functools": {"total_ordering": _total_ordering},
    "itertools": _mod_itertools.MEMBERS,
    "copy": _mod_copy.MEMBERS,
    "csv": {"DictReader": _DictReader},
    "dataclasses": _mod_dataclasses.MEMBERS,
    "enum": _mod_enum.MEMBERS,
    # Copies: what a proxy serves is never a changeable object its module keeps using.
    "decimal": {"BasicContext": decimal.BasicContext.copy(),
                "ExtendedContext": decimal.ExtendedContext.copy()},
    "hashlib": {"new": _hashlib_new, "algorithms_guaranteed": frozenset(_HASHES)},
    "operator": _mod_operator.MEMBERS,
    "random": _mod_random.MEMBERS,
    "typing": _mod_typing.members(_namedtuple),
    "re": _mod_re.MEMBERS,
}


# The objects a program may change (the write guard's list), which a proxy never serves as the
# module's own: a program would change them for the module's code too.
_CHANGEABLE = (list, dict, set, bytearray, collections.Counter, collections.deque, decimal.Context)


def _members(name: str) -> dict[str, object]:
    module, names = _NAMES[name]
    # A name missing from this Python version is simply not offered.
    members = {n: getattr(module, n) for n in names if hasattr(module, n)}
    members.update(_WRAPPED.get(name, {}))
    for member, value in members.items():
        if isinstance(value, _CHANGEABLE) and module is not None and any(
            value is shared for shared in vars(module).values()
        ):  # pragma: no cover - a wrong list entry
            raise RuntimeError(f"{name}.{member} is changeable and must be served as a copy")
        # A wrong list entry. `from m import x` reads the proxy with a plain getattr, past
        # _getattr_'s checks of the value, so the lists themselves must hold no module and no
        # metaclass (which would build classes the write guard does not know).
        if isinstance(value, types.ModuleType) or (  # pragma: no cover
            isinstance(value, type) and issubclass(value, type)
        ):
            raise RuntimeError(f"{name}.{member} is a module or a metaclass and must not be offered")
    return members


# The list of modules is shared with the host, which names them in the planner's prompt; the
# names each one serves are the child's business and live here.
if set(_NAMES) != set(ALLOWED_MODULES):  # pragma: no cover - the two lists drifted apart
    raise RuntimeError(
        f"sandbox/_language.py allows {sorted(ALLOWED_MODULES)}, but _modules.py serves {sorted(_NAMES)}"
    )
_load_lazy_parts()
_PROXIES = {name: ModuleProxy(name, _members(name)) for name in ALLOWED_MODULES}


def served_modules() -> tuple[ModuleProxy, ...]:
    """The proxy of every allowed module."""
    return tuple(_PROXIES.values())


def guarded_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Any = None,
    level: int = 0,
) -> ModuleProxy | None:
    """The sandbox's ``__import__``: a ModuleProxy for an allowed module, else ImportError.

    ``from m import a, b`` is checked here too, so a name the proxy does not serve fails
    with a message that lists what it does serve.
    """
    if type(name) is not str or type(level) is not int:
        raise ImportError("import takes a module name (an exact str) and level 0 in the sandbox")
    if type(fromlist) is list:
        # C code called by a program (datetime.strptime, strftime, the json decoder's errors)
        # imports its helper modules through the __import__ of the calling frame, passing a
        # list; a program's own import statements pass None or a tuple. C code ignores what
        # this returns and takes the module from sys.modules, so nothing reaches the program.
        if name in sys.modules:
            return None
        raise ImportError(f"module {name!r} is not loaded in the sandbox")
    allowed = ", ".join(ALLOWED_MODULES)
    if level != 0:
        raise ImportError(
            f"relative imports are not allowed in the sandbox; allowed modules: {allowed}"
        )
    proxy = _PROXIES.get(name)
    if proxy is None:
        raise ImportError(f"import of {name!r} is not allowed; allowed modules: {allowed}")
    for item in fromlist or ():
        if type(item) is not str or item not in proxy._members:
            raise ImportError(
                f"cannot import name {item!r} from {name!r} in the sandbox; "
                f"it offers: {', '.join(sorted(proxy._members))}"
            )
    return proxy
