"""``ptcrun show``, ``tree``, ``export`` and ``view``: ways to look at a recorded run.

Each reads a transcript (a ``transcript.jsonl`` file or its run folder) and writes one view of
it; none runs anything. ``export`` and ``view`` write a file: ``-o`` may name a folder that does
not exist yet (it is made, as ``mkdir -p`` would) or an existing folder (the file gets its
default name there); a path that cannot be written is a ``ConfigError`` naming ``-o``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..transcript._events import os_error_reason
from ._parser import EXIT_CODES

__all__ = ["cmd_export", "cmd_show", "cmd_tree", "cmd_view"]


def cmd_show(args: argparse.Namespace) -> int:
    """Print each turn (or only ``--turn N``), with ``--calls`` each pmap's calls."""
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_show

    sys.stdout.write(render_show(Transcript.load(args.transcript), turn=args.turn, calls=args.calls))
    return EXIT_CODES["done"]


def cmd_tree(args: argparse.Namespace) -> int:
    """Print the span tree, the slowest calls marked."""
    from ..transcript._transcript import Transcript
    from ..transcript._views import render_tree

    sys.stdout.write(render_tree(Transcript.load(args.transcript)))
    return EXIT_CODES["done"]


def cmd_export(args: argparse.Namespace) -> int:
    """Write Chrome/Perfetto trace events (to the run folder, a file or stdout)."""
    from ..transcript._chrome import chrome_trace_json
    from ..transcript._transcript import Transcript

    transcript = Transcript.load(args.transcript)
    text = chrome_trace_json(transcript)
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_CODES["done"]
    assert transcript.path is not None  # loaded from a file
    out = _output(args.output, transcript.path.parent, "trace.chrome.json")
    _write(out, args.output, lambda: out.write_text(text, encoding="utf-8"))
    print(out)
    return EXIT_CODES["done"]


def cmd_view(args: argparse.Namespace) -> int:
    """Write the run's self-contained HTML page and print its path."""
    from ..transcript._html import write_html
    from ..transcript._transcript import Transcript

    transcript = Transcript.load(args.transcript)
    assert transcript.path is not None  # loaded from a file
    out = _output(args.output, transcript.path.parent, "timeline.html")
    _write(out, args.output, lambda: write_html(transcript, out))
    print(out)
    return EXIT_CODES["done"]


def _output(given: str | None, run_folder: Path, name: str) -> Path:
    """Where ``-o`` says to write: the default name in the run folder, or in a folder given."""
    if not given:
        return run_folder / name
    out = Path(given)
    return out / name if out.is_dir() else out


def _write(out: Path, given: str | None, write: Callable[[], object]) -> None:
    """Make the file's folder when missing, then write it; a failure names ``-o`` and the fix."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as exc:
        flag = f"-o {given!r}" if given else "the run folder"
        raise ConfigError(
            f"cannot write {str(out)!r} ({flag}): {os_error_reason(exc)} ({exc.strerror or exc}); "
            f"pass -o a file path in a folder you can write to."
        ) from None
