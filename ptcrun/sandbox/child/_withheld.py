"""Names the sandbox withholds on purpose, and the NameError a program gets for one.

A program that uses ``open`` or ``dir`` gets Python's bare ``name 'open' is not defined``, which
reads like its own typo. :func:`explain` rewrites the message of such a NameError to say that the
name is withheld and what to use instead, and gives a mistyped name CPython 3.12's suggestion
(``Did you mean: 'len'?``). The exception stays a plain ``NameError``, so ``except NameError``
still catches it.

The message is rewritten where a program or the planner reads it: when an ``except`` clause is
evaluated (the ``_catchable_`` hook), and when the child reports the error (``_exact.error_payload``).
Looking names up stays CPython's own fast path: a builtins mapping that raised the error itself
would make every global lookup several times slower.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["WITHHELD", "explain"]

_EXIT = "the program ends with done(answer) or fail(reason)"
_BASE = (
    "only Exception and its subclasses can be raised, caught and derived from, because "
    f"{_EXIT}, which nothing may catch; use Exception"
)
_CODE = "write the code in the program itself (json.loads reads JSON text)"
_SCOPE = "keep the values you look up by name in a dict of your own"
_ASYNC = "async code is not available; use pmap() or pcalls() to run calls concurrently"

#: Why each withheld builtin is absent, and what to use instead; the message is
#: "name 'open' is not available in the sandbox: <reason>".
WITHHELD: dict[str, str] = {
    "open": "the corpus is `data`, and files and the network are reached through tools "
    "(tool.NAME(...))",
    "eval": _CODE,
    "exec": _CODE,
    "compile": _CODE,
    "dir": "print the object, or test one name with hasattr(obj, 'name')",
    "globals": _SCOPE,
    "locals": _SCOPE,
    "input": "nobody can type into the program; it reads `data` and the results of tools",
    "help": "the functions you can use are described in your instructions",
    "id": "it shows memory addresses; compare objects with `is`",
    "memoryview": "slice the bytes instead",
    "exit": _EXIT,
    "quit": _EXIT,
    "copyright": "it is not part of the sandbox",
    "credits": "it is not part of the sandbox",
    "license": "it is not part of the sandbox",
    "aiter": _ASYNC,
    "anext": _ASYNC,
    "BaseException": _BASE,
    "SystemExit": _BASE,
    "KeyboardInterrupt": _BASE,
    "GeneratorExit": _BASE,
    "BaseExceptionGroup": _BASE,
    "ExceptionGroup": "raise and catch one exception at a time (except* is not available either)",
}

# CPython 3.12 suggests a name within this similarity; difflib's ratio is close enough.
_CUTOFF = 0.75
# Beyond this many names in scope no suggestion is computed: it would take noticeable time.
_MAX_CANDIDATES = 5_000


def explain(exc: BaseException, known: Iterable[object] = ()) -> None:
    """Rewrite the message of the NameError Python raised for a missing name, in place.

    Only an exact ``NameError`` whose message is still Python's own ``name 'x' is not defined``
    is changed, so a message the program wrote, or one already explained, is left alone.
    ``known`` are the names the program could have meant (its globals, locals and builtins);
    names starting with ``_`` and anything that is not an exact ``str`` are skipped. Never
    raises and runs no program code.
    """
    if type(exc) is not NameError:
        return
    name = exc.name
    args = exc.args
    if type(name) is not str or len(args) != 1 or type(args[0]) is not str:
        return
    if args[0] != f"name {name!r} is not defined":
        return
    reason = WITHHELD.get(name)
    if reason is not None:
        exc.args = (f"name {name!r} is not available in the sandbox: {reason}",)
        return
    candidates = {n for n in known if type(n) is str and not n.startswith("_") and n != name}
    if len(candidates) > _MAX_CANDIDATES:  # each one costs a SequenceMatcher
        return
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=_CUTOFF)
    if close:
        exc.args = (f"{args[0]}. Did you mean: {close[0]!r}?",)
