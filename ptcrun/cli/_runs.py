"""``ptcrun runs``, and ``latest`` wherever a command takes a transcript.

``runs`` lists the run folders under the output folder (``--out``, ``PTCRUN_OUT``, the config
file's ``out``, else ``runs``), newest first. ``latest`` (or no transcript at all) names the
newest of them, for ``show``, ``tree``, ``export``, ``view``, ``exec --turn`` and ``exec
--replay``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ..errors import TranscriptError
from ..transcript._runs import RunSummary, latest_run, list_runs
from ._parser import EXIT_CODES

__all__ = ["LATEST", "cmd_runs", "resolve_transcript"]

#: The word that names the newest run under the output folder.
LATEST = "latest"


def resolve_transcript(given: str | None, out: str) -> str:
    """The transcript or run folder ``given`` names: ``latest`` (or nothing) is the newest run
    under ``out``, and a run's id (its folder's name, as ``ptcrun runs`` lists it) is that run
    under ``out``; a file or folder that is really named so is taken as it is.

    Raises:
        TranscriptError: ``latest`` was asked for and ``out`` holds no run; or ``given`` is a
            folder of run folders (``runs``), not one run.
    """
    if given is None or (given == LATEST and not Path(given).exists()):
        return str(latest_run(out))
    folder = Path(given)
    if not folder.exists() and os.sep not in given and (Path(out) / given).is_dir():
        return str(Path(out) / given)
    if folder.is_dir() and not (folder / "transcript.jsonl").exists() and list_runs(folder):
        raise TranscriptError(
            f"{given!r} is a folder of runs, not one run; `ptcrun runs --out {given}` lists them, "
            f"and latest --out {given} names the newest."
        )
    return given


def cmd_runs(args: argparse.Namespace) -> int:
    """List the runs under ``args.out``, newest first."""
    runs = list_runs(args.out)
    shown = runs[: args.limit] if args.limit else runs
    if args.json:
        for run in shown:
            print(json.dumps(run.as_json(), ensure_ascii=False))
        return EXIT_CODES["done"]
    if not runs:
        print(f"no runs in {args.out!r}")
        return EXIT_CODES["done"]
    rows = [["id", "when", "status", "turns", "tokens", "cost", "wall", "failed", "sub-runs", "goal"]]
    rows += [_row(run) for run in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    if len(shown) < len(runs):
        print(f"({len(runs) - len(shown):,} older runs not shown; --limit 0 shows all)")
    return EXIT_CODES["done"]


def _row(run: RunSummary) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started)) if run.started else "?"
    if run.status == "unreadable":
        return [run.id, when, run.status, "-", "-", "-", "-", "-", "-", f"({run.problem})"]
    cost = "?" if run.cost is None else f"${run.cost:.4f}"
    wall = "?" if run.seconds is None else f"{run.seconds:,.1f} s"
    failed = f"{run.failed_calls:,}/{run.calls_made:,}" if run.failed_calls else "0"
    status = run.status + (" (partial)" if run.partial else "")
    # Turns are the run's own; tokens (and cost) count its sub-runs' too.
    sub_runs = "-" if not run.sub_runs else f"{run.sub_runs:,}" + (
        f" ({run.failed_sub_runs:,} failed)" if run.failed_sub_runs else ""
    )
    goal = " ".join(run.goal.split())
    goal = goal if len(goal) <= 60 else goal[:59] + "…"
    return [run.id, when, status, str(run.turns), f"{run.tokens:,}", cost, wall, failed, sub_runs, goal]
