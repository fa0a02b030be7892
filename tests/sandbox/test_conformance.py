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


# Group 1 of the language: every assignment form evaluates its right side (and its target's
# container and key) exactly once, in CPython's order. The tool log shows a second evaluation.
ASSIGNMENTS: dict[str, str] = {
    "chained_with_unpacking": """
        r = a, b = tool.pair(3)
        print(r, a, b)
    """,
    "swap_through_a_chain": """
        a, b = 1, 2
        t = a, b = b, a
        print(t, a, b)
    """,
    "chain_assigns_left_to_right": """
        x = [0, 0]
        i = 0
        i = x[i] = 1
        d = {}
        k = "old"
        d[k] = k = "new"
        print(i, x, d, k)
    """,
    "chain_of_three_in_a_function": """
        def f():
            a = b = c = tool.pair(1)
            return a is b is c
        print(f())
    """,
    "chain_in_a_class_body": """
        class K:
            a = b = tool.pair(2)
        print(K.a, K.b)
    """,
    "starred_targets": """
        first, *rest = head, *tail = tool.pair(5) + [7]
        *init, last = tool.pair(9)
        [p, q] = (s, u) = "xy"
        print(first, rest, head, tail, init, last, p, q, s, u)
    """,
    "nested_unpacking": """
        (a, (b, c)), d = e = (tool.pair(1), tool.pair(2)), 3
        print(a, b, c, d, e)
    """,
    "chain_that_fails_half_way": """
        try:
            x = (y, z) = tool.pair(0) + [1]
        except ValueError as e:
            print("error:", e)
        print(x)
    """,
    "augmented_item_evaluates_container_and_key_once": """
        counts = {"a": 1, "b": 2}
        def table():
            tool.pair(0)
            return counts
        def key():
            tool.pair(1)
            return "a"
        table()[key()] += tool.pair(2)[0]
        rows = [[1, 2], [3, 4]]
        rows[tool.pair(0)[1]][tool.pair(0)[0]] *= 10
        print(counts, rows)
    """,
    "augmented_attribute_evaluates_its_object_once": """
        class Box:
            def __init__(self):
                self.n = 1
        boxes = [Box()]
        def pick():
            tool.pair(0)
            return boxes[0]
        pick().n += tool.pair(4)[1]
        print(boxes[0].n)
    """,
    "augmented_slice": """
        xs = [1, 2, 3, 4]
        xs[tool.pair(1)[0]:3] += [9]
        print(xs)
    """,
    "annotated_assignment": """
        total: int = tool.pair(3)[0]
        class Point:
            def __init__(self, x: int) -> None:
                self.x: int = x
        names: list[str]
        print(total, Point(tool.pair(6)[1]).x)
    """,
    "walrus": """
        if (n := len(tool.pair(1))) > 1:
            print("n is", n)
        picked = [y for chunk in data if (y := len(chunk)) > 5]
        print(picked, y)
    """,
    "for_targets": """
        out = []
        for i, (a, b) in enumerate([tool.pair(1), tool.pair(2)]):
            out.append((i, a, b))
        for first, *others in [tool.pair(3) + [0]]:
            out.append((first, others))
        print(out)
    """,
}
CASES.update(ASSIGNMENTS)


@pytest.mark.parametrize("source", CASES.values(), ids=CASES.keys())
def test_program_runs_as_in_cpython(source: str) -> None:
    check(Case(source, TOOLS))


def test_a_program_runs_as_in_cpython_in_a_real_child() -> None:
    check_in_child(Case(CASES["tool_results_and_errors"], TOOLS))


def test_a_chained_assignment_calls_a_real_tool_once() -> None:
    outcome = check_in_child(Case(ASSIGNMENTS["chained_with_unpacking"], TOOLS))
    assert outcome.calls == (("pair", (3,), ()),)
    assert outcome.output == "[3, 4] 3 4\n"
