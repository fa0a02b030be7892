"""A dead sandbox child is reported as what killed it: a limit, the turn clock, a crash, or a kill
from outside, each with its own error class, setting and message."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import trio

from ptcrun import errors
from ptcrun.sandbox import Sandbox
from ptcrun.sandbox.host._death import Death, classify, lifetime_cpu_ceiling

from .conftest import limits

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals, rlimits and /proc as on Linux")

GiB = 1 << 30
MiB = 1 << 20


def _hang_tool():
    async def hang(i: int) -> int:
        await trio.sleep_forever()
        return i

    return hang


async def _killed_from_outside(sig: int, **changes):
    """Start a pmap whose items wait on a tool, signal the child from outside, then recover."""
    items_started = trio.Event()

    def on_event(event):
        if event["type"] == "item.start":
            items_started.set()

    program = (
        "warm = sum(i * i for i in range(300_000))\n"  # a little CPU before the pmap
        "pmap(lambda i: tool.hang(i), range(50), concurrency=4)\n"
    )
    async with Sandbox(tools=[_hang_tool()], limits=limits(**changes), on_event=on_event) as sandbox:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:

                async def signal_it() -> None:
                    await items_started.wait()
                    assert sandbox.pid is not None
                    os.kill(sandbox.pid, sig)

                nursery.start_soon(signal_it)
                result = await sandbox.execute(program)
            after = await sandbox.execute("done('still here')")
    return result, after


async def test_kill_9_from_outside_mid_pmap_is_not_blamed_on_a_limit():
    result, after = await _killed_from_outside(signal.SIGKILL)
    assert result.error.kind == "SandboxError"
    assert type(result.limit) is errors.SandboxError
    message = result.error.message
    assert message.startswith("the sandbox process was killed from outside by SIGKILL after ")
    assert "s of CPU; no limit of ptcrun stopped it (peak memory " in message
    assert "Limits.sandbox_cpu_seconds" not in message
    assert result.cpu_seconds is not None and 0 < result.cpu_seconds < 3
    assert result.restarted
    assert after.answer == "still here"
    assert "killed from outside by SIGKILL" in after.note
    assert "earlier variables are gone" in after.note


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGXCPU], ids=["SIGTERM", "SIGXCPU"])
async def test_other_signals_from_outside_are_named(sig):
    """SIGXCPU is the CPU limit's own signal, yet 0.1 s of CPU cannot have reached 30 s."""
    result, after = await _killed_from_outside(sig, sandbox_cpu_seconds=30)
    assert type(result.limit) is errors.SandboxError
    name = signal.Signals(sig).name
    assert result.error.message.startswith(f"the sandbox process was killed from outside by {name} after ")
    assert "no limit of ptcrun stopped it" in result.error.message
    assert after.answer == "still here"


async def test_pid_names_the_running_child_and_changes_with_a_restart():
    sandbox = Sandbox(limits=limits(turn_timeout=1, pmap_timeout=1, call_timeout=1), tools=[_hang_tool()])
    assert sandbox.pid is None
    async with sandbox:
        first = sandbox.pid
        assert first is not None
        os.kill(first, 0)  # a live process of ours
        with trio.fail_after(20):
            await sandbox.execute("tool.hang(1)")  # the turn clock replaces the child
            await sandbox.execute("x = 1")
        assert sandbox.pid not in (None, first)
    assert sandbox.pid is None


async def test_cpu_burn_names_the_cpu_limit_with_the_measured_time():
    async with Sandbox(limits=limits(sandbox_cpu_seconds=1)) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute("while True:\n    pass")
    assert result.error.kind == "SandboxLimitExceeded"
    assert isinstance(result.limit, errors.SandboxLimitExceeded)
    assert result.limit.setting == "Limits.sandbox_cpu_seconds"
    assert result.limit.limit == 1
    assert result.limit.observed is not None and result.limit.observed >= 0.9
    assert result.limit.restarted
    assert result.error.message.startswith(
        "the program used more than 1 CPU seconds (Limits.sandbox_cpu_seconds): "
        "the kernel stopped the sandbox with SIGXCPU after "
    )
    assert result.error.message.endswith("Do less work per program, or raise sandbox_cpu_seconds.")
    assert result.cpu_seconds == result.limit.observed


async def test_memory_blow_up_names_the_memory_limit():
    program = "rows = []\nwhile True:\n    rows.append([0] * 1_000_000)"
    async with Sandbox(limits=limits(sandbox_memory_bytes=256 * MiB)) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute(program)
            after = await sandbox.execute("done('fresh')")
    assert result.error.kind == "SandboxLimitExceeded"
    assert isinstance(result.limit, errors.SandboxLimitExceeded)
    assert result.limit.setting == "Limits.sandbox_memory_bytes"
    assert result.limit.limit == 256 * MiB
    assert result.error.message.startswith(
        "the program ran out of memory: it needed more than 268,435,456 bytes (Limits.sandbox_memory_bytes)"
    )
    assert result.restarted
    assert after.answer == "fresh"


