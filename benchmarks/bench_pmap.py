"""Fan-out through pmap against plain trio, measured in one process.

Fans N tool calls of fixed simulated latency out through ``pmap`` in a real sandbox child and
compares the wall time with (a) the ideal ``ceil(N / concurrency) * latency`` and (b) the same
calls made directly in the host with a trio nursery and a CapacityLimiter. Also reports the
per-call overhead of the boundary (zero-latency calls), the time to start a sandbox and the
time to execute a trivial program. Each figure is the median of several repetitions.

    python benchmarks/bench_pmap.py [--calls 1000] [--concurrency 50] [--latency 0.05] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import attrs
import trio

from ptcrun import Limits
from ptcrun.sandbox import Sandbox


def make_tool(latency: float):
    async def sleepy(x: int) -> int:
        if latency:
            await trio.sleep(latency)
        return x

    return sleepy


async def plain_trio(n: int, concurrency: int, latency: float) -> float:
    tool = make_tool(latency)
    limiter = trio.CapacityLimiter(concurrency)
    results = [None] * n

    async def one(i: int) -> None:
        async with limiter:
            results[i] = await tool(i)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return time.perf_counter() - start


async def through_pmap(sandbox: Sandbox, n: int, concurrency: int) -> float:
    program = f"r = pmap(lambda i: tool.sleepy(i), range({n}), concurrency={concurrency})\ndone(len(r))"
    start = time.perf_counter()
    result = await sandbox.execute(program)
    elapsed = time.perf_counter() - start
    assert result.answer == n, result
    return elapsed


async def main(args: argparse.Namespace) -> None:
    limits = attrs.evolve(Limits(), max_concurrency=args.concurrency, sandbox_threads=args.concurrency + 8)
    ideal = math.ceil(args.calls / args.concurrency) * args.latency
    pmap_times, trio_times, overheads, starts, trivial = [], [], [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        async with Sandbox(tools=[make_tool(args.latency)], limits=limits) as sandbox:
            starts.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            await sandbox.execute("x = 1")
            trivial.append(time.perf_counter() - t1)
            pmap_times.append(await through_pmap(sandbox, args.calls, args.concurrency))
        trio_times.append(await plain_trio(args.calls, args.concurrency, args.latency))
        async with Sandbox(tools=[make_tool(0.0)], limits=limits) as sandbox:
            elapsed = await through_pmap(sandbox, args.calls, args.concurrency)
            overheads.append(elapsed / args.calls * 1e6)
    med = statistics.median
    pmap_t, trio_t = med(pmap_times), med(trio_times)
    print(f"pmap fan-out: N={args.calls}, concurrency={args.concurrency}, latency={args.latency * 1000:g} ms, "
          f"median of {args.repeat}")
    print("| measure | value |\n|---|---|")
    print(f"| ideal ceil(N/c) x latency | {ideal:.3f} s |")
    print(f"| plain trio (nursery + CapacityLimiter) | {trio_t:.3f} s ({trio_t / ideal:.3f}x ideal) |")
    print(f"| pmap in the sandbox | {pmap_t:.3f} s ({pmap_t / ideal:.3f}x ideal) |")
    print(f"| pmap / plain trio | {pmap_t / trio_t:.3f}x |")
    print(f"| per-call overhead (zero latency) | {med(overheads):.0f} us |")
    print(f"| sandbox start | {med(starts) * 1000:.0f} ms |")
    print(f"| trivial program | {med(trivial) * 1000:.2f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    trio.run(main, parser.parse_args())
