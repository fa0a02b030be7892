"""The context firewall: the planner's first prompt does not grow with the corpus.

Builds the first planner message for log corpora of 1,000 to 1,000,000 lines (100 lines a chunk)
and reports its size in tokens, and the time to build it, against the corpus size.

    python benchmarks/bench_firewall.py
"""

from __future__ import annotations

import time

from ptcrun import Limits
from ptcrun.corpus._tokens import count_tokens
from ptcrun.runtime._turns import first_message
from ptcrun.runtime._worker import make_worker_tool
from ptcrun.runtime.providers._scripted import ScriptedProvider


def corpus(lines: int) -> list[str]:
    rows = [f"2026-01-01 12:00:{i % 60:02d} INFO request {i} served in {i % 97} ms" for i in range(lines)]
    return ["\n".join(rows[i : i + 100]) for i in range(0, lines, 100)]


def main() -> None:
    provider = ScriptedProvider(["x"])
    snapshot = {"tokens": 200_000, "turns": 8, "seconds": 1800, "cost": None}
    print("| corpus lines | corpus chars | first prompt tokens | build time |")
    print("|---:|---:|---:|---:|")
    for lines in (1_000, 10_000, 100_000, 1_000_000):
        data = corpus(lines)
        tools = {"worker": make_worker_tool(provider=provider, ledger=None, limits=Limits(), emit=None, span_of_call=None)}
        start = time.perf_counter()
        prompt = first_message("Find every incident.", data, tools, Limits(), snapshot, None,
                               corpus_tokens=0, pass_tokens=0)
        elapsed = time.perf_counter() - start
        chars = sum(len(c) for c in data)
        print(f"| {lines:,} | {chars:,} | {count_tokens(prompt):,} | {elapsed * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
