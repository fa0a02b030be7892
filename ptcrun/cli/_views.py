"""``ptcrun show``, ``tree``, ``export`` and ``view``: ways to look at a recorded run.

Each reads a transcript (a ``transcript.jsonl`` file or its run folder) and writes one view of
it; none runs anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    out = Path(args.output) if args.output else transcript.path.parent / "trace.chrome.json"
    out.write_text(text, encoding="utf-8")
    print(out)
    return EXIT_CODES["done"]


def cmd_view(args: argparse.Namespace) -> int:
    """Write the run's self-contained HTML page and print its path."""
    from ..transcript._html import write_html
    from ..transcript._transcript import Transcript

    print(write_html(Transcript.load(args.transcript), args.output))
    return EXIT_CODES["done"]
