"""Limits refuses, before anything runs, values the OS or the sandbox cannot take."""

from __future__ import annotations

import sys

import pytest
import trio

from ptcrun import Limits, errors
from ptcrun.sandbox import Sandbox


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"sandbox_memory_bytes": 2**70},
            "Limits.sandbox_memory_bytes=1,180,591,620,717,411,303,424 is more than the OS can take as "
            "a memory limit (at most 9,223,372,036,854,775,807 bytes). Pass a real ceiling, such as "
            "1 << 30 (1 GiB).",
            id="memory-beyond-rlim_t",
        ),
        pytest.param(
            {"sandbox_memory_bytes": 1_000_000},
            "Limits.sandbox_memory_bytes=1,000,000 is too small for the sandbox to start: its "
            "interpreter alone takes about 30 MiB. Give it at least 67,108,864 bytes (64 MiB).",
            id="memory-too-small",
        ),
        pytest.param(
            {"sandbox_cpu_seconds": 1e300},
            "Limits.sandbox_cpu_seconds=1e+300 is more than the OS can take as a CPU limit (its ceiling "
            "over the sandbox's life is 20 times it; at most 1e+15 s). Pass a real ceiling, such as 30.",
            id="cpu-beyond-rlim_t",
        ),
        pytest.param(
            {"sandbox_threads": 2**63},
            "Limits.sandbox_threads=9,223,372,036,854,775,808 is larger than any count the sandbox can "
            "use; pass at most 2**63 - 1.",
            id="threads",
        ),
        pytest.param(
            {"max_pmap_items": 10**5000},
            "Limits.max_pmap_items=a 16,610-bit number is larger than any count the sandbox can use; "
            "pass at most 2**63 - 1.",
            id="a-number-too-long-to-print",
        ),
        pytest.param(
            {"sandbox_output_bytes": -(10**5000)},
            "Limits.sandbox_output_bytes must be a positive whole number; got a 16,610-bit number.",
            id="negative-and-too-long-to-print",
        ),
    ],
)
def test_values_the_os_cannot_take_are_refused_with_the_field_and_the_fix(changes, message):
    with pytest.raises(errors.ConfigError) as caught:
        Limits(**changes)
    assert str(caught.value) == message


@pytest.mark.parametrize("field", ["max_concurrency", "sandbox_output_bytes", "sandbox_threads", "max_pmap_items"])
def test_counts_sent_to_the_sandbox_stop_at_64_bits(field):
    Limits(**{field: 2**63 - 1})
    with pytest.raises(errors.ConfigError, match=f"Limits.{field}=.* pass at most 2\\*\\*63 - 1"):
        Limits(**{field: 2**63})


@pytest.mark.skipif(sys.platform != "linux", reason="rlimits as on Linux")
async def test_the_extreme_values_limits_accepts_are_taken_by_the_sandbox():
    limits = Limits(sandbox_memory_bytes=2**63 - 1, sandbox_cpu_seconds=10**15)
    async with Sandbox(limits=limits) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute("done(sum(range(10)))")
    assert result.answer == 45
