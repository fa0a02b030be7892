"""What a program sees of the host, inside the child: ``tool``, ``budget``, ``done``, ``fail``.

None of these objects holds anything of value: ``tool.<name>`` sends a request over the wire,
``budget.remaining`` and ``budget.estimate`` ask the host, and ``done``/``fail`` raise
:class:`ProgramExit`, which derives from ``BaseException`` and so passes through ``except
Exception`` (the compile policy refuses bare ``except:`` and ``except BaseException``).

Values cross with ptcrun's one JSON rule (``ptcrun._json``): tool arguments and ``done()``
answers are converted here, before they leave, so the host, the transcript and a replay get
exactly what the rule made of them; a value the rule refuses raises ``NotJSON`` (a
``ValueError``) in the program. Errors come back as payloads (``ptcrun.errors.to_payload``) and
are rebuilt as the same class, message and fields, so programs can catch them
(``except ToolError``) and read ``e.tool``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import _json, errors
from .. import _protocol
from . import _exact, _scope
from ._link import FrameTooLarge, Link

__all__ = [
    "Budget",
    "Cancelled",
    "ProgramExit",
    "Remaining",
    "Tools",
    "make_done_fail",
    "too_big",
]

class ProgramExit(BaseException):
    """Raised by ``done``/``fail``: ends the program, whatever ``except Exception`` it is in."""

    def __init__(self, status: str, value: Any) -> None:
        super().__init__(status)
        self.status = status
        self.value = value


class Cancelled(BaseException):
    """The pmap this code runs in was cancelled (timeout or fail_fast); unwind at once."""


def _rebuild_error(payload: dict[str, Any] | None) -> BaseException:
    """The exception an error payload from the host stands for, as the program will catch it."""
    payload = payload or {}
    if payload.get("type") == "Cancelled":
        message = payload.get("message")
        return Cancelled(message if isinstance(message, str) else "cancelled")
    return errors.from_payload(payload)


def too_big(what: str, value: _json.JSON) -> FrameTooLarge:
    """The error for a value too big to leave the sandbox; its size is the value's own, so the
    message is the same wherever the value is sent from."""
    size = len(_json.dumps(value).encode("utf-8"))
    return FrameTooLarge(
        f"{what} too big: {size:,} bytes of JSON cannot leave the sandbox in one message (at most "
        f"{_protocol.MAX_CHILD_FRAME_BYTES:,}); send less: a summary, or the data in parts."
    )


class Tools:
    """``tool.<name>(...)``: each attribute is a function that calls a host tool by name."""

    __slots__ = ("_callers", "_link", "_names")
    _link: Link
    _names: tuple[str, ...]
    _callers: dict[str, Callable[..., Any]]

    def __init__(self, link: Link, names: list[str]) -> None:
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_names", tuple(sorted(names)))
        object.__setattr__(self, "_callers", {name: self._make_caller(name) for name in names})

    def _make_caller(self, name: str) -> Callable[..., Any]:
        link = self._link

        def call(*args: Any, **kwargs: Any) -> Any:
            scope = _scope.current()
            if scope is not None and scope.cancelled:
                raise Cancelled("the enclosing pmap was cancelled")
            call_args = [_json.to_json(a, what=f"argument {i} of tool.{name}") for i, a in enumerate(args)]
            # Keyword names are str, maybe a program's subclass: the host gets their exact text.
            call_kwargs = {
                str.__str__(k): _json.to_json(v, what=f"argument {str.__str__(k)!r} of tool.{name}")
                for k, v in kwargs.items()
            }
            record = _scope.recorder()
            if record is not None:  # a batched pmap collects its requests: nothing is sent now
                return record(name, call_args, call_kwargs)
            pending = link.open_request()
            if scope is not None:
                scope.register(pending.id)
            try:
                try:
                    link.send(_protocol.Call(pending.id, name, call_args, call_kwargs, **_scope.position()))
                except FrameTooLarge:
                    raise too_big(f"the arguments of tool.{name} are", [call_args, call_kwargs]) from None
                reply = pending.wait()
            finally:
                if scope is not None:
                    scope.unregister(pending.id)
            if reply.ok:
                return reply.value
            raise _rebuild_error(reply.error)

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

    __slots__ = ("cost", "seconds", "tokens", "turns")
    _SHOWN = ("tokens", "turns", "seconds", "cost")  # the order of the repr

    def __init__(self, snapshot: dict[str, Any]) -> None:
        for name in self._SHOWN:
            object.__setattr__(self, name, snapshot.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("budget.remaining is read-only")

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._SHOWN)
        return f"Remaining({parts})"


#: Bytes of texts sent in one ``budget.estimate`` query; more go in several, summed.
_ESTIMATE_BATCH_BYTES = _protocol.MAX_CHILD_FRAME_BYTES // 2


class Budget:
    """``budget.remaining``: tokens, turns and seconds left, and cost so far (live);
    ``budget.estimate``: what worker calls would reserve, before making them."""

    __slots__ = ("_link",)
    _link: Link

    def __init__(self, link: Link) -> None:
        object.__setattr__(self, "_link", link)

    @property
    def remaining(self) -> Remaining:
        pending = self._link.open_request()
        self._link.send(_protocol.BudgetQuery(pending.id))
        value = pending.wait().value
        return Remaining(value if isinstance(value, dict) else {})

    def estimate(self, texts: Any, instruction: Any, schema: Any = None, max_tokens: Any = None) -> int:
        """The tokens ``tool.worker(text, instruction, schema, max_tokens)`` on each of ``texts``
        would reserve from the budget, in total; nothing is sent to a worker."""
        if issubclass(type(texts), str):
            raise TypeError("budget.estimate takes a list of texts; for one text, pass [text]")
        exact: list[str] = []
        for index, item in enumerate(texts):
            if index >= _protocol.MAX_ESTIMATE_TEXTS:
                raise ValueError(
                    f"budget.estimate takes at most {_protocol.MAX_ESTIMATE_TEXTS:,} texts; "
                    "estimate a sample and scale it"
                )
            exact.append(_exact.plain_str(item, f"text {index} of budget.estimate"))
        what = _exact.plain_str(instruction, "the instruction of budget.estimate")
        shape = _json.to_json(schema, what="the schema of budget.estimate")
        cap = None if max_tokens is None else _exact.whole_number(max_tokens, "max_tokens")
        total = 0
        for batch in _batches(exact):
            pending = self._link.open_request()
            self._link.send(_protocol.EstimateQuery(pending.id, batch, what, shape, cap))
            reply = pending.wait()
            if not reply.ok:
                raise _rebuild_error(reply.error)
            value = reply.value
            if type(value) is not int:
                raise errors.ToolError("budget.estimate got no count from the host", tool="worker")
            total += value
        return total

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("budget is read-only")

    def __repr__(self) -> str:
        return "<budget: read budget.remaining>"


def _batches(texts: list[str]) -> list[list[str]]:
    """``texts`` cut into runs small enough for one frame each (at least one run)."""
    batches: list[list[str]] = [[]]
    size = 0
    for text in texts:
        length = 4 * len(text)  # UTF-8 takes at most 4 bytes a char, JSON escapes aside
        if batches[-1] and size + length > _ESTIMATE_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(text)
        size += length
    return batches


def make_done_fail(record: Callable[[ProgramExit], None]) -> tuple[Callable[..., None], Callable[..., None]]:
    """Return the ``done`` and ``fail`` builtins.

    Each records its exit with ``record`` before raising it, so the program ends as it asked
    even if code in a ``finally`` block raises something else on the way out.
    """

    def done(answer: Any = None) -> None:
        """End the program with ``answer`` as the result."""
        exit = ProgramExit("done", _json.to_json(answer, what="the answer given to done()"))
        record(exit)
        raise exit

    def fail(reason: Any = "") -> None:
        """End the program, reporting that the goal cannot be reached and why."""
        exit = ProgramExit("failed", str.__str__(str(reason)))  # exact, whatever __str__ returned
        record(exit)
        raise exit

    return done, fail
