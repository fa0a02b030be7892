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
    "Limits",
    "OpenAICompatProvider",
    "Provider",
    "PtcrunError",
    "Result",
    "Runtime",
    "ScriptedProvider",
    "Transcript",
    "Turn",
    "Usage",
    "chunk_by_chars",
    "chunk_by_lines",
    "chunk_by_tokens",
    "errors",
    "parallel_events",
    "progress_callback",
    "tool",
]

_HOMES = {
    "AnthropicProvider": ".runtime.providers._anthropic",
    "Limits": "._limits",
    "OpenAICompatProvider": ".runtime.providers._openai_compat",
    "Provider": ".runtime.providers._base",
    "Result": "._result",
    "Runtime": ".runtime._runtime",
    "ScriptedProvider": ".runtime.providers._scripted",
    "Transcript": ".transcript._transcript",
    "Turn": "._result",
    "Usage": "._result",
    "chunk_by_chars": ".corpus._chunking",
    "chunk_by_lines": ".corpus._chunking",
    "chunk_by_tokens": ".corpus._chunking",
    "parallel_events": ".transcript._progress",
    "progress_callback": ".transcript._progress",
    "tool": "._tools",
}

if TYPE_CHECKING:
    from ._limits import Limits
    from ._result import Result, Turn, Usage
    from ._tools import tool
    from .corpus._chunking import chunk_by_chars, chunk_by_lines, chunk_by_tokens
    from .transcript._progress import parallel_events, progress_callback
    from .runtime._runtime import Runtime
    from .transcript._transcript import Transcript
    from .runtime.providers._anthropic import AnthropicProvider
    from .runtime.providers._base import Provider
    from .runtime.providers._openai_compat import OpenAICompatProvider
    from .runtime.providers._scripted import ScriptedProvider


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ptcrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    # Tracebacks and reprs should read ptcrun.Limits, not ptcrun._limits.Limits.
    if isinstance(value, type) and value.__module__.startswith(__name__ + "."):
        try:
            value.__module__ = __name__
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
