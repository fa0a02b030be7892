"""User tools: plain Python callables the planner's programs reach as ``tool.<name>(...)``.

A program in the sandbox asks the host to run a tool; only JSON-like values cross that boundary
(str, int, float, bool, None, list, dict with str keys). The host therefore checks every request
against the tool's signature and type hints *before* the tool runs, so a tool never sees an
argument its author did not declare, and a program gets one plain sentence saying what it did
wrong. Whatever the tool returns is converted by ptcrun's one JSON rule (``ptcrun._json``: tuples
and sets become lists, int keys text, attrs and dataclass instances dicts), or the call fails
with a ToolError saying where in the value the problem is, before the call is recorded.

A tool is any function, sync or async: its name, signature and docstring become its
documentation in the planner's prompt (:meth:`Tool.describe`). The optional :func:`tool`
decorator only renames it or replaces its description.

Supported type hints, checked recursively: ``str``, ``int`` (``bool`` is not an int here),
``float`` (an int is accepted), ``bool``, ``None``, ``list``/``list[X]``/``Sequence[X]``,
``dict``/``dict[str, X]``/``Mapping[str, X]``, ``tuple[...]`` (a list is accepted and passed on
as a tuple), ``X | None``/``Optional[X]``, other unions, ``Literal[...]`` of scalars, and ``Any``,
``object`` or no hint (any JSON value). A hint outside this list is refused when the tool is
registered, since no value that crosses the boundary could ever match it.

Checking values against hints lives in ``_hints.py`` (answer schemas use it too). This module is
over the usual 400 lines because signature rendering, validation and result conversion are one
concept: the tool boundary.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import inspect
import keyword
import os
import reprlib
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_type_hints, overload

import attrs
import trio

from ._hints import Mismatch, coerce, type_name, unsupported
from ._json import JSON, NotJSON, to_json
from .errors import ConfigError, PtcrunError, ToolArgumentError, ToolError

__all__ = [
    "JSON",
    "RESERVED_TOOL_NAMES",
    "Tool",
    "check_documented",
    "collect_tools",
    "describe_exception",
    "load_tools_file",
    "tool",
]

#: Names user tools may not take: the runtime's own tools, by what they are.
_BUILT_IN = {"agent": "sub-run", "worker": "worker LLM"}
RESERVED_TOOL_NAMES = frozenset(_BUILT_IN)

_P = inspect.Parameter
_META = "__ptcrun_tool__"
_JSON_TYPES = "str, int, float, bool, None, lists and dicts with str keys"

# trio renamed `cancellable` to `abandon_on_cancel` (0.23) and warns on the old name; speak
# whichever the installed trio understands.
_ABANDON = (
    "abandon_on_cancel"
    if "abandon_on_cancel" in inspect.signature(trio.to_thread.run_sync).parameters
    else "cancellable"
)

_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 60
_shown.maxlist = _shown.maxdict = 6


def _show(value: object) -> str:
    """A value as a message shows it: its repr, cut so one huge argument cannot flood the text."""
    return _shown.repr(value)


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


#: What a tool may raise that is not its own failure: trio's cancellation (a clock or a cancel
#: request of ours) and Ctrl-C, which must stay the interrupt it is.
_OURS = (trio.Cancelled, KeyboardInterrupt)

#: The most characters of an exception's text a message repeats.
_MAX_DETAIL_CHARS = 1_000


def describe_exception(exc: BaseException) -> str:
    """An exception as a message repeats it: ``Type: text``, never raising.

    An exception whose ``__str__`` itself raises still gets a description, saying so; a long
    text is cut; an exception group names its first few exceptions; ``SystemExit`` says what
    usually raises it.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except _OURS:
        raise
    except BaseException as broken:
        return f"<{name}; its message could not be rendered: {type(broken).__name__} in its __str__>"
    if len(text) > _MAX_DETAIL_CHARS:
        text = f"{text[:_MAX_DETAIL_CHARS]}... ({len(text) - _MAX_DETAIL_CHARS:,} more characters)"
    detail = f"{name}: {text}" if text else name
    if isinstance(exc, SystemExit):
        detail += " (the tool called sys.exit(), as argparse does on a bad argument)"
    if isinstance(exc, BaseExceptionGroup):
        inner = [describe_exception(e) for e in exc.exceptions[:3]]
        detail += ": " + "; ".join(inner) + ("; ..." if len(exc.exceptions) > 3 else "")
    return detail


