"""What a program sees of the host, inside the child: ``tool``, ``budget``, ``done``, ``fail``.

None of these objects holds anything of value: ``tool.<name>`` sends a request over the wire,
``budget.remaining`` asks the host, and ``done``/``fail`` raise :class:`ProgramExit`, which
derives from ``BaseException`` and so passes through ``except Exception`` (the compile policy
refuses bare ``except:`` and ``except BaseException``).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict, deque
from typing import Any, Callable

from ... import errors
from . import _scope
from ._link import Link

__all__ = [
    "Budget",
    "Cancelled",
    "ProgramExit",
    "Remaining",
    "Tools",
    "make_done_fail",
    "to_json",
]

#: Exceptions the host may send back in a reply, rebuilt in the child by name so programs can
#: catch them (``except ToolError``) and read their fields.
_REMOTE_ERRORS: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (
        errors.ToolError,
        errors.ToolArgumentError,
        errors.BudgetExceeded,
        errors.TimeLimitExceeded,
        errors.ProviderError,
        errors.LimitExceeded,
        errors.PtcrunError,
    )
}

MAX_JSON_DEPTH = 50


class ProgramExit(BaseException):
    """Raised by ``done``/``fail``: ends the program, whatever ``except Exception`` it is in."""

    def __init__(self, status: str, value: Any) -> None:
        super().__init__(status)
        self.status = status
        self.value = value


class Cancelled(BaseException):
    """The pmap this code runs in was cancelled (timeout or fail_fast); unwind at once."""


def to_json(value: Any, *, what: str, depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data, or raise TypeError saying what cannot cross.

    Tuples, sets, deques and Counters become lists and dicts (sets sorted when they can be),
    so the usual results of a program cross without ceremony; anything else is refused.
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what} contains {value!r}, which JSON cannot carry; use None or a string")
        return value
    if kind in (list, tuple, deque):
        return [to_json(v, what=what, depth=depth + 1) for v in value]
    if kind in (set, frozenset):
        items = [to_json(v, what=what, depth=depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if kind in (dict, Counter, OrderedDict, defaultdict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                if k is None or type(k) in (int, float, bool):
                    k = str(k)
                else:
                    raise TypeError(f"{what} has a dict key of type {type(k).__name__}; keys must be str")
            out[k] = to_json(v, what=what, depth=depth + 1)
        return out
    raise TypeError(
        f"{what} must be JSON-like (str, int, float, bool, None, list, dict); "
        f"got {kind.__name__}. Convert it first, e.g. with str() or list()."
    )


def _rebuild_error(error: dict[str, Any]) -> BaseException:
    kind = error.get("type", "PtcrunError")
    message = str(error.get("message", ""))
    if kind == "Cancelled":
        return Cancelled(message)
    cls = _REMOTE_ERRORS.get(kind, errors.PtcrunError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    fields = error.get("fields") or {}
    if isinstance(fields, dict):
        exc.__dict__.update({k: v for k, v in fields.items() if not k.startswith("_")})
    return exc


class Tools:
    """``tool.<name>(...)``: each attribute is a function that calls a host tool by name."""

    __slots__ = ("_link", "_names", "_callers")

    def __init__(self, link: Link, names: list[str]) -> None:
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_names", tuple(sorted(names)))
        object.__setattr__(self, "_callers", {name: self._make_caller(name) for name in names})

    def _make_caller(self, name: str):
        link = self._link

        def call(*args: Any, **kwargs: Any) -> Any:
            scope = _scope.current()
            if scope is not None and scope.cancelled:
                raise Cancelled("the enclosing pmap was cancelled")
            message = {
                "op": "call",
                "tool": name,
                "args": to_json(list(args), what=f"the arguments of tool.{name}"),
                "kwargs": to_json(kwargs, what=f"the arguments of tool.{name}"),
                **_scope.position(),
            }
            pending = link.open_request()
            if scope is not None:
                scope.register(pending.id)
            try:
                link.request(message, pending)
                reply = pending.wait()
            finally:
                if scope is not None:
                    scope.unregister(pending.id)
            if reply.get("ok"):
                return reply.get("value")
            raise _rebuild_error(reply.get("error") or {})

        call.__name__ = name
        call.__qualname__ = f"tool.{name}"
        return call

    def __getattr__(self, name: str) -> Any:
        try:
            return self._callers[name]
        except KeyError:
            listed = ", ".join(self._names) or "none"
            raise AttributeError(f"there is no tool named {name!r}; tools: {listed}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("tool is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("tool is read-only")

    def __dir__(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"<tools: {', '.join(self._names) or 'none'}>"


class Remaining:
    """What is left to spend, as the host sees it at the moment of asking."""

    __slots__ = ("tokens", "turns", "seconds", "cost")

    def __init__(self, snapshot: dict[str, Any]) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, snapshot.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("budget.remaining is read-only")

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"Remaining({parts})"


class Budget:
    """``budget.remaining``: tokens, turns and seconds left, and cost so far (live)."""

    __slots__ = ("_link",)

    def __init__(self, link: Link) -> None:
        object.__setattr__(self, "_link", link)

    @property
    def remaining(self) -> Remaining:
        reply = self._link.request({"op": "budget"}).wait()
        return Remaining(reply.get("value") or {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("budget is read-only")

    def __repr__(self) -> str:
        return "<budget: read budget.remaining>"


def make_done_fail(record: Callable[[ProgramExit], None]):
    """Return the ``done`` and ``fail`` builtins.

    Each records its exit with ``record`` before raising it, so the program ends as it asked
    even if code in a ``finally`` block raises something else on the way out.
    """

    def done(answer: Any = None) -> None:
        """End the program with ``answer`` as the result."""
        exit = ProgramExit("done", to_json(answer, what="the answer given to done()"))
        record(exit)
        raise exit

    def fail(reason: Any = "") -> None:
        """End the program, reporting that the goal cannot be reached and why."""
        exit = ProgramExit("failed", str(reason))
        record(exit)
        raise exit

    return done, fail
