"""The namespace a planner program runs in: curated builtins, RestrictedPython's hooks, host names.

``build_globals`` makes the globals dict that ``exec(compile_program(src), globals)`` runs
in. The same dict is reused for every program of a session, so top-level names persist
from one program to the next, as in a REPL. Every hook name starts with ``_``, which the
compile policy forbids programs to bind, so a program cannot shadow or replace a hook; the
host's names (``data``, ``tool``, ...) are plain globals a program may rebind harmlessly,
because no guard looks anything up in the globals.

What is left out of the builtins is as deliberate as what is in: no ``open``, ``eval``,
``exec``, ``compile``, ``globals``, ``locals``, ``dir``, ``input``, ``help``,
``breakpoint``, ``memoryview``, ``id``, ``exit``, and no ``BaseException``, ``SystemExit``,
``KeyboardInterrupt``, ``GeneratorExit`` or ``ExceptionGroup``; ``_withheld`` says why in the
NameError a program gets for each. ``type`` is a stand-in with one argument that never hands
out a metaclass (:class:`TypeOf`); ``vars(obj)`` is ``obj.__dict__`` of the program's own objects.

``_getiter_`` is plain ``iter``: C code iterates in many places a program can reach
(``str.join``, ``list.extend``, ``Counter(...)``), so no rule of the sandbox rests on it.
The builtins that consume iterables still call it first, keeping RestrictedPython's
contract that every iteration a program starts passes through ``_getiter_``.
"""

from __future__ import annotations

import ast
import builtins
import collections
import datetime
import fractions
import itertools
import json
import operator
import re
import statistics
import string
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from . import _withheld
from ._attributes import guarded_getattr, guarded_hasattr, guarded_vars
from ._class_of import TYPE, Super, offer, real_class
from ._handlers import catchable, guarded_with
from ._modules import ContainerType, guarded_import, served_modules
from ._ownership import Ownership

__all__ = ["TYPE", "Printer", "build_globals", "warm_up"]