# --- the decorator -----------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])


@overload
def tool(fn: _F, /) -> _F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[_F], _F]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Mark a function as a tool, optionally renaming it or replacing its description.

    Works bare (``@tool``) and with arguments (``@tool(name="lookup")``). The function is
    returned unchanged and stays callable as before; the name and description are recorded on
    it and read by :meth:`Tool.from_function`. Decorating is never required: any function
    passed to ``Runtime(tools=...)`` is a tool.

    Raises:
        ConfigError: ``name`` is not a valid tool name.
    """
    if name is not None:
        _check_name(name)

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise ConfigError(f"@tool decorates functions; got {_show(f)} ({_kind(f)}).")
        setattr(f, _META, (name, description))
        return f

    return mark if fn is None else mark(fn)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(
            f"tool name {_show(name)} is not a Python identifier, so a program cannot write "
            f"tool.<name>; pass tool(name=...) with letters, digits and underscores."
        )
    if name.startswith("_"):
        raise ConfigError(
            f"tool name {name!r} starts with '_', which programs in the sandbox cannot reach; "
            f"rename it or pass tool(name=...)."
        )
    return name


# --- results -----------------------------------------------------------------------------------


_AWAITABLE = object()  # what a tool returned instead of a value: a coroutine or other awaitable


def _refuse_awaitable(result: Any) -> Any:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited on purpose; closing it avoids a RuntimeWarning
        return _AWAITABLE
    return result


def _call_sync(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a sync tool in its worker thread (trio refuses a coroutine result with a vaguer error)."""
    return _refuse_awaitable(fn(*args, **kwargs))


# --- the tool ----------------------------------------------------------------------------------


