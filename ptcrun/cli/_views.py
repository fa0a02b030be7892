"""``ptcrun show``, ``tree``, ``export`` and ``view``: ways to look at a recorded run.

Each reads a transcript (a ``transcript.jsonl`` file, its run folder, or ``latest``: the newest
run under ``--out``) and writes one view of it; none runs anything. ``export`` and ``view``
write a file: ``-o`` may name a folder that does not exist yet (it is made, as ``mkdir -p``
would) or an existing folder (the file gets its default name there); a path that cannot be
written is a ``ConfigError`` naming ``-o``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..transcript._events import os_error_reason
from ._parser import EXIT_CODES, in_cli_words
from ._runs import resolve_transcript

if TYPE_CHECKING:
    from ..transcript._transcript import Transcript

__all__ = ["cmd_export", "cmd_show", "cmd_tree", "cmd_view"]


def _load(args: argparse.Namespace) -> Transcript:
    from ..transcript._transcript import Transcript

    return Transcript.load(resolve_transcript(args.transcript, args.out))


def cmd_show(args: argparse.Namespace) -> int:
    """Print each turn (or only ``--turn N``), with ``--calls`` each pmap's calls and with
    ``--prompt`` the planner's whole prompt; error messages name the flags, not ``Limits``."""
    from ..transcript._views import render_show

    transcript = _load(args)
    turn = None
    if args.turn is not None:
        call, turn = args.turn
        if call:  # a sub-run's turn: shown under the sub-run's own header
            transcript = transcript.sub_run(call)
    sys.stdout.write(render_show(transcript, turn=turn, calls=args.calls, prompt=args.prompt,
                                 words=in_cli_words))
    return EXIT_CODES["done"]


def cmd_tree(args: argparse.Namespace) -> int:
    """Print the span tree (``--depth N`` levels of it), the slowest calls marked."""
    from ..transcript._views import render_tree

    sys.stdout.write(render_tree(_load(args), depth=args.depth))
    return EXIT_CODES["done"]


def cmd_export(args: argparse.Namespace) -> int:
    """Write Chrome/Perfetto trace events, or with ``--format otlp-json`` the run's OpenTelemetry
    spans as OTLP/JSON (to the run folder, a file or stdout)."""
    from ..telemetry._otlp import otlp_json_text
    from ..transcript._chrome import chrome_trace_json

    transcript = _load(args)
    if args.format == "otlp-json":
        text, name = otlp_json_text(transcript), "trace.otlp.json"
    else:
        text, name = chrome_trace_json(transcript), "trace.chrome.json"
    if args.output == "-":
        sys.stdout.write(text + "\n")
        return EXIT_CODES["done"]
    assert transcript.path is not None  # loaded from a file
    out = _output(args.output, transcript.path.parent, name)
    _write(out, args.output, lambda: out.write_text(text, encoding="utf-8"))
    print(out)
    return EXIT_CODES["done"]


def cmd_view(args: argparse.Namespace) -> int:
    """Write the run's self-contained HTML page and print its path; with ``--open``, open it in
    the user's browser (``webbrowser``: ``$BROWSER``, else the system's)."""
    from ..transcript._html import write_html

    transcript = _load(args)
    assert transcript.path is not None  # loaded from a file
    out = _output(args.output, transcript.path.parent, "timeline.html")
    _write(out, args.output, lambda: write_html(transcript, out, words=in_cli_words))
    print(out)
    if args.open:
        import webbrowser

        if not webbrowser.open(out.resolve().as_uri()):
            print(f"ptcrun: warning: no web browser could be opened; open {out} yourself "
                  f"(set BROWSER to choose one).", file=sys.stderr)
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