_getiter = iter


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The ``_apply_`` hook, used for calls with ``*args`` or ``**kwargs``."""
    return func(*args, **kwargs)


class Printer:
    """The object behind ``print``: writes what CPython's print would, one call per print.

    RestrictedPython turns ``print(...)`` into ``_print._call_print(...)`` with
    ``_print = _print_(_getattr_)``; the printer is its own ``_print_`` hook and returns
    itself. Each print is a single ``write`` call made under a lock, so lines printed by
    several pmap threads never interleave.
    """

    __slots__ = ("_lock", "_write")

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()

    def __call__(self, _getattr_: object = None) -> Printer:
        return self

    def _call_print(
        self,
        *objects: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: object = None,
        flush: bool = False,
    ) -> None:
        if file is not None:
            raise TypeError(
                "print(file=...) is not available in the sandbox: printed text always goes "
                "to the program's output. Remove the file argument."
            )
        text = _separator("sep", sep, " ").join(map(str, objects)) + _separator("end", end, "\n")
        if text:
            with self._lock:
                self._write(text)


def _separator(name: str, value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{name} must be None or a string, not {type(value).__name__}")
    return str.__str__(value)  # the text of a str subclass, exactly


# The builtins that consume an iterable, each calling _getiter_ on it first. They carry the
# builtins' own names, so an error message reads "sorted() ...", as in Python.


def _sorted(iterable: Iterable[Any], /, *, key: Any = None, reverse: bool = False) -> list[Any]:
    return builtins.sorted(_getiter(iterable), key=key, reverse=reverse)


def _reversed(sequence: Any, /) -> Any:
    _getiter(sequence)  # reversed() needs the sequence itself, not an iterator over it
    return builtins.reversed(sequence)


def _sum(iterable: Iterable[Any], /, start: Any = 0) -> Any:
    return builtins.sum(_getiter(iterable), start)


def _min(*args: Any, **kwargs: Any) -> Any:
    return builtins.min(*_single_iterable(args), **kwargs)


def _max(*args: Any, **kwargs: Any) -> Any:
    return builtins.max(*_single_iterable(args), **kwargs)


def _single_iterable(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (_getiter(args[0]),) if len(args) == 1 else args


def _any(iterable: Iterable[Any], /) -> bool:
    return builtins.any(_getiter(iterable))


def _all(iterable: Iterable[Any], /) -> bool:
    return builtins.all(_getiter(iterable))


def _enumerate(iterable: Iterable[Any], start: int = 0) -> Any:
    return builtins.enumerate(_getiter(iterable), start)


def _zip(*iterables: Iterable[Any], strict: bool = False) -> Any:
    return builtins.zip(*[_getiter(it) for it in iterables], strict=strict)


def _map(
    function: Callable[..., Any], iterable: Iterable[Any], /, *iterables: Iterable[Any]
) -> Any:
    return builtins.map(function, _getiter(iterable), *[_getiter(it) for it in iterables])


def _filter(function: Callable[[Any], Any] | None, iterable: Iterable[Any], /) -> Any:
    return builtins.filter(function, _getiter(iterable))


def _issubclass(cls: Any, classinfo: Any, /) -> bool:
    # The container types are stand-ins, not classes; as the first argument they are the type.
    return builtins.issubclass(real_class(cls), classinfo)  # type: ignore[arg-type]


_ITERATING = {
    "all": _all, "any": _any, "enumerate": _enumerate, "filter": _filter, "map": _map,
    "max": _max, "min": _min, "reversed": _reversed, "sorted": _sorted, "sum": _sum, "zip": _zip,
}
_issubclass.__name__ = _issubclass.__qualname__ = "issubclass"
for _name, _function in _ITERATING.items():
    _function.__name__ = _function.__qualname__ = _name

_CONTAINERS = {kind.__name__: ContainerType(kind) for kind in (dict, frozenset, list, set, tuple)}

_PLAIN = (
    "abs", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "classmethod",
    "complex", "divmod", "float", "format", "hash", "hex", "int", "isinstance", "iter", "len",
    "next", "object", "oct", "ord", "pow", "property", "range", "repr", "round", "slice",
    "staticmethod", "str",
)
_CONSTANTS = {"None": None, "True": True, "False": False, "Ellipsis": Ellipsis,
              "NotImplemented": NotImplemented}
# Exception classes a program may raise and catch: every builtin Exception subclass (warnings
# included), but no exception group, since except* is refused.
_EXCEPTIONS = tuple(
    sorted(
        (
            value for value in vars(builtins).values()
            if isinstance(value, type) and issubclass(value, Exception)
            and not issubclass(value, BaseExceptionGroup)
        ),
        key=lambda cls: cls.__name__,
    )
)


# The classes a program can name: type(x) of their instances gives them as they are.
offer([*(getattr(builtins, name) for name in _PLAIN), Super, *_EXCEPTIONS, *_CONTAINERS.values()])
offer(member for proxy in served_modules() for member in proxy._members.values())


def _builtins(ownership: Ownership) -> dict[str, object]:
    table: dict[str, object] = {name: getattr(builtins, name) for name in _PLAIN}
    table.update(_CONSTANTS)
    table.update({cls.__name__: cls for cls in _EXCEPTIONS})
    table.update(_CONTAINERS)
    table.update(_ITERATING)
    table.update(
        type=TYPE,
        super=Super,
        issubclass=_issubclass,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        vars=guarded_vars,
        setattr=ownership.setattr,
        delattr=ownership.delattr,
        __build_class__=builtins.__build_class__,
        __import__=guarded_import,
    )
    return table


def build_globals(
    *, host: Mapping[str, object], write_output: Callable[[str], None]
) -> dict[str, object]:
    """Return a fresh globals dict for ``exec(code, globals)`` of compiled planner programs.

    It holds the curated ``__builtins__``, every hook the compile policy emits (``_getattr_``,
    ``_getitem_``, ``_getiter_``, ``_write_``, ``_inplacevar_``, ``_apply_``, ``_print_``,
    ``_unpack_sequence_``, ``_iter_unpack_sequence_``, ``_catchable_``, ``_with_``, ``__metaclass__``,
    ``__name__``) and the entries of host as plain globals. Reuse the dict for every program
    of a session: classes a program defines stay writable in later programs.

    Args:
        host: the names the host offers (``data``, ``tool``, ``budget``, ``pmap``, ``done``,
            ...). Keys must be identifiers that do not start with ``_``.
        write_output: called with exactly the text CPython's print would write, once per
            ``print`` call, from whichever thread printed (never two calls at once).

    Raises:
        ValueError: a host name is not an identifier or starts with ``_``.
    """
    for name in host:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(
                f"host name {name!r} cannot be offered to programs: names must be identifiers "
                "that do not start with '_'"
            )
    ownership = Ownership()
    namespace: dict[str, object] = {}
    offer(host.values())  # Failure, ToolError...: classes the program names

    def catchable_here(spec: object) -> object:
        # The clause is evaluated while its exception is set: a NameError for a withheld or
        # mistyped name gets its explanation before the program can read it.
        pending = sys.exc_info()[1]
        if type(pending) is NameError:
            # list() copies the keys in one step: a pmap thread may be adding a global.
            _withheld.explain(pending, itertools.chain(list(namespace), builtin_names))
        return catchable(spec)

    table = _builtins(ownership)
    builtin_names = tuple(table)
    namespace.update({
        "__builtins__": table,
        "__name__": "__main__",
        "__metaclass__": ownership.make_class,
        "_getattr_": guarded_getattr,
        "_getitem_": operator.getitem,
        "_getiter_": _getiter,
        "_write_": ownership.write,
        "_inplacevar_": ownership.inplacevar,
        "_apply_": guarded_apply,
        "_print_": Printer(write_output),
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_catchable_": catchable_here,
        "_with_": guarded_with,
    })
    namespace.update(host)
    return namespace


_WARM_UP_PROGRAM = """
import re, json, math, statistics, collections, itertools, functools, datetime, string
import textwrap, heapq, bisect
counts = collections.Counter(w.lower() for w in re.findall(r"\\w+", "a b A"))
counts["a"] += 1
print(f"{counts.most_common(1)[0][1]:>4d}", "{} {x}".format(1, x=2), sorted(counts))
"""


def warm_up() -> None:
    """Load now whatever programs would otherwise load lazily on first use.

    Call it in the sandbox child before the lockdown that forbids opening files: afterwards a
    lazy import (``_strptime`` for ``datetime.strptime``, ``unicodedata`` for ``"\\N{...}"``,
    a codec module for ``str.encode``) would fail. Safe to call more than once.
    """
    from ._compile import compile_program

    moment = datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d %B %Y %A", "%a %b %d %I:%M %p %j", "%Y-%m-%dT%H:%M:%S%z",
                "%c %x %X %U %W %Z"):
        text = moment.strftime(fmt)
        try:
            datetime.datetime.strptime(text, fmt)  # noqa: DTZ007 - only loads the parser
        except (ValueError, re.error):
            pass  # some formats do not round-trip; loading the machinery is what counts
    time.strptime("2024", "%Y")
    datetime.datetime.now().astimezone()  # reads the local time zone once
    datetime.datetime.fromtimestamp(0)  # noqa: DTZ006 - loads the local-time conversion
    re.compile(r"(?ix) \b\w+ \s* \d+ \N{BULLET}").findall("Ab 12\N{BULLET}")
    ast.literal_eval('"\\N{BULLET}"')  # the compiler looks \N{...} names up in unicodedata
    json.loads(json.dumps({"a": [1, 2.5, None, True, "\u00e9"]}, indent=2, ensure_ascii=False))
    try:
        json.loads("{bad")
    except json.JSONDecodeError:
        pass
    statistics.quantiles(statistics.NormalDist(0, 1).samples(5, seed=1), n=4)
    mixed: list[Any] = [fractions.Fraction(1, 3), 2, 4.5]  # walks the numeric-type coercion
    statistics.stdev(mixed)
    statistics.correlation([1, 2, 3], [2, 4, 7])
    statistics.linear_regression([1, 2, 3], [2, 4, 7])
    textwrap.shorten(textwrap.fill(textwrap.dedent("  a b c"), width=3), width=10)
    string.Template("$a").substitute(a=string.capwords("a b"))
    collections.namedtuple("Warm", "a b")
    for encoding in ("utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1252", "iso-8859-15",
                     "unicode_escape", "raw_unicode_escape"):
        "\u00e9\u20ac".encode(encoding, "replace").decode(encoding, "replace")
    "\u00e9".encode("ascii", "namereplace")
    format(1234.5, "n")
    namespace = build_globals(host={}, write_output=lambda text: None)
    exec(compile_program(_WARM_UP_PROGRAM, filename="<warm-up>"), namespace)