async def test_a_child_that_aborts_after_a_failed_allocation_names_the_memory_limit():
    """Stands in for C code that aborts when malloc fails under the address-space limit."""
    program = "import os, sys\nsys.stderr.write('MemoryError: cannot allocate array\\n')\nsys.stderr.flush()\nos.abort()"
    async with Sandbox(limits=limits(), _language_layer=False, _os_layers=False) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute(program)
    assert isinstance(result.limit, errors.SandboxLimitExceeded)
    assert result.limit.setting == "Limits.sandbox_memory_bytes"
    assert result.limit.observed is not None  # the peak resident memory, from the rusage
    assert result.error.message.startswith(
        "the program ran out of memory (Limits.sandbox_memory_bytes=1 GiB) and the sandbox died with SIGABRT, at "
    )
    assert "child said: MemoryError: cannot allocate array" in result.error.message


async def test_what_an_earlier_program_wrote_to_stderr_explains_nothing_now():
    async with Sandbox(limits=limits(), _language_layer=False, _os_layers=False) as sandbox:
        with trio.fail_after(20):
            await sandbox.execute("import sys\nsys.stderr.write('MemoryError\\n')\nsys.stderr.flush()")
            await trio.sleep(0.2)  # stderr is drained on a thread, apart from the frames
            result = await sandbox.execute("import os\nos.abort()")
    assert type(result.limit) is errors.SandboxError
    assert result.error.message.startswith("the sandbox crashed (SIGABRT) after ")
    assert "MemoryError" not in result.error.message


async def test_segfault_is_a_crash_not_a_limit():
    program = "g = iter([1])\nfor _ in range(10 ** 6):\n    g = (x for x in g)\nnext(g)"
    async with Sandbox(limits=limits(sandbox_cpu_seconds=30)) as sandbox:
        with trio.fail_after(60):
            result = await sandbox.execute(program)
            after = await sandbox.execute("done('still here')")
    assert result.error.kind == "SandboxError"
    assert type(result.limit) is errors.SandboxError
    assert result.error.message.startswith("the sandbox crashed (SIGSEGV) after ")
    assert "Limits." not in result.error.message
    assert "make the program nest less" in result.error.message
    assert after.answer == "still here"


async def test_turn_clock_is_the_hosts_own_kill_and_says_so():
    async with Sandbox(tools=[_hang_tool()], limits=limits(turn_timeout=1, pmap_timeout=1, call_timeout=1)) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute("tool.hang(1)")
            after = await sandbox.execute("done(1)")
    assert result.error.kind == "TimeLimitExceeded"
    assert isinstance(result.limit, errors.TimeLimitExceeded)
    assert result.limit.clock == "turn" and result.limit.setting == "Limits.turn_timeout"
    assert result.error.message.startswith("turn clock expired after 1 s (Limits.turn_timeout)")
    assert "killed from outside" not in after.note
    assert "turn clock expired after 1 s" in after.note


async def test_closing_the_sandbox_under_a_program_is_not_an_outside_kill():
    async with Sandbox(tools=[_hang_tool()], limits=limits()) as sandbox:
        results = []

        async def run() -> None:
            results.append(await sandbox.execute("tool.hang(1)"))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                await trio.sleep(0.5)
                await sandbox.aclose()
    [result] = results
    assert type(result.limit) is errors.SandboxError
    assert result.error.message.startswith("ptcrun stopped the sandbox itself (the sandbox was closed)")


async def test_a_program_ending_the_child_reports_its_exit_code():
    async with Sandbox(limits=limits(), _language_layer=False, _os_layers=False) as sandbox:
        result = await sandbox.execute("import os\nos._exit(3)")
    assert type(result.limit) is errors.SandboxError
    assert result.error.message.startswith("the sandbox child exited in the middle of the program (exit code 3)")


# -- the rules, on evidence the kernel cannot be made to produce in a test ----------------------

LIMITS = limits(sandbox_cpu_seconds=10, sandbox_memory_bytes=1 * GiB)
KILL, XCPU = -signal.SIGKILL, -signal.SIGXCPU


