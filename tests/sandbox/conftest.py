"""Helpers for tests that run programs in a real sandbox child."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio

from ptcrun._limits import Limits
from ptcrun.sandbox import Sandbox

# Short limits so that a test which hits one ends within seconds.
TEST_LIMITS = Limits(
    call_timeout=5,
    pmap_timeout=10,
    turn_timeout=15,
    run_timeout=60,
    sandbox_cpu_seconds=3,
    sandbox_memory_bytes=1 << 30,
)


def limits(**changes: Any) -> Limits:
    return attrs.evolve(TEST_LIMITS, **changes)


class InFlight:
    """An async tool that records how many calls overlap, and which were cancelled."""

    def __init__(self, delay: float | Callable[[int], float] = 0.05) -> None:
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []

    async def __call__(self, x: int) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(x)
        try:
            delay = self.delay(x) if callable(self.delay) else self.delay
            await trio.sleep(delay)
            self.finished.append(x)
            return x
        except trio.Cancelled:
            self.cancelled.append(x)
            raise
        finally:
            self.now -= 1


@pytest.fixture
def in_flight() -> InFlight:
    return InFlight()


def make_tool(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    return fn


__all__ = ["TEST_LIMITS", "InFlight", "Sandbox", "limits", "make_tool"]
