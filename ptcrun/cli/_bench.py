"""``ptcrun bench``: run the task suite, list its tasks, compare two results files.

``bench run`` prints a line per task as it finishes (on standard error), then the Markdown table
(on standard output), and writes the JSON results file. It exits 0 when every task passed and 1
(the ``failed`` code) when some did not: the suite ran, and its answer is that some tasks failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..transcript._events import os_error_reason
from ._parser import EXIT_CODES

if TYPE_CHECKING:
    from ..bench._results import TaskResult

__all__ = ["add_bench_parser", "cmd_bench"]

DEFAULT_PLANNER = "anthropic:claude-sonnet-4-6"
_SIZE = re.compile(r"^(?:2\^(\d+)|(\d+)([km]?))$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20}


def parse_sizes(text: str) -> list[int]:
    """``8k,64k,1m`` (k is 1,024 tokens, m 1,048,576), ``2^13`` or plain token counts."""
    sizes = []
    for part in text.split(","):
        match = _SIZE.match(part.strip())
        size = 0
        if match is not None:
            if match.group(1) is not None:
                size = 1 << min(int(match.group(1)), 40)
            else:
                size = int(match.group(2)) * _UNITS[match.group(3).lower()]
        if size < 1024:
            raise argparse.ArgumentTypeError(
                f"sizes are tokens, at least 1k: 8k, 64k, 1m, 2^13 or 8192, several joined by "
                f"commas; got {part.strip()!r}"
            )
        sizes.append(size)
    return sizes


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None


def _concurrency(text: str) -> int:
    value = _seed(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {text!r}")
    return value


def add_bench_parser(sub: Any) -> None:
    """Add ``bench`` and its subcommands to the ``ptcrun`` parser's subparsers."""
    bench = sub.add_parser(
        "bench",
        help="run the task suite against a planner and worker; compare results",
        description="A suite of tasks with generated corpora, scorers and reference solutions: "
        "run it against models, list its tasks, compare two results files.",
    )
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH_COMMAND")

    run = commands.add_parser(
        "run",
        help="run tasks and print a table of results",
        description="Run the tasks against the planner and worker (or offline, with --reference); "
        "print a line per task, then a Markdown table; write a JSON results file. Exits 0 when "
        f"every task passed, {EXIT_CODES['failed']} when some did not.",
    )
    who = run.add_mutually_exclusive_group()
    who.add_argument("--planner", metavar="PROVIDER",
                     help=f"the planner model (default {DEFAULT_PLANNER})")
    who.add_argument("--reference", action="store_true",
                     help="run each task's reference solution as the planner (offline, no key needed)")
    run.add_argument("--worker", metavar="PROVIDER",
                     help="the model behind tool.worker, or `rules` for each task's rule-based worker "
                     "(default: the planner's model; with --reference, rules)")
    run.add_argument("--tasks", metavar="GLOB", action="append",
                     help="only the tasks whose name matches (niah-*, pairs-*); repeat or join with commas")
    run.add_argument("--size", type=parse_sizes, default=[1 << 13], metavar="SIZES",
                     help="corpus sizes in tokens: 8k, 64k, 1m, 2^20, or several joined by commas "
                     "(default 8k)")
    run.add_argument("--seed", type=_seed, default=0, metavar="N", help="the corpora's seed (default 0)")
    run.add_argument("--out", metavar="FILE.json",
                     help="the results file (default runs/bench-<time>.json)")
    run.add_argument("--markdown", metavar="FILE.md", help="also write the table to this file")
    run.add_argument("--transcripts", default="runs", metavar="DIR",
                     help="where each task's run folder is made (default runs)")
    run.add_argument("--concurrency", type=_concurrency, metavar="N",
                     help="worker and tool calls in flight at once (default 16)")
    run.add_argument("--quiet", action="store_true", help="no line per task on standard error")

    listing = commands.add_parser("list", help="list the tasks", description="List the suite's tasks.")
    listing.add_argument("--json", action="store_true", help="one JSON object per task, one per line")

    compare = commands.add_parser(
        "compare",
        help="compare two results files",
        description="Print a Markdown comparison of two results files, task by task and in total.",
    )
    compare.add_argument("a", metavar="A.json", help="the first results file (the baseline)")
    compare.add_argument("b", metavar="B.json", help="the second results file")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``bench run``, ``bench list`` or ``bench compare``."""
    command = {"run": _run, "list": _list, "compare": _compare}[args.bench_command]
    return command(args)


def _list(args: argparse.Namespace) -> int:
    from ..bench import TASKS

    if args.json:
        for task in TASKS:
            print(json.dumps({
                "name": task.name, "family": task.family, "summary": task.summary,
                "inspired_by": task.inspired_by, "scales": task.scales,
            }))
        return EXIT_CODES["done"]
    width = max(len(t.name) for t in TASKS)
    family = max(len(t.family) for t in TASKS)
    for task in TASKS:
        fixed = "" if task.scales else " (fixed size)"
        print(f"{task.name:<{width}}  {task.family:<{family}}  {task.summary}{fixed}")
    print(f"\n{len(TASKS)} tasks; `ptcrun bench run --reference` runs them offline.")
    return EXIT_CODES["done"]


def _compare(args: argparse.Namespace) -> int:
    from ..bench import SuiteResult, compare_table

    a, b = SuiteResult.load(args.a), SuiteResult.load(args.b)
    names = Path(args.a).stem, Path(args.b).stem
    sys.stdout.write(compare_table(a, b, names=names if names[0] != names[1] else ("A", "B")))
    return EXIT_CODES["done"]


def _writable(path: Path, flag: str) -> None:
    """Refuse a results path that cannot be written, before any task runs."""
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a folder; pass {flag} a file name, such as results.json.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{flag} {str(path)!r} cannot be written: {os_error_reason(exc)}; pass {flag} a file "
            "you can write."
        ) from None


def _progress(result: TaskResult) -> None:
    verdict = "pass" if result.passed else f"FAIL ({result.status}: {result.detail or result.error})"
    print(
        f"{result.task:<24} {result.size:>9,} tokens  {verdict}  {result.turns} turns  "
        f"{result.total_tokens:,} tokens  {result.seconds:.1f} s",
        file=sys.stderr,
    )


def _run(args: argparse.Namespace) -> int:
    from ..bench import RULES, results_table, run_suite
    from ..runtime.providers._spec import parse_provider

    patterns = [p.strip() for given in args.tasks or [] for p in given.split(",") if p.strip()]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else Path("runs") / f"bench-{stamp}.json"
    _writable(out, "--out")
    if args.markdown:
        _writable(Path(args.markdown), "--markdown")
    planner = None if args.reference else parse_provider(args.planner or DEFAULT_PLANNER)
    if args.worker is None:
        worker: Any = RULES if args.reference else None
    elif args.worker.strip().lower() == RULES:
        worker = RULES
    else:
        worker = parse_provider(args.worker)
    suite = run_suite(
        planner,
        worker,
        tasks=patterns or None,
        sizes=args.size,
        seed=args.seed,
        transcript_dir=args.transcripts,
        concurrency=args.concurrency,
        on_result=None if args.quiet else _progress,
    )
    table = results_table(suite)
    suite.write(out)
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    sys.stdout.write(table)
    print(f"\nresults {out}")
    if suite.interrupted:
        print("ptcrun: interrupted; the results file holds the tasks run so far", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    return EXIT_CODES["done"] if suite.passed == len(suite.tasks) else EXIT_CODES["failed"]
