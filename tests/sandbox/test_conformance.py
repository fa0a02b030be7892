"""Programs in the styles models write, run in the sandbox and in CPython: the same output,
answer and tool calls (see ``tests/sandbox/conformance.py``)."""

from __future__ import annotations

import pytest

from tests.sandbox.conformance import Case, check, check_in_child


def pair(n: int) -> list[int]:
    return [n, n + 1]


def lookup(key: str) -> dict[str, object]:
    return {"key": key, "size": len(key)}


TOOLS = {"pair": pair, "lookup": lookup}

CASES: dict[str, str] = {
    "nested_comprehensions": """
        words = [w for chunk in data for w in chunk.replace(",", " ").split()]
        grid = [[i * j for j in range(3)] for i in range(3)]
        lengths = {w: len(w) for w in words if len(w) > 4}
        print(len(words), grid, sorted(lengths.items())[:3])
        done({"words": len(words), "long": sorted(lengths)})
    """,
    "closures_and_generators": """
        def counter():
            count = 0
            def bump(by=1):
                nonlocal count
                count += by
                return count
            return bump
        def chunks(seq, size):
            for start in range(0, len(seq), size):
                yield seq[start:start + size]
        bump = counter()
        bump(); bump(5)
        print(bump(0), list(chunks(list(range(7)), 3)))
    """,
    "tool_results_and_errors": """
        results = [tool.lookup(chunk.split()[0]) for chunk in data]
        try:
            int("x")
        except ValueError as e:
            print("caught:", e)
        print(sum(r["size"] for r in results))
        done(results)
    """,
}


@pytest.mark.parametrize("source", CASES.values(), ids=CASES.keys())
def test_program_runs_as_in_cpython(source: str) -> None:
    check(Case(source, TOOLS))


def test_a_program_runs_as_in_cpython_in_a_real_child() -> None:
    check_in_child(Case(CASES["tool_results_and_errors"], TOOLS))
