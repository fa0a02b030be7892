"""Resource bombs: each is stopped with an error naming its limit, and the host keeps working."""

from __future__ import annotations

import trio

from ptcrun import errors
from ptcrun.sandbox import Sandbox

from .conftest import limits


async def _run_then_recover(program: str, **changes):
    async with Sandbox(limits=limits(**changes)) as sandbox:
        with trio.fail_after(20):
            attacked = await sandbox.execute(program)
            after = await sandbox.execute("done('still here')")
    return attacked, after


async def test_memory_bomb_is_stopped_by_the_memory_limit():
    attacked, after = await _run_then_recover("s = 'a' * (10 ** 10)", sandbox_memory_bytes=512 << 20)
    assert attacked.error.kind == "SandboxLimitExceeded"
    assert isinstance(attacked.limit, errors.SandboxLimitExceeded)
    assert attacked.limit.setting == "Limits.sandbox_memory_bytes"
    assert "Limits.sandbox_memory_bytes" in attacked.error.message
    assert attacked.restarted
    assert after.answer == "still here"
    assert "earlier variables are gone" in after.note


async def test_memory_bomb_caught_by_the_program_still_cannot_keep_memory():
    program = """
big = []
try:
    while True:
        big.append('x' * (50 * 2 ** 20))
except MemoryError:
    pass
print(len(big))
"""
    attacked, after = await _run_then_recover(program, sandbox_memory_bytes=512 << 20)
    assert attacked.status == "ok"
    assert int(attacked.output) < 12  # never more than the address space allows
    assert after.answer == "still here"


async def test_cpu_bomb_in_c_code_is_killed_by_the_cpu_limit():
    attacked, after = await _run_then_recover("sum(range(10 ** 12))", sandbox_cpu_seconds=1)
    assert attacked.error.kind == "SandboxLimitExceeded"
    assert attacked.limit.setting == "Limits.sandbox_cpu_seconds"
    assert "more than 1 CPU seconds (Limits.sandbox_cpu_seconds)" in attacked.error.message
    assert after.answer == "still here"


async def test_infinite_loop_is_killed_by_the_cpu_limit():
    attacked, after = await _run_then_recover("while True:\n    pass", sandbox_cpu_seconds=1)
    assert attacked.limit.setting == "Limits.sandbox_cpu_seconds"
    assert after.answer == "still here"


async def test_busy_loops_in_pmap_threads_are_stopped_too():
    program = "def spin(i):\n    while True:\n        pass\npmap(spin, range(4))"
    attacked, after = await _run_then_recover(program, sandbox_cpu_seconds=1)
    assert attacked.limit is not None
    assert after.answer == "still here"


async def test_deep_recursion_is_a_clean_recursion_error():
    attacked, after = await _run_then_recover("def f(n):\n    return f(n + 1)\nf(0)")
    assert attacked.error.kind == "RecursionError"
    assert attacked.error.line == 2
    assert not attacked.restarted
    assert after.answer == "still here"


async def test_nested_generator_chain_crash_leaves_the_host_running():
    program = "g = iter([1])\nfor _ in range(10 ** 6):\n    g = (x for x in g)\nnext(g)"
    attacked, after = await _run_then_recover(program, sandbox_cpu_seconds=2)
    assert attacked.status == "error"
    assert after.answer == "still here"


async def test_output_flood_is_stopped_by_the_output_limit():
    attacked, after = await _run_then_recover("while True:\n    print('x' * 1000)", sandbox_output_bytes=100_000)
    assert attacked.error.kind == "SandboxLimitExceeded"
    assert attacked.limit.setting == "Limits.sandbox_output_bytes"
    assert len(attacked.output) <= 100_000
    assert after.answer == "still here"


async def test_output_flood_cannot_be_swallowed_by_except_exception():
    program = "for i in range(10 ** 6):\n    try:\n        print('y' * 1000)\n    except Exception:\n        pass"
    attacked, _ = await _run_then_recover(program, sandbox_output_bytes=50_000)
    assert attacked.limit.setting == "Limits.sandbox_output_bytes"


async def test_thread_bomb_through_nested_pmap_stays_under_the_thread_cap():
    program = """
def level(n):
    if n == 0:
        return 1
    return sum(pmap(lambda i: level(n - 1), range(8), concurrency=8))
done(level(3))
"""
    attacked, after = await _run_then_recover(program, sandbox_threads=16, max_concurrency=8)
    assert attacked.answer == 512
    assert attacked.threads_peak <= 16
    assert after.answer == "still here"


async def test_sleeping_program_is_stopped_by_the_turn_clock():
    # The language layer offers no sleep; a tool that never answers holds the program instead.
    async def hang() -> str:
        await trio.sleep_forever()

    async with Sandbox(tools=[hang], limits=limits(call_timeout=2, pmap_timeout=2, turn_timeout=2)) as sandbox:
        with trio.fail_after(20):
            attacked = await sandbox.execute("tool.hang()")
    assert attacked.error.kind == "TimeLimitExceeded"
    assert "call clock expired" in attacked.error.message or "turn clock expired" in attacked.error.message


async def test_huge_int_to_str_is_refused():
    attacked, _ = await _run_then_recover("x = str(10 ** 100000)")
    assert attacked.error.kind == "ValueError"
