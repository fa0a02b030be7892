"""``re`` for programs: the functions that take flags refuse ``re.DEBUG``.

``re.DEBUG`` makes the compiler print the parsed pattern to the process's own stdout, past the
program's output; each function that takes flags checks them first.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MEMBERS"]


def _no_debug(flags: Any) -> Any:
    if not issubclass(type(flags), int):
        # A program's class could answer `flags & re.DEBUG` with 0 and __index__ with DEBUG.
        raise TypeError(f"re flags must be an int, not {type(flags).__name__!r}")
    if issubclass(type(flags), int):
        # The exact value: what is checked here is what re compiles with.
        flags = int.__index__(flags)
        if flags & re.DEBUG:
            raise ValueError(
                "re.DEBUG is not available in the sandbox: it prints to the process's own "
                "output. Remove the flag."
            )
    return flags


def _compile(pattern: Any, flags: Any = 0) -> re.Pattern[Any]:
    return re.compile(pattern, _no_debug(flags))


def _search(pattern: Any, string: Any, flags: Any = 0) -> re.Match[Any] | None:
    return re.search(pattern, string, _no_debug(flags))


def _match(pattern: Any, string: Any, flags: Any = 0) -> re.Match[Any] | None:
    return re.match(pattern, string, _no_debug(flags))


def _fullmatch(pattern: Any, string: Any, flags: Any = 0) -> re.Match[Any] | None:
    return re.fullmatch(pattern, string, _no_debug(flags))


def _split(pattern: Any, string: Any, maxsplit: int = 0, flags: Any = 0) -> list[Any]:
    return re.split(pattern, string, maxsplit=maxsplit, flags=_no_debug(flags))


def _findall(pattern: Any, string: Any, flags: Any = 0) -> list[Any]:
    return re.findall(pattern, string, _no_debug(flags))


def _finditer(pattern: Any, string: Any, flags: Any = 0) -> Any:
    return re.finditer(pattern, string, _no_debug(flags))


def _sub(pattern: Any, repl: Any, string: Any, count: int = 0, flags: Any = 0) -> Any:
    return re.sub(pattern, repl, string, count=count, flags=_no_debug(flags))


def _subn(pattern: Any, repl: Any, string: Any, count: int = 0, flags: Any = 0) -> Any:
    return re.subn(pattern, repl, string, count=count, flags=_no_debug(flags))


#: The functions ``import re`` serves in place of the module's own.
MEMBERS: dict[str, object] = {
    "compile": _compile, "findall": _findall, "finditer": _finditer, "fullmatch": _fullmatch,
    "match": _match, "search": _search, "split": _split, "sub": _sub, "subn": _subn,
}
