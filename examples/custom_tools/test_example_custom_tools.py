"""The custom-tools example, offline: the answer and the database match the truth."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

run = _common.load_module(HERE / "run.py")


def test_planner_answers_with_the_database_tools(tmp_path):
    providers = _common.offline_providers(HERE, latency=(0.005, 0.02), seed=4)
    outcome = run.run_tools_example(tmp_path / "world", providers=providers, api_latency=0.01, transcript_dir=tmp_path)
    result = outcome.result
    assert result.status == "done", result.error
    assert run.problems(outcome) == []

    # Turn 2 passed ints where the tool takes a string: refused before the tool ran, each slot
    # holding a message that names the argument, its value and the signature.
    turn2 = result.turns[1].output
    assert "ToolArgumentError: tool 'lookup_customer' takes (customer_id: str); got customer_id=1001 (int)" in turn2
    # Turn 3 caught the tool's own failure for the id the database does not know.
    assert "no customer with id '1099'" in result.turns[2].output

    ends = outcome.events.of_type("call.end")
    notify = [e for e in ends if e["tool"] == "notify_account_manager"]
    assert len(notify) == 2 and all(e["ok"] for e in notify)  # the async tool
    lookups_ok = [e for e in ends if e["tool"] == "lookup_customer" and e["ok"]]
    assert len(lookups_ok) == 1 + 3  # turn 1's try, then the three known customers
