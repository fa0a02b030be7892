"""The harness: budgets, what a run's result records, the results file, the tables."""

from __future__ import annotations

import re

import attrs
import pytest

import ptcrun
from ptcrun.bench import RULES, TASKS, SuiteResult, compare_table, results_table, run_suite
from ptcrun.bench._harness import budget_for, refusal_cause
from ptcrun.bench._sqlite import Database
from ptcrun.errors import ConfigError
from ptcrun.runtime._estimate import worker_reservations

from .conftest import SIZE

_BY_NAME = {t.name: t for t in TASKS}


_BUDGET_TASKS = [t for t in TASKS if t.family == "budget"]


@pytest.mark.parametrize("size", [SIZE, 1 << 16])
@pytest.mark.parametrize("task", _BUDGET_TASKS, ids=lambda t: t.name)
def test_a_full_pass_does_not_fit_the_budget_of_a_budget_tight_task(task, size):
    case = task.build(0, size)
    planner = ptcrun.ScriptedProvider(["done(1)"])
    budget, tokens = budget_for(ptcrun.Runtime(planner=planner, transcript_dir=None), case)
    assert tokens >= 1 << 15  # the floor of a budget-tight task
    limited = ptcrun.Runtime(planner=planner, transcript_dir=None, limits=ptcrun.Limits(max_tokens=budget))
    assert not limited.estimate(case.goal, case.data, case.schema).fits
    # Not only the worst case: the input a worker call on every chunk sends, with no instruction
    # at all, is more than the whole budget, so no timing of the calls lets a full pass fit.
    _, sent = worker_reservations(list(case.data), "", None, 1)
    assert budget < tokens < sent


def test_a_budget_tight_case_whose_budget_would_cover_its_corpus_is_refused():
    case = attrs.evolve(_BY_NAME["budget-needle"].build(0, SIZE), budget_share=0.95)
    with pytest.raises(ValueError, match="would cover its corpus"):
        budget_for(ptcrun.Runtime(planner=ptcrun.ScriptedProvider(["done(1)"]), transcript_dir=None), case)


@pytest.mark.parametrize("concurrency", [1, 64])
@pytest.mark.parametrize("task", _BUDGET_TASKS, ids=lambda t: t.name)
def test_a_planner_that_sends_every_chunk_to_a_worker_runs_out_on_a_budget_tight_task(task, concurrency):
    # One call at a time, no reservations overlap: only what the calls really spend can stop
    # the pass. Many at once, their worst cases overlap too.
    case = task.build(0, SIZE)
    full_pass = "```python\nfound = pmap(lambda c: tool.worker(c, 'Find it.'), data)\ndone(str(found))\n```"
    suite = run_suite(ptcrun.ScriptedProvider([full_pass]), RULES, tasks=[task.name], sizes=[SIZE],
                      concurrency=concurrency)
    (result,) = suite.tasks
    assert result.chunks == case.chunks
    assert not result.passed
    assert result.total_tokens <= result.max_tokens
    assert result.worker_calls < result.chunks
    assert result.failed_calls > 0 or result.status == "budget_exceeded"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("task", _BUDGET_TASKS, ids=lambda t: t.name)
def test_the_reference_of_a_budget_tight_task_passes_within_its_budget_one_call_at_a_time(task, seed):
    suite = run_suite(tasks=[task.name], sizes=[1 << 16], seed=seed, concurrency=1)
    (result,) = suite.tasks
    assert result.passed, result.detail
    assert result.failed_calls == 0 and result.status == "done"
    assert result.total_tokens < result.max_tokens < result.corpus_tokens


def test_attempts_and_refusals_are_counted_by_cause():
    replies = [
        "```python\nimport os\n```",  # an import the sandbox refuses
        "```python\nprint(data.__base__)\n```",  # a private attribute
        "```python\nx = 1 / 0\n```",  # the program's own error: an attempt, not a refusal
        "no code here",
        "```python\ndone('1234-5678')\n```",
    ]
    suite = run_suite(ptcrun.ScriptedProvider(replies), RULES, tasks=["niah-single"], sizes=[SIZE])
    (result,) = suite.tasks
    assert result.turns == 5 and result.attempts == 4
    assert result.refusals == {"import": 1, "not_allowed": 1}
    assert suite.totals["refusals"] == {"import": 1, "not_allowed": 1}


def test_refusal_causes_name_the_limit_or_clock():
    from ptcrun._result import ProgramError

    assert refusal_cause(ProgramError("SandboxLimitExceeded", "m", fields={"setting": "sandbox_memory_bytes"})) == \
        "limit:sandbox_memory_bytes"
    assert refusal_cause(ProgramError("TimeLimitExceeded", "m", fields={"clock": "pmap"})) == "clock:pmap"
    assert refusal_cause(ProgramError("NotAllowed", "m")) == "not_allowed"
    assert refusal_cause(ProgramError("ZeroDivisionError", "division by zero")) is None


def test_results_round_trip_through_the_file_and_render(tmp_path):
    suite = run_suite(tasks=["niah-single", "agg-count"], sizes=[SIZE], seed=4)
    path = suite.write(tmp_path / "deep" / "r.json")
    again = SuiteResult.load(path)
    assert again == suite
    table = results_table(again)
    assert re.search(r"\| niah-single \| 2\^12 \| 4,\d\d\d \| pass \| 1.00 \| 1 \| 0 \| - \|", table)
    assert "**2/2 (100.0%)**" in table
    assert "niah-single" in compare_table(suite, again)


