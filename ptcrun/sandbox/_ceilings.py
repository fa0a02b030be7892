"""The child's lifetime CPU ceiling: set by the child, read by the host when the child dies.

Both sides import it from here, so the host's account of a CPU kill can never drift from the
limit the child really set. Standard library only: the child imports it.
"""

from __future__ import annotations

__all__ = ["lifetime_cpu_seconds"]


def lifetime_cpu_seconds(sandbox_cpu_seconds: float) -> float:
    """The soft ``RLIMIT_CPU`` of a child over its whole life: twenty programs' worth of
    ``Limits.sandbox_cpu_seconds``, at least 600 s. Each program gets its own lower limit."""
    return max(sandbox_cpu_seconds * 20, 600)
