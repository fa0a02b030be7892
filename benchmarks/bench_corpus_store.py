"""Does a run's memory stay flat as its corpus grows, and how fast does a program read ``data``?

For each corpus size (lines of the generated log of ``bench_chunking.py``, written on the fly to
a temporary folder and deleted after), three fresh processes each report their peak resident
memory (``VmHWM`` of ``/proc/PID/status``; Linux only):

* *build*: ``build_store(corpus, store)``, the chunker streaming the file into a store;
* *store*: a process that opens the store, renders the planner's first message (its size in
  characters and tokens) and runs a program in the sandbox that reads every chunk
  (``for chunk in data: n += chunk.count("ERROR")``); the host's peak and the child's;
* *list*: the same with the corpus as an in-memory list (``load_corpus``), as a Python user who
  passes ``chunk_by_tokens(text, ...)`` does. Its child runs the same program, then
  ``copy = list(data)``: the copy of the whole corpus the child held before the store (it
  received every chunk at start-up), so *child with a copy* is what the child took then.

Then, in one sandbox child, the speed of sequential iteration: the same loop over ``data`` (read
by the child from the store file) and over ``list(data)`` (in the child's memory), best of five
each, for chunks of 4,000 tokens and of one line, with a body that reads the chunk
(``chunk.count("ERROR")``) and one that does not (``len(chunk)``); and the same in a second child
that asks the host for the text, as it does when the corpus is not one whole store. Each ratio
is measured in one child. Also the child's peak while it reads the store file.

With ``--write`` the tables replace the "## Corpus store" section of docs/benchmarks.md; with
``--speed-only`` only the iteration is measured, and only its part of the section is replaced.

Run: python benchmarks/bench_corpus_store.py [--lines 100000 1000000] [--list-max 1000000]
[--speed-only] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so it runs from a checkout without installing

from _docs import write_section  # benchmarks/ is the script folder
from bench_chunking import make_log

SECTION = "## Corpus store"

_RSS = '''
import sys
sys.path.insert(0, sys.argv[1] + "/benchmarks")
from bench_chunking import make_log

def log_chunks(lines, per_chunk):
    """The generated log, per_chunk lines a chunk, made as they are needed."""
    block = make_log(50_000).splitlines(keepends=True)
    for first in range(0, lines, per_chunk):
        yield "".join(block[i % len(block)] for i in range(first, min(first + per_chunk, lines)))

def vm_hwm(pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/PID/status: this benchmark needs Linux")
'''

WRITE = _RSS + '''
import json, time
sys.path.insert(0, sys.argv[1])
from ptcrun.corpus._writer import write_store
began = time.perf_counter()
store = write_store(sys.argv[2], log_chunks(int(sys.argv[3]), int(sys.argv[4])))
print(json.dumps({"peak": vm_hwm(), "seconds": time.perf_counter() - began, "chunks": len(store)}))
'''

BUILD = _RSS + '''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ptcrun.corpus._tokens import get_encoding
from ptcrun.corpus._writer import build_store
encode = get_encoding().encode_ordinary
load = os.getloadavg()[0]
began, began_cpu = time.perf_counter(), time.process_time()
store = build_store(sys.argv[2], sys.argv[3], chunk_tokens=int(sys.argv[4]))
seconds, cpu, peak = time.perf_counter() - began, time.process_time() - began_cpu, vm_hwm()
from ptcrun.corpus import _counting
threads = 1 if _counting._pool is None else _counting._pool._max_workers
# The baseline, after the build so as not to raise its peak: one encode of the same text, read
# a megabyte at a time, in one thread.
began, began_cpu = time.perf_counter(), time.process_time()
with open(sys.argv[2], encoding="utf-8") as corpus:
    while piece := corpus.read(1 << 20):
        encode(piece)
print(json.dumps({"peak": peak, "seconds": seconds, "cpu": cpu, "chunks": len(store), "threads": threads, "load": load,
                  "encode": time.perf_counter() - began, "encode_cpu": time.process_time() - began_cpu}))
'''

RUN = _RSS + '''
import json, sys, time
sys.path.insert(0, sys.argv[1])
import trio
from ptcrun._limits import Limits
from ptcrun.corpus._store import open_store
from ptcrun.corpus._tokens import count_tokens
from ptcrun.runtime._estimate import first_snapshot, pass_tokens_about
from ptcrun.runtime._turns import first_message
from ptcrun.sandbox.host._driver import Sandbox

mode, source, lines = sys.argv[2], sys.argv[3], int(sys.argv[4])
PER_CHUNK = int(sys.argv[5])
data = open_store(source) if mode == "store" else list(log_chunks(lines, PER_CHUNK))
limits = Limits()
goal = "Which errors recur, and how often?"
corpus_tokens, pass_tokens = pass_tokens_about(data, goal, limits.worker_max_tokens)
prompt = first_message(goal, data, {}, limits, first_snapshot(limits), None,
                       corpus_tokens=corpus_tokens, pass_tokens=pass_tokens)
READ = "n = 0\\nfor chunk in data:\\n    n += chunk.count('ERROR')\\nprint(n)"

async def main():
    async with Sandbox(data=data, limits=limits) as sandbox:
        result = await sandbox.execute(READ)
        assert result.status == "ok", result
        child = vm_hwm(sandbox.pid)
        copy = None
        if mode == "list":
            result = await sandbox.execute("copy = list(data)\\nprint(len(copy))")
            assert result.status == "ok", result
            copy = vm_hwm(sandbox.pid)
        return child, copy

child, copy = trio.run(main)
print(json.dumps({"host": vm_hwm(), "child": child, "child_copy": copy, "chunks": len(data),
                  "prompt_chars": len(prompt), "prompt_tokens": count_tokens(prompt)}))
'''

SPEED = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import trio
from ptcrun._limits import Limits
from ptcrun.corpus._store import open_store
from ptcrun.sandbox.host._corpus import CorpusServer
from ptcrun.sandbox.host._driver import Sandbox

if sys.argv[3] == "host":  # the child asks the host for every batch, as for a part of a store
    CorpusServer.grant_store = lambda self: None

PROGRAM = """
import datetime, json
def now():
    return datetime.datetime.now().timestamp()
