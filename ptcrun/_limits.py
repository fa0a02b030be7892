"""Limits: every ceiling a run obeys, with its one default."""

from __future__ import annotations

import math
from typing import Literal

import attrs

from .errors import ConfigError

__all__ = ["Limits"]


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(
            f"Limits.{attribute.name} must be a positive number (math.inf for no limit); "
            f"got {value!r}."
        )


def _positive_int(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"Limits.{attribute.name} must be a positive whole number; got {value!r}.")


def _finite_positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    _positive(instance, attribute, value)
    if math.isinf(value):
        raise ConfigError(
            f"Limits.{attribute.name} must be finite: the sandbox needs a hard ceiling; got inf."
        )


@attrs.frozen(kw_only=True)
class Limits:
    """Every ceiling a run obeys. Durations are seconds; ``math.inf`` means no limit.

    One ``Limits`` is shared by the planner, every worker and the sandbox, so a run has exactly
    one place where its ceilings are set. The four clocks nest: a call lives inside a pmap, a
    pmap inside a turn, a turn inside the run, so ``call_timeout <= pmap_timeout <=
    turn_timeout <= run_timeout`` is checked on construction (a clock longer than the one around
    it could never fire).

    Example::

        limits = Limits(max_tokens=50_000, max_concurrency=8, call_timeout=30)
    """

    #: Tokens the whole run may spend, planner and workers together, input plus output.
    #: Each LLM request reserves its worst case before it is sent, so this is never exceeded.
    max_tokens: int = attrs.field(default=200_000, validator=_positive_int)
    #: Planner turns (one reply, one program) before the run ends with status ``max_turns``.
    max_turns: int = attrs.field(default=8, validator=_positive_int)
    #: Tool and worker calls in flight at once, shared by every (nested) pmap of a run.
    max_concurrency: int = attrs.field(default=16, validator=_positive_int)
    #: Seconds one tool or worker call may take.
    call_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Seconds one ``pmap``/``pcalls`` may take, all items together.
    pmap_timeout: float = attrs.field(default=300.0, validator=_positive)
    #: Seconds one planner turn may take: the planner's reply plus running its program.
    turn_timeout: float = attrs.field(default=600.0, validator=_positive)
    #: Seconds the whole run may take.
    run_timeout: float = attrs.field(default=1800.0, validator=_positive)
    #: Output tokens the planner may write in one reply.
    planner_max_tokens: int = attrs.field(default=4_096, validator=_positive_int)
    #: Output tokens a worker may write in one reply (the default for ``tool.worker``).
    worker_max_tokens: int = attrs.field(default=1_024, validator=_positive_int)
    #: Characters of printed output the planner is shown per turn; the rest is cut from the
    #: middle with a note. The transcript keeps everything.
    max_print_chars: int = attrs.field(default=8_000, validator=_positive_int)
    #: What happens when the planner's own next request does not fit the budget:
    #: ``"fail"`` ends the run with status ``budget_exceeded``; ``"return_partial"`` does the
    #: same but returns the last value the program produced as the answer.
    on_budget_exceeded: Literal["fail", "return_partial"] = attrs.field(default="fail")
    #: Address space of the sandbox child, in bytes.
    sandbox_memory_bytes: int = attrs.field(default=1 << 30, validator=_positive_int)
    #: CPU seconds one program may use in the sandbox (threads included).
    sandbox_cpu_seconds: float = attrs.field(default=30.0, validator=_finite_positive)
    #: Bytes of output one program may print before it is stopped.
    sandbox_output_bytes: int = attrs.field(default=1 << 20, validator=_positive_int)
    #: Threads the sandbox child may run at once (pmap items run on threads).
    sandbox_threads: int = attrs.field(default=64, validator=_positive_int)
    #: Items one ``pmap`` call may take.
    max_pmap_items: int = attrs.field(default=100_000, validator=_positive_int)

    @on_budget_exceeded.validator
    def _check_policy(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in ("fail", "return_partial"):
            raise ConfigError(
                f"Limits.on_budget_exceeded must be 'fail' or 'return_partial'; got {value!r}."
            )

    def __attrs_post_init__(self) -> None:
        clocks = ("call", "pmap", "turn", "run")
        for inner, outer in zip(clocks, clocks[1:]):
            a = getattr(self, f"{inner}_timeout")
            b = getattr(self, f"{outer}_timeout")
            if a > b:
                raise ConfigError(
                    f"{inner}_timeout={a:g} is longer than {outer}_timeout={b:g}, so it could "
                    f"never fire; raise {outer}_timeout or lower {inner}_timeout."
                )
