"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

from pathlib import Path


def write_section(heading: str, section: str, path: Path) -> None:
    """Replace the section that starts with the line ``heading`` (or add it at the end)."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = old.splitlines(keepends=True)
    try:
        begin = next(i for i, line in enumerate(lines) if line.rstrip() == heading)
    except StopIteration:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:begin]) + section + ("\n" + tail if tail else "")
    path.write_text(new, encoding="utf-8")
