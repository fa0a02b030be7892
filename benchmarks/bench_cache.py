"""The log audit again with the result cache warm, and resumed when it had finished: what is saved?

Runs ``examples/log_audit`` offline (the scripted planner and the rule-based worker, whose calls
each wait a seeded 0.5-2 s like a small model's) three times over the same generated log, in one
process:

- *cold*: with an empty cache file (``Runtime(cache=...)``), every worker request sent;
- *warm*: a new runtime and new providers with the same cache file: worker requests are read
  from it instead of sent;
- *resumed*: a new runtime with no cache file, ``resume=`` the cold run: its planner and worker
  replies are replayed.

It reports each run's tokens (planner and workers), worker requests sent, wall time, the
answer's recall, and each against the cold run as a ratio.

With ``--write`` the table replaces the "## Result cache and resume" section of docs/benchmarks.md.

Run: python benchmarks/bench_cache.py [--lines 10000] [--concurrency 16] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so it runs from a checkout without installing
sys.path.insert(0, str(ROOT / "examples"))

import _common
from _docs import write_section  # benchmarks/ is the script folder

import ptcrun

SECTION = "## Result cache and resume"
NOTES = (
    "The warm run sends no worker request: its worker tokens are zero, and its wall time is the "
    "planner's turns and the sandbox, not the fan-out's waits. The cache keeps worker replies "
    "only, so the warm run still pays for the planner's turns (here a scripted planner; a real "
    "model would be asked again). A resume replays the planner's replies too, so resuming a "
    "finished run costs nothing and gives the same answer. The warm and resumed runs wait on no "
    "model, so their wall time is the host's and the sandbox's CPU: it rises when other work "
    "shares the machine, while the cold run's, mostly waits, does not."
)
audit = _common.load_module(ROOT / "examples" / "log_audit" / "run.py")
generate = _common.load_module(ROOT / "examples" / "log_audit" / "generate.py")
worker_rules = _common.load_module(ROOT / "examples" / "log_audit" / "worker_rules.py")


def one_run(
    chunks: list[Any], truth: dict, *, concurrency: int, latency: tuple[float, float], seed: int,
    scratch: Path, cache: Path | None, resume: Path | None = None,
) -> dict[str, Any]:
    providers = _common.choose_providers(
        programs=audit.PROGRAMS, respond=worker_rules.respond, offline=True, latency=latency, seed=seed
    )
    corpus_tokens = sum(c.tokens for c in chunks)
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=providers.worker,
        limits=ptcrun.Limits(max_tokens=2 * corpus_tokens + 200_000, max_concurrency=concurrency),
        transcript_dir=scratch,
        cache=cache,
    )
    result = runtime.run(audit.GOAL, chunks, schema=audit.ANSWER_SCHEMA, resume=resume)
    if result.status != "done":
        raise SystemExit(f"the audit ended {result.status}: {result.error}")
    found = audit.score(result.answer["incidents"], truth["incidents"])
    return {
        "result": result,
        "planner_tokens": result.usage.planner_tokens,
        "worker_tokens": result.usage.worker_tokens,
        "tokens": result.usage.total_tokens,
        "sent": len(providers.worker.requests),
        "cached": result.cached_calls,
        "replayed": sum(result.replayed.values()),
        "seconds": result.seconds,
        "recall": found.recall,
    }


def render(rows: list[tuple[str, dict[str, Any]]], *, lines: int, chunks: int, concurrency: int,
           latency: tuple[float, float]) -> str:
    cold = rows[0][1]
    intro = (
        f"`examples/log_audit` run offline over one generated log of {lines:,} lines ({chunks:,} chunks), "
        f"{concurrency} worker calls at a time, each worker call waiting a seeded {latency[0]:g}-{latency[1]:g} s; "
        "three runs in one process: *cold* with an empty cache file, *warm* with the file the cold run "
        "filled (new runtime, new providers), and *resumed*: `resume=` the finished cold run, with no "
        f"cache file. Ratios are against the cold run. Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Reproduce with `python benchmarks/bench_cache.py --write`."
    )
    out = [
        SECTION,
        "",
        intro,
        "",
        "| run | worker requests sent | requests cached or replayed | planner tokens | worker tokens | tokens | tokens / cold | wall (s) | wall / cold | recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        out.append(
            f"| {name} | {r['sent']:,} | {r['cached'] + r['replayed']:,} | {r['planner_tokens']:,} "
            f"| {r['worker_tokens']:,} | {r['tokens']:,} | {r['tokens'] / cold['tokens']:.3f} "
            f"| {r['seconds']:.2f} | {r['seconds'] / cold['seconds']:.3f} | {r['recall']:.0%} |"
        )
    out += ["", NOTES, ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000, help="log size")
    parser.add_argument("--concurrency", type=int, default=16, help="worker calls in flight")
    parser.add_argument("--latency", type=float, nargs=2, default=_common.DEFAULT_LATENCY,
                        help="simulated call latency range, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    latency = (args.latency[0], args.latency[1])
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        log, truth = audit.prepare_corpus(folder / "corpus", lines=args.lines, seed=args.seed, quiet=True)
        chunks = generate.chunk_log(log.read_text(encoding="utf-8"))
        cache = folder / "replies.sqlite"
        options = {"concurrency": args.concurrency, "latency": latency, "seed": args.seed,
                   "scratch": folder / "runs"}
        print(f"cold run over {args.lines:,} lines ({len(chunks):,} chunks) ...", flush=True)
        cold = one_run(chunks, truth, cache=cache, **options)
        print("warm run ...", flush=True)
        warm = one_run(chunks, truth, cache=cache, **options)
        print("resumed run ...", flush=True)
        resumed = one_run(chunks, truth, cache=None, resume=cold["result"].transcript, **options)
        if not (cold["result"].answer == warm["result"].answer == resumed["result"].answer):
            raise SystemExit("the warm or resumed run gave another answer than the cold run")
    rows = [("cold", cold), ("warm cache", warm), ("resumed (finished run)", resumed)]
    section = render(rows, lines=args.lines, chunks=len(chunks), concurrency=args.concurrency, latency=latency)
    print(section)
    if args.write:
        write_section(SECTION, section, ROOT / "docs" / "benchmarks.md")
        print(f"wrote the {SECTION!r} section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
