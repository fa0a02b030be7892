"""What OpenTelemetry tracing costs a run, per worker call, measured in one process.

A run fans N worker calls (a scripted worker that answers at once) out through ``pmap`` in a real
sandbox, three ways, in this order:

1. off, OpenTelemetry never imported (a run with a scripted or OpenAI-compatible provider);
2. off, OpenTelemetry's API imported but no tracer provider set (what a run with the anthropic
   SDK sees when the application configured nothing);
3. on: an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` whose exporter drops the spans,
   so the figure is ptcrun's and the SDK's cost of making them, not a network's.

Each figure is the median over ``--repeat`` runs of the run's wall time over N; the ratios are
against (1), in the same process.

    python benchmarks/bench_otel.py [--calls 300] [--repeat 5] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import write_section

from ptcrun import Limits, Request, Runtime, ScriptedProvider
from ptcrun.telemetry._live import open_tracing

SECTION = "## OpenTelemetry"
PROGRAM = 'r = pmap(lambda c: tool.worker(c, "Count the ERROR lines."), data)\ndone(len(r))'


def answer(request: Request) -> str:
    return "1"


def per_call(calls: int, repeat: int) -> float:
    """The median wall time of a whole run, over the number of worker calls it made."""
    chunks = [f"ERROR line {i}\n" for i in range(calls)]
    times = []
    for _ in range(repeat):
        rt = Runtime(planner=ScriptedProvider([f"```python\n{PROGRAM}\n```"]), worker=ScriptedProvider(answer),
                     limits=Limits(max_concurrency=16), transcript_dir=None)
        start = time.perf_counter()
        result = rt.run("Count.", chunks)
        times.append(time.perf_counter() - start)
        assert result.status == "done" and result.answer == calls, result
    return statistics.median(times) / calls


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="worker calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per configuration")
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)

    per_call(20, 1)  # warm up: imports, the tokenizer, the first sandbox
    assert "opentelemetry.trace" not in sys.modules, "something imported OpenTelemetry before the baseline"
    rows = [("off, OpenTelemetry not imported", per_call(args.calls, args.repeat))]

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    rows.append(("off, API imported, no tracer provider", per_call(args.calls, args.repeat)))
    # The whole cost of tracing that is off: one check per run, none per call.
    checks = 10_000
    start = time.perf_counter()
    for _ in range(checks):
        assert open_tracing(None, []) is None
    check = (time.perf_counter() - start) / checks

    class Dropped(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)
    rows.append(("on, SDK provider, spans dropped", per_call(args.calls, args.repeat)))
    provider.shutdown()

    base = rows[0][1]
    table = [
        "| tracing | per worker call | ratio |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {seconds * 1000:.3f} ms | {seconds / base:.2f} |" for name, seconds in rows),
    ]
    table.append("")
    table.append(f"Checking for a tracer provider, once per run: {check * 1e6:.1f} µs.")
    print("\n".join(table))
    if args.write:
        section = (
            f"{SECTION}\n\n"
            f"A run of {args.calls} worker calls through `pmap` (a scripted worker that answers at once, "
            f"16 at a time), its wall time over the calls, median of {args.repeat} runs, with tracing "
            "off and on (docs/observability.md). Reproduce with "
            "`python benchmarks/bench_otel.py --write`.\n\n"
            + "\n".join(table)
            + "\n\nWith no tracer provider, a run checks once, at its start, whether one is set, "
            "and makes no span: the first two rows differ by the machine's noise (a few percent "
            "either way from run to run). A traced call makes four spans "
            "(item, call, chat, and its share of the pmap), each started, described and ended from "
            "the run's events.\n"
        )
        write_section(SECTION, section, Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