def _hint_source(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The object whose annotations and docstring describe ``fn``'s parameters."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn):
        return fn
    return type(fn).__call__  # a callable instance: its __call__ carries the hints


def _docstring(fn: Callable[..., Any]) -> str:
    """The callable's own docstring, cleaned; never one inherited from a base class."""
    source = _hint_source(fn)
    doc = source.__doc__
    if source is not fn and not isinstance(fn, functools.partial):
        # A callable object: its class tells what it does, its __call__ perhaps how.
        doc = type(fn).__dict__.get("__doc__") or type(fn).__call__.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _resolve_hints(tool: Tool) -> dict[str, Any]:
    try:
        return get_type_hints(_hint_source(tool.fn))
    except Exception as exc:
        raise ConfigError(
            f"cannot resolve the type hints of tool {tool.name!r}: {type(exc).__name__}: {exc}; "
            f"define or import the types it names before registering it."
        ) from exc


@attrs.frozen
class Tool:
    """One user tool: a callable, its name, its documentation, and how to check its arguments.

    Build it with :meth:`from_function` (which checks the name and hints); :func:`collect_tools`
    does that for every callable passed to a run. A ``Tool`` is immutable and may be shared by
    many concurrent calls.
    """

    name: str
    description: str
    fn: Callable[..., Any] = attrs.field(repr=False)
    signature: inspect.Signature = attrs.field(repr=False)
    is_async: bool
    #: Resolved type hints by parameter name (and ``"return"``).
    hints: Mapping[str, Any] = attrs.field(
        default=attrs.Factory(_resolve_hints, takes_self=True), repr=False, eq=False
    )
    #: Whether a call holds a slot of the run's concurrency limit and runs under the call clock.
    #: False only for the runtime's ``tool.agent``: a sub-run waits on calls of its own, which
    #: take their own slots, and its own clocks bound it.
    holds_slot: bool = True

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """Make a tool of a function, bound method, callable object or ``functools.partial``.

        The name is, in order: ``name``, the ``@tool(name=...)`` override, the function's
        ``__name__``. The description likewise comes from ``description``, the decorator, or
        the cleaned docstring. ``*args`` and ``**kwargs`` are allowed: each extra value is
        checked against their hint.

        Raises:
            ConfigError: ``fn`` is not callable, is a class or an async generator; the name is
                not an identifier or starts with ``_``; the signature cannot be read; a type
                hint cannot be resolved or no JSON value could match it.
        """
        if isinstance(fn, Tool):
            return attrs.evolve(
                fn,
                name=_check_name(fn.name if name is None else name),
                description=fn.description if description is None else description,
            )
        if not callable(fn):
            raise ConfigError(
                f"a tool must be a function; got {_show(fn)} ({_kind(fn)}). Pass a function."
            )
        meta_name, meta_description = getattr(fn, _META, (None, None))
        source = _hint_source(fn)
        if name is None:
            name = meta_name or getattr(fn, "__name__", None) or getattr(source, "__name__", None)
        if name is None or name == "__call__":
            raise ConfigError(
                f"the callable {_show(fn)} has no __name__; pass Tool.from_function(fn, name=...) "
                f"or a dict of names to tools."
            )
        _check_name(name)
        if isinstance(fn, type):
            raise ConfigError(f"tool {name!r} is a class; register a function that uses it instead.")
        if inspect.isasyncgenfunction(source):
            raise ConfigError(
                f"tool {name!r} is an async generator; a tool returns one value. Collect the items "
                f"into a list and return it."
            )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the signature of tool {name!r} ({exc}); wrap it in a def with named "
                f"parameters."
            ) from exc
        if description is None:
            description = meta_description if meta_description is not None else _docstring(fn)
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(source)
        made = cls(name, description or "", fn, signature, is_async)
        for param in signature.parameters.values():
            hint = made.hints.get(param.name, Any)
            if (bad := unsupported(hint)) is not None:
                raise ConfigError(
                    f"tool {name!r} parameter {param.name!r} is typed {type_name(hint)}, but "
                    f"{type_name(bad)} cannot cross the sandbox boundary; type it with "
                    f"{_JSON_TYPES} (or list[...], dict[str, ...], tuple[...], Literal[...], "
                    f"X | None, Any)."
                )
        return made

    def parameters_text(self) -> str:
        """The parameter list as a program would read it: ``(order_id: str, limit: int = 10)``."""
        parts: list[str] = []
        star_written = False
        params = list(self.signature.parameters.values())
        for i, p in enumerate(params):
            if p.kind is _P.KEYWORD_ONLY and not star_written:
                parts.append("*")
                star_written = True
            prefix = "*" if p.kind is _P.VAR_POSITIONAL else "**" if p.kind is _P.VAR_KEYWORD else ""
            star_written |= p.kind is _P.VAR_POSITIONAL
            text = prefix + p.name
            if p.name in self.hints:
                text += f": {type_name(self.hints[p.name])}"
            if p.default is not _P.empty:
                text += f" = {p.default!r}" if p.name in self.hints else f"={p.default!r}"
            parts.append(text)
            nxt = params[i + 1].kind if i + 1 < len(params) else None
            if p.kind is _P.POSITIONAL_ONLY and nxt is not _P.POSITIONAL_ONLY:
                parts.append("/")
        return f"({', '.join(parts)})"

    def describe(self) -> str:
        """Document the tool for the planner: its call line, then its description indented.

        Example: ``tool.lookup(order_id: str, limit: int = 10) -> dict`` followed by
        ``    Look up an order by id.``
        """
        line = f"tool.{self.name}{self.parameters_text()}"
        if "return" in self.hints:
            line += f" -> {type_name(self.hints['return'])}"
        if not self.description:
            return line
        body = "\n".join(f"    {t}" if t else "" for t in self.description.splitlines())
        return f"{line}\n{body}"

    def _argument_error(self, what: str) -> ToolArgumentError:
        return ToolArgumentError(
            f"tool {self.name!r} {what}; it takes {self.parameters_text()}.", tool=self.name
        )

    def _check_shape(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise a ToolArgumentError for missing, unexpected or doubled arguments."""
        params = list(self.signature.parameters.values())
        positional = [p for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
        has_var_pos = any(p.kind is _P.VAR_POSITIONAL for p in params)
        has_var_kw = any(p.kind is _P.VAR_KEYWORD for p in params)
        if len(args) > len(positional) and not has_var_pos:
            n = len(args)
            raise self._argument_error(f"got {n} positional argument{'s' * (n != 1)}")
        by_name = {p.name: p for p in params if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)}
        unexpected = [
            k for k in kwargs
            if (k not in by_name or by_name[k].kind is _P.POSITIONAL_ONLY) and not has_var_kw
        ]
        if unexpected:
            names = ", ".join(_show(k) for k in unexpected)
            raise self._argument_error(
                f"got unexpected argument{'s' * (len(unexpected) != 1)} {names}"
            )
        filled = {p.name for p in positional[: len(args)]}
        twice = [k for k in kwargs if k in filled and by_name[k].kind is not _P.POSITIONAL_ONLY]
        if twice:
            raise self._argument_error(f"got argument {twice[0]!r} twice, by position and by name")
        missing = [
            p.name for p in by_name.values()
            if p.default is _P.empty and p.name not in filled and p.name not in kwargs
        ]
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise self._argument_error(f"is missing argument{'s' * (len(missing) != 1)} {names}")

    def validate(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        """Check a call's arguments against the signature and hints; the tool does not run.

        Returns the bound arguments, with lists turned into tuples where a tuple is hinted.
        A parameter whose default is ``None`` also accepts ``None``.

        Raises:
            ToolArgumentError: an argument is missing, unexpected, given twice, not JSON-like,
                or does not match its hint; the message names the argument and what it got.
        """
        self._check_shape(args, kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:  # a shape _check_shape did not foresee; say it plainly
            raise self._argument_error(f"cannot take these arguments ({exc})") from None
        for name, value in bound.arguments.items():
            param = self.signature.parameters[name]
            hint = self.hints.get(name, Any)
            coerced = value
            try:
                if param.kind is _P.VAR_POSITIONAL:
                    coerced = tuple(coerce(v, hint, f"{name}[{i}]") for i, v in enumerate(value))
                elif param.kind is _P.VAR_KEYWORD:
                    coerced = {k: coerce(v, hint, k) for k, v in value.items()}
                elif not (value is None and param.default is None):
                    coerced = coerce(value, hint, name)
            except Mismatch as miss:
                raise ToolArgumentError(
                    f"tool {self.name!r} takes {self.parameters_text()}; got "
                    f"{miss.path}={_show(miss.value)} ({_kind(miss.value)}).",
                    tool=self.name,
                ) from None
            bound.arguments[name] = coerced
        return bound

    async def call(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        limiter: trio.CapacityLimiter | None = None,
    ) -> JSON:
        """Validate the arguments, run the tool, and return its result as a JSON-like value.

        Async tools are awaited in the calling task. Sync tools run in a worker thread that
        borrows a token from ``limiter`` (trio's default thread limiter when None), so slow
        blocking tools cannot starve the event loop. Do not pass a limiter whose token the
        calling task already holds for this call: the thread takes a token of its own.

        Cancellation: ``trio.Cancelled`` and ``KeyboardInterrupt`` always propagate unchanged
        (alone or in an exception group); anything else the tool raises, ``BaseException``
        subclasses such as ``SystemExit`` included, becomes a ``ToolError``. A cancelled sync tool
        returns at once, but Python threads cannot be killed: the abandoned thread may still
        run to its end in the background (its result is discarded, and it keeps its limiter
        token until then). Tools with side effects should be written with that in mind.

        Raises:
            ToolArgumentError: the arguments do not match; the tool did not run.
            ToolError: the tool raised (the exception is ``__cause__``) or returned a value
                that ptcrun's JSON rule refuses (NaN, a set of mixed types, a tuple key...).
        """
        bound = self.validate(args, kwargs)
        try:
            if self.is_async:
                result = _refuse_awaitable(await self.fn(*bound.args, **bound.kwargs))
            else:
                run = functools.partial(_call_sync, self.fn, bound.args, bound.kwargs)
                abandon: dict[str, Any] = {_ABANDON: True}
                result = await trio.to_thread.run_sync(run, limiter=limiter, **abandon)
        except PtcrunError:
            # ptcrun's own errors raised inside a tool (the worker's BudgetExceeded, a nested
            # ToolError) already say what happened and which setting to raise: keep them.
            raise
        except _OURS:
            raise
        except BaseExceptionGroup as group:
            if group.subgroup(_OURS) is not None:
                raise  # a cancel scope of ours, or Ctrl-C, must see its own exception
            detail = describe_exception(group)
            raise ToolError(f"tool {self.name!r} failed: {detail}", tool=self.name) from group
        except BaseException as exc:
            # Anything else a tool raises is that call's failure, even a BaseException: a tool
            # that calls sys.exit() (as argparse does on a bad argument) must not end the run.
            detail = describe_exception(exc)
            raise ToolError(f"tool {self.name!r} failed: {detail}", tool=self.name) from exc
        if result is _AWAITABLE:
            raise ToolError(
                f"tool {self.name!r} returned an awaitable instead of a value; declare the tool "
                f"with async def and await inside it.",
                tool=self.name,
            )
        try:
            return to_json(result, what=f"the result of tool {self.name!r}")
        except NotJSON as bad:
            raise ToolError(f"{bad}.", tool=self.name) from None


# --- registries --------------------------------------------------------------------------------


def collect_tools(
    tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool] | None,
    *,
    allow_reserved: bool = False,
) -> dict[str, Tool]:
    """Turn what the user passed as ``tools`` into a registry of :class:`Tool` by name.

    ``tools`` is a list of callables (each named by :meth:`Tool.from_function`), a dict of
    name to callable (the key is the name), or None for no tools. The registry keeps the order
    given. ``allow_reserved`` lets the runtime register its own ``worker``.

    Raises:
        ConfigError: a single callable instead of a list, an item that is not callable, two
            tools with the same name, a reserved name, or an invalid name.
    """
    if tools is None:
        return {}
    if (
        isinstance(tools, (str, bytes, Tool))
        or (callable(tools) and not isinstance(tools, Mapping))
        or not isinstance(tools, Iterable)
    ):
        label = getattr(tools, "__name__", None) or getattr(tools, "name", None) or "tool"
        raise ConfigError(
            f"tools must be a list or a dict of functions; got one {_kind(tools)}. "
            f"Pass tools=[{label}]."
        )
    if isinstance(tools, Mapping):
        made = [Tool.from_function(fn, name=_check_name(key)) for key, fn in tools.items()]
    else:
        made = []
        for i, fn in enumerate(tools):
            if not (callable(fn) or isinstance(fn, Tool)):
                raise ConfigError(
                    f"tools must be functions; item {i} is {_show(fn)} ({_kind(fn)}). "
                    f"Pass a function or a Tool."
                )
            made.append(Tool.from_function(fn))
    registry: dict[str, Tool] = {}
    for t in made:
        if t.name in RESERVED_TOOL_NAMES and not allow_reserved:
            raise ConfigError(
                f"tool name {t.name!r} is reserved for the built-in {_BUILT_IN[t.name]} "
                f"(tool.{t.name}); "
                f"rename your tool, e.g. with tool(name=...)."
            )
        if t.name in registry:
            raise ConfigError(
                f"two tools are named {t.name!r}; rename one with tool(name=...) or pass a dict "
                f"of names to tools."
            )
        registry[t.name] = t
    return registry


def _undocumented(t: Tool) -> list[str]:
    """What the planner will not be told about ``t``: its docstring, hints it lacks."""
    missing = [] if t.description.strip() else ["a docstring"]
    unhinted = [p.name for p in t.signature.parameters.values() if p.name not in t.hints]
    if unhinted:
        missing.append(f"type hints for {', '.join(unhinted)}")
    if "return" not in t.hints:
        missing.append("a return type hint")
    return missing


def check_documented(tools: Mapping[str, Tool], *, strict: bool = False) -> None:
    """Warn about each tool the planner would have to guess at: one with no docstring, or a
    parameter or return value with no type hint.

    The planner knows a tool only by the line and text :meth:`Tool.describe` writes into its
    prompt; with neither hints nor a docstring that is ``tool.fx_rate(currency)``, and it must
    guess what to pass, what comes back and when to call it. A wrong guess costs a turn.

    Raises:
        ConfigError: under ``strict``, for the first such tool, instead of a warning.
    """
    for t in tools.values():
        missing = _undocumented(t)
        if not missing:
            continue
        message = (
            f"tool {t.name!r} has no {' and no '.join(m.removeprefix('a ') for m in missing)}; "
            f"the planner will see only `{t.describe().splitlines()[0]}` and must guess what it "
            f"does, what to pass and what it returns. Add a docstring and type hints."
        )
        if strict:
            raise ConfigError(message + " (strict_tools=True refuses undocumented tools.)")
        warnings.warn(message, UserWarning, stacklevel=3)


def load_tools_file(path: str | os.PathLike[str]) -> dict[str, Tool]:
    """Load the tools defined in a Python file: what the CLI's ``--tools`` option reads.

    The file is imported as a fresh module. Its tools are the names in its ``__all__`` when it
    has one; otherwise every public module-level function (and :class:`Tool`) defined in the file
    itself: not imported ones, not names that start with ``_``. The file's own directory is not
    put on ``sys.path``.

    Raises:
        ConfigError: the file does not exist, fails to import (the message includes the
            exception), or defines no tools; or :func:`collect_tools` refuses its tools.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"tools file '{file}' does not exist; pass the path of a Python file that defines "
            f"the tool functions."
        )
    digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:16]
    module_name = f"_ptcrun_tools_{digest}"
    loader = importlib.machinery.SourceFileLoader(module_name, str(file))
    spec = importlib.util.spec_from_file_location(module_name, file, loader=loader)
    assert spec is not None  # an explicit loader always yields a spec
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: dataclasses and typing look their module up in sys.modules.
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"tools file '{file}' failed to import: {describe_exception(exc)}. Fix the file so "
            f"that it imports without errors."
        ) from exc
    namespace = vars(module)
    if "__all__" in namespace:
        chosen = []
        for name in namespace["__all__"]:
            if name not in namespace:
                raise ConfigError(
                    f"tools file '{file}' lists {name!r} in __all__ but does not define it; "
                    f"define it or remove it from __all__."
                )
            chosen.append(namespace[name])
    else:
        chosen = [
            obj for name, obj in namespace.items()
            if not name.startswith("_") and _defined_in(obj, module_name)
        ]
    if not chosen:
        raise ConfigError(
            f"tools file '{file}' defines no tools; define at least one function whose name "
            f"does not start with '_'."
        )
    return collect_tools(chosen)


def _defined_in(obj: object, module_name: str) -> bool:
    if isinstance(obj, Tool):
        obj = obj.fn
    return inspect.isfunction(obj) and obj.__module__ == module_name
