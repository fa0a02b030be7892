"""What a planner's program may import: one list, read by both sides of the boundary.

The child enforces it (``child/_modules.py`` serves each of these modules through a read-only
proxy and refuses every other import); the host tells the planner about it in the system prompt.
Both import it from here, so the prompt cannot promise a module the sandbox refuses.

This module is imported by both sides, so it uses nothing outside the standard library.
"""

from __future__ import annotations

__all__ = ["ALLOWED_MODULES"]

#: The modules a program may import, sorted. ``random`` is left out: its module-level generator
#: is shared process state.
ALLOWED_MODULES: tuple[str, ...] = (
    "bisect",
    "collections",
    "datetime",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "re",
    "statistics",
    "string",
    "textwrap",
)