@pytest.mark.parametrize(
    ("death", "cls", "setting", "start"),
    [
        pytest.param(
            Death(returncode=KILL, cpu_seconds=9.95, life_cpu_seconds=12),
            errors.SandboxLimitExceeded, "Limits.sandbox_cpu_seconds",
            "the program used more than 10 CPU seconds (Limits.sandbox_cpu_seconds): "
            "the kernel stopped the sandbox with SIGKILL after 9.95 s of CPU",
            id="kill-at-the-cpu-limit",
        ),
        pytest.param(
            Death(returncode=KILL, cpu_seconds=3, life_cpu_seconds=lifetime_cpu_ceiling(LIMITS) - 0.5),
            errors.SandboxLimitExceeded, "Limits.sandbox_cpu_seconds",
            "the sandbox used 600 CPU seconds over its life, its ceiling of 601 s",
            id="kill-at-the-lifetime-cpu-ceiling",
        ),
        pytest.param(
            Death(returncode=XCPU, life_cpu_seconds=10.5),
            errors.SandboxLimitExceeded, "Limits.sandbox_cpu_seconds",
            "the program used more than 10 CPU seconds (Limits.sandbox_cpu_seconds): "
            "the kernel stopped the sandbox with SIGXCPU after 10.50 s of CPU",
            id="xcpu-without-a-baseline-uses-the-lifetime",
        ),
        pytest.param(
            Death(returncode=KILL, cpu_seconds=0.6, peak_rss_bytes=900 * MiB, oom_killed=True),
            errors.SandboxLimitExceeded, "Limits.sandbox_memory_bytes",
            "the kernel's out-of-memory killer stopped the sandbox (SIGKILL) at 900 MiB resident, "
            "before it reached its own limit of 1 GiB (Limits.sandbox_memory_bytes)",
            id="oom-killer",
        ),
        pytest.param(
            Death(returncode=KILL, cpu_seconds=0.6, peak_rss_bytes=900 * MiB),
            errors.SandboxLimitExceeded, "Limits.sandbox_memory_bytes",
            "the sandbox was killed (SIGKILL) at 900 MiB resident, close to its limit of 1 GiB "
            "(Limits.sandbox_memory_bytes), most likely by the kernel's out-of-memory killer",
            id="probable-oom-killer-without-a-cgroup",
        ),
        pytest.param(
            Death(returncode=-signal.SIGSEGV, cpu_seconds=0.2, peak_rss_bytes=1000 * MiB),
            errors.SandboxLimitExceeded, "Limits.sandbox_memory_bytes",
            "the program ran out of memory (Limits.sandbox_memory_bytes=1 GiB) and the sandbox died "
            "with SIGSEGV, at 1000 MiB resident; its memory was near the limit",
            id="segfault-at-the-memory-limit",
        ),
        pytest.param(
            Death(returncode=KILL, cpu_seconds=0.6, peak_rss_bytes=900 * MiB, oom_killed=False),
            errors.SandboxError, None,
            "the sandbox process was killed from outside by SIGKILL after 0.6 s of CPU; no limit of "
            "ptcrun stopped it (peak memory 900 MiB of 1 GiB, no out-of-memory kill recorded)",
            id="kill-with-high-memory-but-no-oom-kill",
        ),
        pytest.param(
            Death(returncode=KILL, cpu_seconds=0.6, host_signals=((signal.SIGKILL, "turn clock"),)),
            errors.SandboxError, None,
            "ptcrun stopped the sandbox itself with SIGKILL (turn clock)",
            id="the-hosts-own-kill",
        ),
        pytest.param(
            Death(returncode=-signal.SIGSYS, cpu_seconds=0.1),
            errors.SandboxError, None,
            "the program attempted a forbidden system call and was stopped (SIGSYS)",
            id="seccomp",
        ),
        pytest.param(
            Death(returncode=-signal.SIGABRT, cpu_seconds=0.1, stderr="Fatal Python error: bad thing\n"),
            errors.SandboxError, None,
            "the sandbox crashed (SIGABRT) after 0.1 s of CPU; the sandbox was restarted",
            id="abort",
        ),
    ],
)
def test_deaths_are_classified_by_their_evidence(death, cls, setting, start):
    exc = classify(death, LIMITS)
    assert type(exc) is cls
    assert getattr(exc, "setting", None) == setting
    assert str(exc).startswith(start), str(exc)
    if setting is not None:
        assert exc.restarted


def test_a_crash_shows_the_childs_last_words():
    death = Death(returncode=-signal.SIGABRT, stderr="Traceback...\nFatal Python error: bad thing\n")
    assert str(classify(death, LIMITS)).endswith("child said: Fatal Python error: bad thing")


def test_a_generator_freed_while_it_ran_is_named_as_such_not_blamed_on_nesting():
    # What CPython 3.11 wrote before the child died, when an iterator shared by pmap items let
    # go of the generator another item was running.
    stderr = (
        "Exception ignored in: <generator object rows at 0x7f3a2c1d5e40>\n"
        "Traceback (most recent call last):\n"
        "ValueError: generator already executing\n"
    )
    shared = str(classify(Death(returncode=-signal.SIGSEGV, cpu_seconds=0.1, stderr=stderr), LIMITS))
    assert "asked for values by pmap items at once" in shared and "Give each pmap item its own iterator" in shared
    assert "nest" not in shared
    assert shared.endswith("child said: ValueError: generator already executing")
    nested = str(classify(Death(returncode=-signal.SIGSEGV, cpu_seconds=0.1), LIMITS))
    assert "make the program nest less" in nested and "pmap" not in nested