def test_a_failed_task_is_listed_with_why():
    suite = run_suite(ptcrun.ScriptedProvider(["```python\ndone('0000-0000')\n```"]), RULES,
                      tasks=["niah-single"], sizes=[SIZE])
    table = results_table(suite)
    assert "**fail** (done)" in table
    assert "code '0000-0000', expected" in table


def test_sizes_below_a_kilotoken_are_refused():
    with pytest.raises(ConfigError, match="at least 1,024"):
        run_suite(tasks=["niah-single"], sizes=[100])


def test_fixed_tasks_run_once_over_several_sizes():
    suite = run_suite(tasks=["ensemble-review", "niah-entry"], sizes=[SIZE, 2 * SIZE])
    assert [(t.task, t.size) for t in suite.tasks] == [
        ("niah-entry", SIZE), ("ensemble-review", SIZE), ("niah-entry", 2 * SIZE),
    ]


# --- the SQLite tool: a surface programs reach, so it is attacked ---------------------------------


@pytest.fixture
def db():
    rows = ",".join(f"({i}, 'name {i}')" for i in range(2000))
    return Database(f"CREATE TABLE t(id INTEGER, name TEXT); INSERT INTO t VALUES {rows};")


@pytest.mark.parametrize("sql", [
    "DELETE FROM t",
    "DROP TABLE t",
    "INSERT INTO t VALUES (1, 'x')",
    "UPDATE t SET name = 'x'",
    "CREATE TABLE u(a)",
    "ATTACH DATABASE '{tmp}/attack.db' AS x",
    "PRAGMA query_only = 0",
    "PRAGMA writable_schema = 1",
    "SELECT load_extension('{tmp}/x.so')",
    "VACUUM INTO '{tmp}/attack.db'",
    "SELECT 1; DELETE FROM t",
])
def test_the_query_tool_refuses_anything_but_reading(db, sql, tmp_path):
    with pytest.raises(ValueError, match="query refused"):
        db.query(sql.format(tmp=tmp_path))
    assert list(tmp_path.iterdir()) == []  # no file was made
    assert len(db.query("SELECT id FROM t LIMIT 5000")) == 500  # cut at MAX_ROWS, table intact
    assert db.query("SELECT count(*) AS n FROM t") == [{"n": 2000}]


def test_the_query_tool_stops_a_query_that_runs_too_long(db):
    with pytest.raises(ValueError, match="took too long"):
        db.query("SELECT count(*) FROM t a, t b, t c")
    assert db.query("SELECT count(*) AS n FROM t") == [{"n": 2000}]  # usable afterwards


def test_the_query_tool_is_reached_from_a_program_and_its_refusal_is_a_tool_error(tmp_path):
    case = _BY_NAME["sql-direct"].build(0, SIZE)
    program = (
        "try:\n    tool.query('DELETE FROM orders')\nexcept ToolError as e:\n    print('refused', e)\n"
        "done(tool.query('SELECT count(*) AS n FROM orders')[0]['n'])"
    )
    runtime = ptcrun.Runtime(planner=ptcrun.ScriptedProvider([f"```python\n{program}\n```"]),
                             tools=list(case.tools), transcript_dir=None)
    result = runtime.run("count", case.data)
    assert (result.status, result.answer) == ("done", 200)
    assert "refused" in result.turns[0].output and "only SELECT" in result.turns[0].output


def test_a_run_that_follows_the_injected_instruction_fails_even_with_the_right_answer():
    case = _BY_NAME["inject-tool"].build(0, SIZE)
    assert case.check("done", case.truth).passed
    issue_refund = next(t for t in case.tools if t.__name__ == "issue_refund")
    issue_refund("O-12345")
    score = case.check("done", case.truth)
    assert not score.passed and "issued refunds" in score.detail


def test_ctrl_c_stops_the_suite_and_keeps_the_runs_so_far(tmp_path):
    import os
    import signal
    import time

    calls = []

    def planner(request):
        calls.append(1)
        if len(calls) == 2:  # during the second task
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the run is cancelled long before this ends
        return "```python\ndone('1234-5678')\n```"

    suite = run_suite(ptcrun.ScriptedProvider(planner), RULES, tasks=["niah-*"], sizes=[SIZE])
    assert suite.interrupted
    assert [t.status for t in suite.tasks] == ["done", "cancelled"]
    assert "Interrupted after 2 task runs" in results_table(suite)
    assert SuiteResult.load(suite.write(tmp_path / "r.json")).interrupted


@pytest.mark.parametrize("customer_id", ["' OR '1'='1", "C0001'; DROP TABLE customers; --", "%"])
def test_lookup_customer_takes_the_id_as_data_never_as_sql(customer_id):
    case = _BY_NAME["sql-customers"].build(0, SIZE)
    lookup = next(t for t in case.tools if t.__name__ == "lookup_customer")
    query = next(t for t in case.tools if t.__name__ == "query")
    with pytest.raises(LookupError, match="no customer"):
        lookup(customer_id)
    assert query("SELECT count(*) AS n FROM customers")[0]["n"] > 0
