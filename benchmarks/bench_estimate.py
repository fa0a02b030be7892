"""Does ``--dry-run`` tell the truth? The log audit's estimate against what its run then spends.

For a generated log of each size, it runs ``Runtime.estimate`` (no LLM called) and then the
offline log audit (``examples/log_audit``: the scripted planner, the rule-based worker), and
compares the estimated full worker pass with the worker tokens the run used (``Result.usage``):

- the input: counted input the estimate predicts against the input the worker was sent;
- the whole pass: what the ledger reserves for it (input plus a quarter, plus the whole output
  allowance) against what the workers spent. A run spends less than it reserves, never more.

The estimate takes the goal as each call's instruction and the program's output allowance
(``max_tokens=1000``); the audit program sends its own instruction and a JSON Schema, so the
inputs differ by a few dozen tokens a call. ``check`` asserts the tolerances below.

With ``--write`` the table replaces the "## Dry-run estimate" section of docs/benchmarks.md.

Run: python benchmarks/bench_estimate.py [--lines 10000 100000] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so it runs from a checkout without installing
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common
from _docs import write_section

import ptcrun

SECTION = "## Dry-run estimate"
#: The audit program's worker calls allow this much output each (``programs/turn2.py``).
OUTPUT_ALLOWANCE = 1_000
#: The run's worker input may differ from the estimated pass input by this fraction: the
#: estimate's instruction is the goal, the program's is its own, with a schema note.
INPUT_TOLERANCE = 0.05
#: The estimated reservation may be at most this many times what the workers spent: it counts
#: a quarter more input and the whole output allowance, while the workers write a few dozen
#: tokens of JSON each.
RESERVE_CEILING = 1.6

audit = _common.load_module(ROOT / "examples" / "log_audit" / "run.py")
generate = _common.load_module(ROOT / "examples" / "log_audit" / "generate.py")
worker_rules = _common.load_module(ROOT / "examples" / "log_audit" / "worker_rules.py")


def compare(lines: int, *, seed: int, scratch: Path, latency: tuple[float, float]) -> dict[str, Any]:
    """Estimate the audit of a ``lines``-line log, run it offline, and return both sides."""
    log, truth = audit.prepare_corpus(scratch / f"corpus-{lines}", lines=lines, seed=seed, quiet=True)
    chunks = generate.chunk_log(log.read_text(encoding="utf-8"))
    providers = _common.choose_providers(
        programs=audit.PROGRAMS, respond=worker_rules.respond, offline=True, latency=latency, seed=seed
    )
    corpus_tokens = sum(c.tokens for c in chunks)
    max_tokens = 2 * corpus_tokens + 200_000  # what run_audit gives the run
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=providers.worker,
        limits=ptcrun.Limits(max_tokens=max_tokens),
        transcript_dir=None,
    )
    estimate = runtime.estimate(
        audit.GOAL, chunks, schema=audit.ANSWER_SCHEMA, worker_output_tokens=OUTPUT_ALLOWANCE
    )
    outcome = audit.run_audit(log, truth, providers=providers, max_tokens=max_tokens, transcript_dir=None)
    result = outcome.result
    if result.status != "done":
        raise SystemExit(f"the audit of {log} ended {result.status}: {result.error}")
    usage = result.usage
    return {
        "lines": lines,
        "chunks": estimate.chunks,
        "corpus_tokens": estimate.corpus_tokens,
        "estimated_input": estimate.pass_input_tokens,
        "estimated_pass": estimate.pass_tokens,
        "needed": estimate.needed_tokens,
        "fits": estimate.fits,
        "worker_calls": usage.worker_calls,
        "worker_input": usage.worker_input_tokens,
        "worker_output": usage.worker_output_tokens,
        "worker_tokens": usage.worker_tokens,
        "total_tokens": usage.total_tokens,
    }


def check(row: dict[str, Any]) -> None:
    """Assert the stated tolerances for one row."""
    input_error = row["worker_input"] / row["estimated_input"] - 1
    assert abs(input_error) <= INPUT_TOLERANCE, row
    assert row["worker_tokens"] <= row["estimated_pass"] <= RESERVE_CEILING * row["worker_tokens"], row
    assert row["fits"] and row["total_tokens"] <= row["needed"], row


def render(rows: list[dict[str, Any]]) -> str:
    intro = (
        "`Runtime.estimate` (what `ptcrun run --dry-run` prints) for `examples/log_audit`, then the "
        "offline run it describes: the estimated full worker pass (one call per chunk, "
        f"{OUTPUT_ALLOWANCE:,} output tokens allowed each, as the audit program allows) against the "
        "worker tokens the run used. Reproduce with `python benchmarks/bench_estimate.py --write`."
    )
    lines = [
        SECTION,
        "",
        intro,
        "",
        "| lines | chunks | corpus tokens | estimated input | worker input | input error | estimated pass (reserved) | worker tokens spent | reserved / spent |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['lines']:,} | {r['chunks']:,} | {r['corpus_tokens']:,} | {r['estimated_input']:,} "
            f"| {r['worker_input']:,} | {r['worker_input'] / r['estimated_input'] - 1:+.1%} "
            f"| {r['estimated_pass']:,} | {r['worker_tokens']:,} | {r['estimated_pass'] / r['worker_tokens']:.2f} |"
        )
    notes = (
        f"Tolerance: the worker input is within {INPUT_TOLERANCE:.0%} of the estimated input (the "
        "estimate uses the goal as each call's instruction; the program sends its own instruction "
        "and a JSON Schema, a few dozen tokens more or less a call), and the workers' tokens are at "
        f"most the estimated pass and at least 1/{RESERVE_CEILING:g} of it. The estimate is what the "
        "ledger reserves: counted input plus a quarter (other tokenizers count more) and the whole "
        "output allowance; the workers write a few dozen tokens of JSON, not their allowance, so a "
        "run spends less than the estimate, never more. `tests/runtime/test_estimate.py` checks the "
        "10,000-line row."
    )
    lines += ["", notes, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000], help="log sizes")
    parser.add_argument("--latency", type=float, nargs=2, default=(0.0, 0.01), help="simulated call latency range, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for lines in args.lines:
            print(f"estimating and auditing {lines:,} lines ...", flush=True)
            row = compare(lines, seed=args.seed, scratch=Path(scratch), latency=(args.latency[0], args.latency[1]))
            check(row)
            rows.append(row)
    section = render(rows)
    print(section)
    if args.write:
        target = ROOT / "docs" / "benchmarks.md"
        write_section(SECTION, section, target)
        print(f"wrote the {SECTION!r} section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