def best(items, body):
    times = []
    for _ in range(5):
        began = now()
        n = 0
        if body == "count":
            for chunk in items:
                n += chunk.count("ERROR")
        elif body == "len":
            for chunk in items:
                n += len(chunk)
        else:  # each chunk made anew from its UTF-8 bytes: what any reader of bytes must do
            for chunk in items:
                n += len(chunk.encode().decode())
        times.append(now() - began)
    return min(times)
copy = list(data)
out = {}
for body in ("count", "len"):
    out[body] = {"store": best(data, body), "list": best(copy, body)}
out["len"]["remade"] = best(copy, "remade")
print(json.dumps(out))
"""

async def main():
    async with Sandbox(data=open_store(sys.argv[2]), limits=Limits(sandbox_cpu_seconds=600)) as sandbox:
        result = await sandbox.execute(PROGRAM, timeout=600)
        assert result.status == "ok", result
        return result.output

print(trio.run(main))
'''


#: Lines of the generated log in a chunk of about 4,000 tokens (chunk_by_tokens(4000) makes
#: 1,373 chunks of its first 100,000 lines).
PER_CHUNK = 73


def write_corpus(path: Path, lines: int) -> int:
    """Write ``lines`` lines of the generated log to path, a block at a time; return bytes."""
    block = make_log(50_000)
    block_lines = block.count("\n")
    with path.open("w", encoding="utf-8") as out:
        left = lines
        while left >= block_lines:
            out.write(block)
            left -= block_lines
        if left:
            out.write("".join(block.splitlines(keepends=True)[:left]))
    return path.stat().st_size


def python(script: str, *args: object) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), *map(str, args)],
        check=True, capture_output=True, text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(sizes: list[int], list_max: int, folder: Path) -> list[dict[str, object]]:
    """Write a store of each size, then run a program over it, and over a list of each size."""
    rows: list[dict[str, object]] = []
    for lines in sizes:
        store = folder / "sweep.store"
        written = python(WRITE, store, lines, PER_CHUNK)
        print(f"{lines:,} lines: store written {written}", flush=True)
        on_store = python(RUN, "store", store, lines, PER_CHUNK)
        print(f"  store: {on_store}", flush=True)
        in_list = python(RUN, "list", "-", lines, PER_CHUNK) if lines <= list_max else None
        print(f"  list: {in_list}", flush=True)
        rows.append({"lines": lines, "store_bytes": store.stat().st_size, "write": written,
                     "store": on_store, "list": in_list})
        store.unlink()
    return rows


def measure_build(sizes: list[int], folder: Path) -> list[dict[str, object]]:
    """build_store from a corpus file: the token chunker streaming into a store."""
    rows: list[dict[str, object]] = []
    for lines in sizes:
        corpus, store = folder / "corpus.log", folder / "corpus.store"
        size = write_corpus(corpus, lines)
        build = python(BUILD, corpus, store, 4000)
        print(f"{lines:,} lines, {size / 1e6:,.0f} MB: built {build}", flush=True)
        rows.append({"lines": lines, "bytes": size, "build": build})
        corpus.unlink()
        store.unlink()
    return rows


Speed = dict[str, dict[str, dict[str, dict[str, float]]]]


def measure_speed(lines: int, folder: Path) -> tuple[Speed, float, list[float]]:
    """Per chunk size, per reader (the child from the file, or the host), per loop body: the
    store's and the list's best times; the child's peak reading the 4,000-token store; and the
    machine's load average before and after each measure."""
    out: Speed = {}
    child_peak = 0.0
    loads = [os.getloadavg()[0]]
    for label, per_chunk in ((f"{PER_CHUNK} lines (about 4,000 tokens)", PER_CHUNK), ("1 line", 1)):
        store = folder / "speed.store"
        python(WRITE, store, lines, per_chunk)
        out[label] = {}
        for reader in ("file", "host"):
            out[label][reader] = python(SPEED, store, reader)
            loads.append(os.getloadavg()[0])
        print(f"  speed, chunks of {label}: {out[label]}", flush=True)
        if per_chunk == PER_CHUNK:
            child_peak = python(RUN, "store", store, lines, PER_CHUNK)["child"]
        store.unlink()
    return out, child_peak, loads


