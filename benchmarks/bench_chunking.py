"""How much does chunking cost, compared with encoding the same text once?

Chunking by tokens must count real tokens, so it can never be cheaper than one encode of the
text; it should not cost much more either. This benchmark builds a log of 100,000 lines (request
records, with a multi-line stack trace now and then), then times, in the same process:

- the baseline: one ``encode_ordinary`` of the whole text with the same tiktoken encoding;
- ``chunk_by_tokens`` at two sizes, with and without overlap, counting lines on a thread per
  idle core as it does; and at size 4000 once with every line counted in the calling thread and
  once on a pool of a thread per CPU, whatever the load, which shows how much of the gain is the
  second count saved and how much the other cores;
- ``chunk_by_lines`` and ``chunk_by_chars``, which count each chunk's tokens too.

Each case runs ``--repeat`` times, interleaved so that drift hits every case alike, and the table
gives the median in seconds and as a multiple of the baseline's median. With ``--write`` the
table replaces the "## Chunker" section of docs/benchmarks.md.

Run: python benchmarks/bench_chunking.py [--lines 100000] [--repeat 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tiktoken

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so it runs from a checkout without installing

from _docs import write_section  # benchmarks/ is the script folder

from ptcrun.corpus import _counting
from ptcrun.corpus._chunking import chunk_by_chars, chunk_by_lines, chunk_by_tokens
from ptcrun.corpus._tokens import ENCODING_NAME, get_encoding

SECTION = "## Chunker"


def make_log(lines: int, seed: int = 7) -> str:
    """A deterministic log: one record per line, and every ~200 lines an 8-line stack trace."""
    rng = random.Random(seed)
    levels = ["INFO"] * 6 + ["DEBUG"] * 3 + ["WARN", "ERROR"]
    out: list[str] = []
    while len(out) < lines:
        n = len(out)
        stamp = f"2024-03-{n % 28 + 1:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
        level = rng.choice(levels)
        out.append(
            f"{stamp}.{rng.randrange(1000):03d}Z {level} [worker-{rng.randrange(16)}] "
            f"request id={rng.getrandbits(64):016x} path=/api/v1/items/{rng.randrange(10**6)} "
            f"status={rng.choice([200, 200, 200, 201, 404, 500])} "
            f"took={rng.random() * 100:.2f}ms user=user{rng.randrange(5000)}"
        )
        if level == "ERROR" and rng.random() < 0.05:
            out.append("Traceback (most recent call last):")
            for depth in range(3):
                out.append(f'  File "app/handlers/h{depth}.py", line {rng.randrange(400)}, in run')
                out.append(f"    result = step_{depth}(request, timeout={rng.randrange(30)})")
            out.append(f"ValueError: item {rng.randrange(10**6)} is locked by another request")
    return "\n".join(out[:lines]) + "\n"


def measure(
    cases: dict[str, Callable[[], object]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds (this process's, all threads) of each run of each case."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, run in cases.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    return times, cpu


def in_one_thread(run: Callable[[], Any]) -> Any:
    """run() with every line counted in the calling thread, as if the machine had one core."""
    threshold = _counting._PARALLEL_CHARS
    _counting._PARALLEL_CHARS = sys.maxsize
    try:
        return run()
    finally:
        _counting._PARALLEL_CHARS = threshold


def on_a_pool(pool: ThreadPoolExecutor, run: Callable[[], Any]) -> Any:
    """run() with lines counted on pool, whatever the load average says."""
    saved = _counting._pool, _counting._pool_decided
    _counting._pool, _counting._pool_decided = pool, True
    try:
        return run()
    finally:
        _counting._pool, _counting._pool_decided = saved


def pool_threads() -> int:
    """The threads the chunker counts on in this process (1: no pool, the calling thread)."""
    pool = _counting._shared_pool()
    return 1 if pool is None else pool._max_workers


def render(
    text: str, tokens: int, repeat: int, rows: list[tuple[str, str, float, float, float]], threads: int,
    load: float,
) -> str:
    lines = [
        SECTION,
        "",
        (
            f"Chunking a generated log of {text.count(chr(10)):,} lines ({len(text) / 1e6:.1f} M "
            f"characters, {tokens:,} tokens), against one "
            f"`encode_ordinary` of the same text with the same encoding ({ENCODING_NAME}), in the "
            f"same process. Median of {repeat} runs; Python {platform.python_version()}, "
            f"tiktoken {tiktoken.__version__}, {os.cpu_count()} CPUs. Compare the ratios, not the "
            f"seconds: on a busy machine both sides slow down together. Reproduce with "
            f"`python benchmarks/bench_chunking.py --write`."
        ),
        "",
        "| case | chunks | median (s) | × one encode | CPU × one encode's CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, chunks, seconds, ratio, cpu_ratio in rows:
        lines.append(f"| {name} | {chunks} | {seconds:.2f} | {ratio:.2f} | {cpu_ratio:.2f} |")
    lines += [
        "",
        (
            "Token chunking encodes each line once to find its cuts, and takes each chunk's exact "
            "count from its lines' counts where they provably add up to it: between whole lines, "
            "a line break followed by spaces or tabs and then a non-space never joins two of the "
            "tokenizer's pre-tokens (the proof is in `ptcrun/corpus/_counting.py`, checked "
            "exhaustively in `tests/corpus/test_counting.py`). Only a chunk or overlap that a blank "
            "or whitespace-led line crosses is encoded again, and only the part lines at the ends "
            "of one cut inside lines (overlaps shorter than a line, as at size 500, begin inside "
            "one). The chunks and counts are byte for byte those of counting every chunk again. "
            "The lines are counted on a thread per core that the load average shows idle when the "
            "chunker first needs them (tiktoken's encoder lets go of the GIL), in the calling "
            f"thread when that is one: here {threads} (load average {load:.1f} at the end, on "
            f"{os.cpu_count()} CPUs). The last two token rows force one thread, and a pool of a "
            "thread per CPU. The CPU column (all threads' time over the baseline's) is the work done; "
            "the wall column is what the load left of it. On this shared machine two counting "
            "threads each ran 20-30% slower than one alone, and with other work on both cores the "
            "pool was slower than one thread, which is why it takes only idle cores. Before, every "
            "chunk and overlap was encoded a second time in one thread: the same table read 1.81 "
            "(size 4000), 1.79 (overlap 200) and 2.35 (size 500, overlap 50) times one encode."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="log lines to generate")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the median is kept")
    parser.add_argument(
        "--write", action="store_true", help="write the table into docs/benchmarks.md"
    )
    args = parser.parse_args()

    text = make_log(args.lines)
    threads = pool_threads()  # settled now, from the load before the runs
    cores = os.cpu_count() or 1
    forced = ThreadPoolExecutor(cores)
    encoding = get_encoding()
    baseline = "one encode (baseline)"
    cases: dict[str, Callable[[], object]] = {
        baseline: lambda: encoding.encode_ordinary(text),
        "chunk_by_tokens(size=4000)": lambda: chunk_by_tokens(text, 4000),
        "chunk_by_tokens(size=4000, overlap=200)": lambda: chunk_by_tokens(text, 4000, 200),
        "chunk_by_tokens(size=500, overlap=50)": lambda: chunk_by_tokens(text, 500, 50),
        "chunk_by_tokens(size=4000), lines counted in one thread": lambda: in_one_thread(
            lambda: chunk_by_tokens(text, 4000)
        ),
        f"chunk_by_tokens(size=4000), lines counted on {cores} threads": lambda: on_a_pool(
            forced, lambda: chunk_by_tokens(text, 4000)
        ),
        "chunk_by_lines(size=200, overlap=20)": lambda: chunk_by_lines(text, 200, 20),
        "chunk_by_chars(size=16000, overlap=800)": lambda: chunk_by_chars(text, 16_000, 800),
    }
    counts = {name: len(run()) for name, run in cases.items()}  # also warms every path up
    times, cpu = measure(cases, args.repeat)
    load = os.getloadavg()[0]
    base = statistics.median(times[baseline])
    base_cpu = statistics.median(cpu[baseline])
    rows = []
    for name in cases:
        median = statistics.median(times[name])
        chunks = "" if name == baseline else f"{counts[name]:,}"
        cpu_ratio = statistics.median(cpu[name]) / base_cpu
        rows.append((f"`{name}`" if name != baseline else name, chunks, median, median / base, cpu_ratio))
    section = render(text, counts[baseline], args.repeat, rows, threads, load)
    print(section)
    if args.write:
        target = ROOT / "docs" / "benchmarks.md"
        target.parent.mkdir(exist_ok=True)
        write_section(SECTION, section, target)
        print(f"wrote the {SECTION!r} section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
