"""What a planner's program may import: one list, read by both sides of the boundary.

The child enforces it (``child/_modules.py`` serves each of these modules through a read-only
proxy and refuses every other import); the host tells the planner about it in the system prompt.
Both import it from here, so the prompt cannot promise a module the sandbox refuses.

This module is imported by both sides, so it uses nothing outside the standard library.
"""

from __future__ import annotations

__all__ = ["ALLOWED_MODULES"]

#: The modules a program may import, sorted.
ALLOWED_MODULES: tuple[str, ...] = (
    "base64",
    "bisect",
    "collections",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "io",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "unicodedata",
)