def render(
    rows: list[dict[str, object]],
    builds: list[dict[str, object]],
    speed: Speed,
    speed_lines: int,
    list_max: int,
    child_peak: float,
    loads: list[float],
) -> str:
    mb = 1e6
    out = [
        SECTION,
        "",
        (
            "Peak resident memory (`VmHWM`) against corpus size: the generated log of the chunker "
            f"benchmark (about 130 bytes a line), {PER_CHUNK} lines (about 4,000 tokens) a chunk. "
            "*store* is a process that opens a store, renders the planner's first message, and runs "
            "a program that reads every chunk (`for chunk in data: n += chunk.count('ERROR')`) in "
            "the sandbox: its peak (*host*) and its sandbox child's (*child*). *list* is the same "
            "with the corpus as a Python list of strings in the host; *child with a copy* is its "
            "child after `copy = list(data)`: the copy of the corpus every child held before the "
            "store, when the whole corpus was sent to it at start-up. Every figure is a fresh "
            f"process. Python {platform.python_version()}, {os.cpu_count()} CPUs. Reproduce with "
            "`python benchmarks/bench_corpus_store.py --write`."
        ),
        "",
        (
            "| lines | store (MB) | chunks | write (s) | store: host (MB) | store: child (MB) "
            "| list: host (MB) | list: child (MB) | child with a copy (MB) | first message (chars / tokens) |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        written, store, listed = row["write"], row["store"], row["list"]
        assert isinstance(written, dict) and isinstance(store, dict)
        if isinstance(listed, dict):
            list_cells = (
                f"{listed['host'] / mb:,.0f} | {listed['child'] / mb:,.0f} | {listed['child_copy'] / mb:,.0f}"
            )
        else:
            list_cells = "not run | not run | not run"
        out.append(
            f"| {row['lines']:,} | {int(str(row['store_bytes'])) / mb:,.0f} | {int(store['chunks']):,} | "
            f"{written['seconds']:,.0f} | {store['host'] / mb:,.0f} | {store['child'] / mb:,.0f} | "
            f"{list_cells} | {int(store['prompt_chars']):,} / {int(store['prompt_tokens']):,} |"
        )
    out += [
        "",
        (
            f"The in-memory list was run up to {list_max:,} lines, to spare the shared machine; "
            "its host grows with the corpus, as the rows show. The store's host and child stay "
            "flat: the host holds the index entries and the chunks of one answer at a time, the "
            "child a batch or two and a cache of at most 32 MiB. Sizes beyond the last row were not "
            "measured, and nothing here is extrapolated. These stores were written from chunks "
            "made by grouping lines (`write_store`), which takes seconds; cutting by tokens takes "
            "far longer, as the next table shows."
        ),
        "",
        (
            "`build_store(corpus, store, chunk_tokens=4000)` from a corpus file of the same log: "
            "the token chunker reading the file in windows of 8 M characters, counting lines on a "
            "thread per idle core, and writing each chunk as it is cut; against one encode of the same "
            "file (a megabyte at a time, in one thread) in the same process, after the build. CPU "
            "is the process's, all threads. Its time is the chunker's (see *Chunker*)."
        ),
        "",
        "| lines | corpus (MB) | chunks | peak (MB) | time (s) | MB/s | × one encode | CPU × one encode's CPU |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    used = sorted({int(row["build"].get("threads", 1)) for row in builds})  # type: ignore[union-attr]
    threads = " or ".join(map(str, used)) + (" thread" if used == [1] else " threads")
    build_loads = ", ".join(f"{float(row['build'].get('load', 0)):.1f}" for row in builds)  # type: ignore[union-attr]
    for row in builds:
        build = row["build"]
        assert isinstance(build, dict)
        out.append(
            f"| {row['lines']:,} | {int(str(row['bytes'])) / mb:,.0f} | {int(build['chunks']):,} | "
            f"{build['peak'] / mb:,.0f} | {build['seconds']:,.1f} | "
            f"{int(str(row['bytes'])) / mb / build['seconds']:,.1f} | "
            f"{build['seconds'] / build['encode']:.2f} | {build['cpu'] / build['encode_cpu']:.2f} |"
        )
    out += [
        "",
        (
            "Before chunks were counted from their lines and each window reused the counts of the "
            "lines it shares with the one before, the chunker encoded every chunk and overlap a "
            "second time, and each window's last 2 M characters again in the next window: the same "
            "build took 50 s for 1,000,000 lines (2.6 MB/s, 106 MB peak); run again just after "
            "the rows above, with the load average at 2.5 and 2.7, it took 4.1 s and 47.2 s (126 "
            "MB peak), 2.99 and 2.40 times one encode, 2.35 and 2.44 times its CPU. The new "
            f"chunker does less than half the work. The machine is shared: the load average on its {os.cpu_count()} cores was "
            f"{build_loads} when each row began, so the chunker counted lines in {threads} (a thread "
            "per idle core); the wall ratios move with the load (the CPU ratios are the steadier "
            "figure). With a free second core the wall time "
            "falls below the CPU time; that was not measured here."
        ),
    ]
    return "\n".join(out) + "\n\n" + render_speed(speed, speed_lines, child_peak, loads)


SPEED_START = "Sequential iteration in the sandbox child"


def render_speed(speed: Speed, speed_lines: int, child_peak: float, loads: list[float]) -> str:
    out = [
        (
            f"{SPEED_START} over a store of {speed_lines:,} lines: `for chunk in data` against the "
            "same loop over `list(data)` in the child's own memory, best of five each, in one child. "
            "*file*: the child reads the store file itself, in batches of about 512 KiB, as it does "
            "when the run's corpus is one whole store; *host*: in a second child, each batch is asked "
            "of the host (about 2 MiB, two in flight, the text in memory the host shares with the "
            "child), as when the corpus is a list or a part of a store. The ratio is the list's time "
            "over the store's: 1.0 is as fast as the list; the goal is at least 0.5. *Remade* is the "
            "list loop with each chunk made anew from its UTF-8 bytes (`len(chunk.encode().decode())`), "
            "with no file and no host: over large chunks, about the best ratio a reader that turns "
            "bytes into a `str` can reach; over short ones its two method calls a chunk cost more "
            "than the store's reading, and it says little."
        ),
        "",
        (
            "| chunks of | loop body | store: file (s) | list (s) | file / list | store: host (s) "
            "| list (s) | host / list | list, remade (s) | remade / list |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    met = []
    for label, readers in speed.items():
        for body in ("count", "len"):
            file, host = readers["file"][body], readers["host"][body]
            text = "`n += chunk.count('ERROR')`" if body == "count" else "`n += len(chunk)`"
            remade = (
                f"{file['remade']:.3f} | {file['list'] / file['remade']:.2f}" if "remade" in file else "- | -"
            )
            out.append(
                f"| {label} | {text} | {file['store']:.3f} | {file['list']:.3f} | "
                f"{file['list'] / file['store']:.2f} | {host['store']:.3f} | {host['list']:.3f} | "
                f"{host['list'] / host['store']:.2f} | {remade} |"
            )
            if file["list"] / file["store"] >= 0.5:
                met.append(f"{label}, {body}")
    rows = sum(len(r["file"]) for r in speed.values())
    big, small = (readers["file"]["len"] for readers in speed.values())
    big_chunks, small_chunks = -(-speed_lines // PER_CHUNK), speed_lines

    def per_chunk(seconds: float, chunks: int) -> str:
        return f"{seconds / chunks * 1e6:.2f} µs"

    out += [
        "",
        f"Reading the file, the goal of 0.5 is met in {len(met)} of the {rows} rows"
        + (f" ({'; '.join(met)})." if met else ".")
        + f" The child's peak while it reads this store of 4,000-token chunks: {child_peak / 1e6:,.0f} MB.",
        "",
        (
            "Where it is not met, the floor is the text itself. Over 4,000-token chunks (about 9.5 KB) "
            f"with `len`, the list's loop touches no text: its {per_chunk(big['list'], big_chunks)} a "
            "chunk is the loop alone. Every chunk of `data` must become a new `str` in the child, "
            "whoever reads it: a copy of its bytes from the page cache and a decode into the "
            "string, two passes over 9.5 KB of memory, against none for the list. The *remade* "
            "column is that floor measured on its own, with no file and no host (an encode and a "
            "decode of the list's own chunks): "
            f"{per_chunk(big['remade'], big_chunks)} a chunk, a ratio of {big['list'] / big['remade']:.2f}, "
            f"where the store reads {per_chunk(big['store'], big_chunks)} ({big['list'] / big['store']:.2f}). "
            "A ratio of 0.5 there would need 9.5 KB made into a string in the time of one turn of "
            f"the loop, {9_500 / (big['list'] / big_chunks) / 1e9:,.0f} GB/s, where copying from the "
            "page cache into a buffer, the first of the two passes, ran at about 3 GB/s on this "
            "machine (measured apart, under similar load). "
            "With a body that reads the text (`count`), the text is read anyway and the same two "
            "passes cost less than the work. Over one-line chunks (about 130 bytes) the bytes are "
            "few and the cost is per chunk: the list's loop takes "
            f"{per_chunk(small['list'], small_chunks)} a chunk, the store "
            f"{per_chunk(small['store'], small_chunks)}: the same loop, plus "
            f"{per_chunk(small['store'] - small['list'], small_chunks)} of reading: the chunk's "
            "index entry (72 bytes, read to check that the chunk follows the one before), its "
            "share of one read and one decode of the batch, and cutting its own string from the "
            "decoded batch. For 0.5 that reading would have to cost no more than the loop's own "
            "turn; measured on its own, outside the sandbox, it cost 0.2 to 0.5 µs a chunk here, "
            "as much as the loop, so this row sits near 0.5 and falls below it as the load rises. Through "
            "the host the child does less (a decode only), but the host must copy every batch "
            "into the shared memory and answer its query, and the child waits on it."
        ),
        "",
        (
            "Tried and not kept: mapping the file in the child (`mmap`, a batch or a window at a "
            "time) saves the copy, but setting up and tearing down the page tables of every page "
            "cost as much on this machine, a mapping counts against the child's 1 GiB address "
            "space, and a file cut short under it kills the child (`SIGBUS`) instead of naming "
            "the damage; batches of 4 MiB instead of 512 KiB ran slower (the batch no longer "
            "stays in the core's cache between the read and the loop). The figures vary by a "
            "factor of two from run to run on this shared machine (its load average over the last "
            f"minute was {min(loads):.1f} to {max(loads):.1f} on its {os.cpu_count()} CPUs while "
            "these were taken); each ratio is measured in one child, seconds apart."
        ),
        "",
    ]
    return "\n".join(out)


def write_speed(section: str, path: Path) -> None:
    """Replace the iteration part of the corpus store section, from its first line to the next
    heading, leaving the memory tables above it as they were measured."""
    text = path.read_text(encoding="utf-8")
    begin = text.index(SECTION)
    begin = text.index(SPEED_START, begin)
    end = text.find("\n## ", begin)
    path.write_text(text[:begin] + section + (text[end:] if end >= 0 else ""), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--list-max", type=int, default=1_000_000, help="largest corpus run as a list")
    parser.add_argument("--build-lines", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--speed-lines", type=int, default=1_000_000)
    parser.add_argument("--speed-only", action="store_true", help="measure only the iteration")
    parser.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("PTCRUN_BENCH_DIR")) as tmp:
        if args.speed_only:
            speed, child_peak, loads = measure_speed(args.speed_lines, Path(tmp))
            part = render_speed(speed, args.speed_lines, child_peak, loads)
            print(part)
            if args.write:
                write_speed(part, ROOT / "docs" / "benchmarks.md")
            return
        rows = measure(args.lines, args.list_max, Path(tmp))
        builds = measure_build(args.build_lines, Path(tmp))
        speed, child_peak, loads = measure_speed(args.speed_lines, Path(tmp))
    section = render(rows, builds, speed, args.speed_lines, args.list_max, child_peak, loads)
    print(section)
    if args.write:
        write_section(SECTION, section, ROOT / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
