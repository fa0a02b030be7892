"""ptcrun: a planner LLM writes small sandboxed Python programs over a corpus it never sees.

The public API is the names in ``__all__``; everything else lives in private modules (their names
start with ``_``) and may change. Names load on first use, so ``import ptcrun`` stays cheap (the
Anthropic SDK alone takes seconds to import) and the sandbox child never pulls in the host's
dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import PtcrunError

__all__ = [
    "AnthropicProvider",
    "CallRecord",
    "Chunk",
    "Estimate",
    "ItemRecord",
    "LLMRecord",
    "Limits",
    "Message",
    "OpenAICompatProvider",
    "PmapRecord",
    "Price",
    "Provider",
    "PtcrunError",
    "Reply",
    "Request",
    "Result",
    "Runtime",
    "ScriptedProvider",
    "SpanRecord",
    "StoredChunks",
    "Tool",
    "Transcript",
    "Turn",
    "TurnRecord",
    "Usage",
    "build_store",
    "chunk_by_chars",
    "chunk_by_lines",
    "chunk_by_tokens",
    "errors",
    "open_store",
    "parallel_events",
    "progress_callback",
    "tool",
    "write_store",
]

_HOMES = {
    "AnthropicProvider": ".runtime.providers._anthropic",
    "CallRecord": ".transcript._records",
    "Chunk": ".corpus._chunking",
    "Estimate": ".runtime._estimate",
    "ItemRecord": ".transcript._records",
    "LLMRecord": ".transcript._records",
    "Limits": "._limits",
    "Message": ".runtime.providers._base",
    "OpenAICompatProvider": ".runtime.providers._openai_compat",
    "PmapRecord": ".transcript._records",
    "Price": ".runtime.providers._base",
    "Provider": ".runtime.providers._base",
    "Reply": ".runtime.providers._base",
    "Request": ".runtime.providers._base",
    "Result": "._result",
    "Runtime": ".runtime._runtime",
    "ScriptedProvider": ".runtime.providers._scripted",
    "SpanRecord": ".transcript._records",
    "StoredChunks": ".corpus._store",
    "Tool": "._tools",
    "Transcript": ".transcript._transcript",
    "Turn": "._result",
    "TurnRecord": ".transcript._records",
    "Usage": "._result",
    "chunk_by_chars": ".corpus._chunking",
    "chunk_by_lines": ".corpus._chunking",
    "chunk_by_tokens": ".corpus._chunking",
    "build_store": ".corpus._writer",
    "open_store": ".corpus._store",
    "write_store": ".corpus._writer",
    "parallel_events": ".transcript._callbacks",
    "progress_callback": ".transcript._callbacks",
    "tool": "._tools",
}

if TYPE_CHECKING:
    from ._limits import Limits
    from ._result import Result, Turn, Usage
    from ._tools import Tool, tool
    from .corpus._chunking import Chunk, chunk_by_chars, chunk_by_lines, chunk_by_tokens
    from .corpus._store import StoredChunks, open_store
    from .corpus._writer import build_store, write_store
    from .runtime._estimate import Estimate
    from .runtime._runtime import Runtime
    from .runtime.providers._anthropic import AnthropicProvider
    from .runtime.providers._base import Message, Price, Provider, Reply, Request
    from .runtime.providers._openai_compat import OpenAICompatProvider
    from .runtime.providers._scripted import ScriptedProvider
    from .transcript._callbacks import parallel_events, progress_callback
    from .transcript._records import (
        CallRecord,
        ItemRecord,
        LLMRecord,
        PmapRecord,
        SpanRecord,
        TurnRecord,
    )
    from .transcript._transcript import Transcript


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ptcrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    # Tracebacks and reprs should read ptcrun.Limits, not ptcrun._limits.Limits.
    if isinstance(value, type) and value.__module__.startswith(__name__ + "."):
        _resolve_annotations(value)
        try:
            value.__module__ = __name__
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def _resolve_annotations(cls: type) -> None:
    """Evaluate a class's own annotations in the module that defines it.

    ``typing.get_type_hints`` looks a class's string annotations up in ``sys.modules[cls.__module__]``;
    once ``__module__`` reads ``ptcrun``, names such as ``Literal`` or ``Path`` would no longer be
    found there. Evaluated first, they stay resolvable for users' tools (attrs, cattrs, IDEs).
    """
    import inspect

    try:
        resolved = inspect.get_annotations(cls, eval_str=True)
    except NameError:  # a name imported only for type checkers: leave the strings as they are
        return
    try:
        cls.__annotations__ = resolved
    except (AttributeError, TypeError):
        pass


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
