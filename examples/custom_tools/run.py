"""The user's own tools: the planner answers with the help of a real SQLite database.

The example creates ``customers.db`` and a billing log that names customers by id. Workers find
the failed payments in the log; the program looks each customer up with ``tool.lookup_customer``
(a sync tool: a ``sqlite3`` query), and notifies the account managers of the enterprise ones with
``tool.notify_account_manager`` (an async tool that awaits a simulated messaging API and records
the notification in the database). On the way it shows an argument that does not match a tool's
signature (an int where the tool takes a string: refused before the tool runs, with a message
that names the argument) and a tool that fails (an id the database does not know), which the
program catches and reports.

Usage::

    python examples/custom_tools/run.py          # offline without ANTHROPIC_API_KEY
    python examples/custom_tools/run.py --folder /tmp/custom-tools
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common  # examples/ is not a package

import ptcrun

fixtures = _common.load_module(HERE / "fixtures.py")
tools = _common.load_module(HERE / "tools.py")
worker_rules = _common.load_module(HERE / "worker_rules.py")

GOAL = (HERE / "goal.md").read_text(encoding="utf-8")
PROGRAMS = HERE / "programs"
LINES_PER_CHUNK = 120

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "customers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "plan": {"type": "string"},
                    "failures": {"type": "integer"},
                    "notified": {"type": ["integer", "null"]},
                },
                "required": ["id", "plan", "failures", "notified"],
            },
        },
        "unknown": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["customers", "unknown"],
}


@attrs.frozen
class Outcome:
    result: Any
    world: Any
    events: _common.EventLog


def run_tools_example(
    folder: Path,
    *,
    providers: _common.Providers,
    api_latency: float = tools.API_LATENCY,
    transcript_dir: Path | None = Path("runs"),
) -> Outcome:
    """Build the database and the log in ``folder``, then let the planner answer."""
    world = fixtures.build(folder)
    chunks = ptcrun.chunk_by_lines(world.log.read_text(encoding="utf-8"), LINES_PER_CHUNK)
    events = _common.EventLog()
    runtime = ptcrun.Runtime(
        planner=providers.planner,
        worker=providers.worker,
        tools=tools.make_tools(world.db, api_latency),
        limits=ptcrun.Limits(max_tokens=150_000),
        transcript_dir=transcript_dir,
        observers=[events],
    )
    result = runtime.run(GOAL, chunks, schema=ANSWER_SCHEMA)
    return Outcome(result, world, events)


def problems(outcome: Outcome) -> list[str]:
    """Where the answer, or what the tools did to the database, differs from the truth."""
    answer = outcome.result.answer if isinstance(outcome.result.answer, dict) else {}
    world = outcome.world
    out = []
    got = {c["id"]: c for c in answer.get("customers", [])}
    if {k: c["failures"] for k, c in got.items()} != world.failed:
        out.append(f"customers with failed payments: {sorted(got)}, expected {sorted(world.failed)}")
    notified = sorted(k for k, c in got.items() if c.get("notified") is not None)
    if notified != world.enterprise:
        out.append(f"notified in the answer: {notified}, expected {world.enterprise}")
    sent = tools.notifications(world.db)
    if sorted(c for c, _, _ in sent) != world.enterprise or any(p != "urgent" for _, _, p in sent):
        out.append(f"notifications in the database: {sent}, expected one urgent for each of {world.enterprise}")
    if sorted(answer.get("unknown", [])) != world.unknown:
        out.append(f"unknown ids: {answer.get('unknown')}, expected {world.unknown}")
    return out


def report(outcome: Outcome) -> None:
    result = outcome.result
    print(f"\nrun ended: {result.status}" + (f" ({result.error})" if result.error else ""))
    turns = []
    for turn in result.turns:
        head = f"turn {turn.number}: {turn.status}"
        if turn.error is not None:
            head += f" - {turn.error.kind}: {turn.error.message[:100]}"
        turns.append(head)
        turns += [f"    {line[:160]}" for line in turn.output.splitlines()]
    _common.print_block("What the planner saw, turn by turn", turns)
    calls = outcome.events.of_type("call.end")
    by_tool: dict[str, list[int]] = {}
    for call in calls:
        if call.get("tool") != "worker":
            entry = by_tool.setdefault(call["tool"], [0, 0])
            entry[0 if call.get("ok") else 1] += 1
    _common.print_block(
        "Tool calls",
        [f"{name}: {ok} ok, {bad} refused or failed" for name, (ok, bad) in sorted(by_tool.items())]
        + [f"notifications in {outcome.world.db.name}: {tools.notifications(outcome.world.db)}"],
    )
    answer = result.answer if isinstance(result.answer, dict) else {}
    rows = [
        f"{c['id']} {c.get('name', ''):<16} {c['plan']:<10} failed {c['failures']}x "
        f"({', '.join(c.get('reasons', []))})" + (f" -> notified #{c['notified']}" if c.get("notified") else "")
        for c in answer.get("customers", [])
    ]
    rows += [f"unknown id: {u}" for u in answer.get("unknown", [])]
    _common.print_block("Answer", rows)
    _common.print_block("Against the ground truth", problems(outcome) or ["the answer and the database match"])
    _common.print_block("Run", [*_common.usage_lines(result), *_common.transcript_lines(result)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer a question with the help of your own tools.")
    parser.add_argument("--folder", type=Path, default=Path("runs") / "custom_tools", help="where to create the database and the log (default runs/custom_tools)")
    _common.add_provider_options(parser)
    args = parser.parse_args(argv)
    providers = _common.providers_from_args(args, programs=PROGRAMS, respond=worker_rules.respond)
    print(providers.describe())
    print(f"database and log in {args.folder}")
    outcome = run_tools_example(args.folder, providers=providers, transcript_dir=args.transcripts)
    report(outcome)
    return 0 if outcome.result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
