"""What the reference programs share: the lines a planner writes to fan a worker call out over
chunks and give each chunk whose call failed one more try.

A reference program is what a capable planner would write for its task; this is the part that
several tasks write alike, kept once so that a fix to it reaches every task.
"""

from __future__ import annotations

__all__ = ["fan_out"]


def fan_out(results: str, call: str, items: str) -> str:
    """Program lines that set ``results`` to ``pmap(call, items)``, then run ``call`` once more
    on the items whose call failed (a reply that broke the schema, a call that timed out) and
    put those answers in their slots, so ``results`` stays in the order of ``items``."""
    return (
        f"{results} = pmap({call}, {items})\n"
        f"failed = [i for i, r in enumerate({results}) if isinstance(r, Failure)]\n"
        "if failed:\n"
        f"    again = pmap({call}, [{items}[i] for i in failed])\n"
        "    for i, r in zip(failed, again):\n"
        f"        {results}[i] = r"
    )
