"""Limits: every ceiling a run obeys, with its one default."""

from __future__ import annotations

import itertools
import math
from typing import Literal

import attrs

from .errors import ConfigError

try:
    import resource
except ImportError:  # not on Windows, which has no rlimits to overflow
    resource = None  # type: ignore[assignment]

__all__ = ["MAX_DEPTH", "Limits"]

#: The largest rlimit the OS takes: ``setrlimit`` reads a signed 64-bit value, and where
#: ``RLIM_INFINITY`` is positive that value itself means "no limit".
_RLIM_MAX = 2**63 - 1
if resource is not None and resource.RLIM_INFINITY > 0:
    _RLIM_MAX = min(_RLIM_MAX, resource.RLIM_INFINITY - 1)
#: The sandbox child's interpreter and modules take about 30 MiB of address space before any
#: program runs, and each pmap thread 4 MiB more: below this it cannot even start.
_MIN_SANDBOX_MEMORY = 64 << 20
#: The child's CPU ceiling over its whole life is 20 times ``sandbox_cpu_seconds``, computed
#: in floating point, and must fit an rlimit: this bound keeps it far from rounding past one.
_MAX_SANDBOX_CPU = 10**15


def _show(value: object) -> str:
    """Render a value for a message; an int of more than 4,300 digits cannot be formatted."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if value.bit_length() <= 256 else f"a {value.bit_length():,}-bit number"
    return repr(value)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(
            f"Limits.{attribute.name} must be a positive number (math.inf for no limit); "
            f"got {value!r}."
        )


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"Limits.{attribute.name} must be a positive whole number; got {_show(value)}.")


def _non_negative_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"Limits.{attribute.name} must be a whole number >= 0; got {_show(value)}.")


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    """A positive whole number sent to the sandbox child: past 2**63 - 1 it is no ceiling at all,
    and one of thousands of digits cannot even be decoded there."""
    _positive_int(instance, attribute, value)
    if value > 2**63 - 1:
        raise ConfigError(
            f"Limits.{attribute.name}={_show(value)} is larger than any count the sandbox can "
            "use; pass at most 2**63 - 1."
        )


#: The deepest ``Limits.max_depth`` allowed: each depth may keep ``max_concurrency`` sandbox
#: processes alive, so the bound keeps a run's processes countable.
MAX_DEPTH = 8


def _depth(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DEPTH:
        raise ConfigError(
            f"Limits.max_depth must be a whole number from 0 (no tool.agent) to {MAX_DEPTH}; "
            f"got {_show(value)}."
        )


def _memory_bytes(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _positive_int(instance, attribute, value)
    if value < _MIN_SANDBOX_MEMORY:
        raise ConfigError(
            f"Limits.sandbox_memory_bytes={_show(value)} is too small for the sandbox to start: its "
            f"interpreter alone takes about 30 MiB. Give it at least {_MIN_SANDBOX_MEMORY:,} "
            "bytes (64 MiB)."
        )
    if value > _RLIM_MAX:
        raise ConfigError(
            f"Limits.sandbox_memory_bytes={_show(value)} is more than the OS can take as a memory "
            f"limit (at most {_RLIM_MAX:,} bytes). Pass a real ceiling, such as 1 << 30 (1 GiB)."
        )


def _cpu_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _finite_positive(instance, attribute, value)
    if value > _MAX_SANDBOX_CPU:
        raise ConfigError(
            f"Limits.sandbox_cpu_seconds={value:g} is more than the OS can take as a CPU limit "
            f"(its ceiling over the sandbox's life is 20 times it; at most {_MAX_SANDBOX_CPU:.0e} s). "
            "Pass a real ceiling, such as 30."
        )


def _finite_positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
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
    max_concurrency: int = attrs.field(default=16, validator=_count)
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
    #: Tokens kept, while a program runs, for the feedback the planner reads after it. With the
    #: conversation so far and ``planner_max_tokens`` of reply they make the planner's next turn,
    #: which workers may not spend: a worker call that would eat into it fails with
    #: ``BudgetExceeded``, so the planner always gets to read what failed. When the budget is
    #: short, the printed output in the feedback is cut to fit.
    feedback_reserve_tokens: int = attrs.field(default=2_000, validator=_non_negative_int)
    #: What happens when the planner's own next request does not fit the budget:
    #: ``"fail"`` ends the run with status ``budget_exceeded``; ``"return_partial"`` does the
    #: same but returns the last value the program produced as the answer.
    on_budget_exceeded: Literal["fail", "return_partial"] = attrs.field(default="fail")
    #: Address space of the sandbox child, in bytes: at least 64 MiB, and no more than the
    #: OS takes as an rlimit (2**63 - 1 on Linux).
    sandbox_memory_bytes: int = attrs.field(default=1 << 30, validator=_memory_bytes)
    #: CPU seconds one program may use in the sandbox (threads included).
    sandbox_cpu_seconds: float = attrs.field(default=30.0, validator=_cpu_seconds)
    #: Bytes of output one program may print before it is stopped.
    sandbox_output_bytes: int = attrs.field(default=1 << 20, validator=_count)
    #: Threads the sandbox child may run at once (pmap items run on threads; two more are the
    #: child's own). ``None``: ``max(64, max_concurrency + 2)`` (:attr:`sandbox_thread_count`),
    #: which follows ``max_concurrency`` however the limits were built (``attrs.evolve`` too),
    #: so the child's threads never hold a pmap below ``max_concurrency`` calls in flight. A
    #: number given is kept as given.
    sandbox_threads: int | None = attrs.field(default=None, validator=attrs.validators.optional(_count))
    #: Items one ``pmap`` call may take.
    max_pmap_items: int = attrs.field(default=100_000, validator=_count)
    #: How deep ``tool.agent`` sub-runs may nest: 0 offers no ``tool.agent``, 1 lets the run's
    #: programs start sub-runs, 2 lets those start their own, and so on, up to
    #: ``MAX_DEPTH`` (8). Each depth may have up to ``max_concurrency`` sub-runs alive at once,
    #: each with its own sandbox process.
    max_depth: int = attrs.field(default=2, validator=_depth)

    @property
    def sandbox_thread_count(self) -> int:
        """The threads the sandbox child may run: ``sandbox_threads``, or when it is ``None``,
        ``max(64, max_concurrency + 2)`` (at most ``2**63 - 1``)."""
        if self.sandbox_threads is not None:
            return self.sandbox_threads
        return max(64, min(self.max_concurrency, 2**63 - 3) + 2)

    @on_budget_exceeded.validator
    def _check_policy(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("fail", "return_partial"):
            raise ConfigError(
                f"Limits.on_budget_exceeded must be 'fail' or 'return_partial'; got {value!r}."
            )

    def __attrs_post_init__(self) -> None:
        clocks = ("call", "pmap", "turn", "run")
        for inner, outer in itertools.pairwise(clocks):
            a = getattr(self, f"{inner}_timeout")
            b = getattr(self, f"{outer}_timeout")
            if a > b:
                raise ConfigError(
                    f"{inner}_timeout={a:g} is longer than {outer}_timeout={b:g}, so it could "
                    f"never fire; raise {outer}_timeout or lower {inner}_timeout."
                )
