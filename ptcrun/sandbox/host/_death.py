"""Why a sandbox child died: name the cause truthfully, from the evidence the host gathered.

The exit status alone does not say who ended the child. SIGKILL is what the kernel sends at
the hard CPU limit, what the out-of-memory killer sends, what the host sends when a clock runs
out, and what anyone with the permission can send with ``kill -9``. SIGSEGV may be a bug in C
code or an allocation that failed under the address-space limit. Blaming every SIGKILL on the
CPU limit tells the planner to do less work when the work was never the problem, so the host
measures first (a :class:`~._watch.ChildWatch` gathers a :class:`Death`): the CPU time the
program used, the child's peak resident memory, the out-of-memory kills of the host's memory
cgroup, the signals the host sent itself, the child's last words on stderr.

:func:`classify` turns that evidence into the error the planner and the user read: a
:class:`~ptcrun.errors.SandboxLimitExceeded` when a limit of ptcrun (or the machine's memory)
explains the death, naming the setting that moves it, else a
:class:`~ptcrun.errors.SandboxError` that says what happened: a crash, a forbidden system
call, a kill from outside. A rule whose evidence is missing (``None``) does not fire.
"""

from __future__ import annotations

import math
import re
import signal

import attrs

from ... import errors
from ..._limits import Limits
from .._ceilings import lifetime_cpu_seconds

__all__ = ["Death", "classify", "lifetime_cpu_ceiling"]

#: Measured CPU at or above this share of ``sandbox_cpu_seconds`` counts as "at the limit":
#: the host reads the baseline a moment before the child arms its limit, and the kernel
#: samples CPU time once per tick.
_NEAR_CPU = 0.9
#: Peak resident memory at or above this share of ``sandbox_memory_bytes`` is memory
#: pressure: resident memory can never pass the address-space limit.
_NEAR_MEMORY = 0.8
#: Words a dying child writes to stderr when an allocation failed.
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|Cannot allocate memory|out of memory|bad_alloc|ENOMEM", re.IGNORECASE
)
_CRASH_SIGNALS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT, signal.SIGTRAP}
)
_RESTARTED = "the sandbox was restarted and earlier variables are gone"
#: What CPython writes to stderr when it frees a generator that is still running (its close()
#: fails, and the error is printed as unraisable): the mark of a use after free, not nesting.
_FREED_WHILE_RUNNING = "generator already executing"


def lifetime_cpu_ceiling(limits: Limits) -> int:
    """The hard ``RLIMIT_CPU`` of a child, in seconds of CPU over its whole life.

    The soft limit the child sets (:func:`lifetime_cpu_seconds`), rounded up, plus the one
    second between the soft and the hard limit.
    """
    return math.ceil(lifetime_cpu_seconds(limits.sandbox_cpu_seconds)) + 1


@attrs.frozen(kw_only=True)
class Death:
    """The evidence of one child's death, gathered by the host once the child is gone.

    Attributes:
        returncode: the exit code, or minus the signal that ended the child; ``None`` when
            the host could not learn it.
        cpu_seconds: CPU time the program used (the child's total at death minus its
            baseline), when both were measured.
        life_cpu_seconds: CPU time the child used over its whole life.
        peak_rss_bytes: the child's peak resident memory.
        oom_killed: the out-of-memory killer killed a process of the host's memory cgroup
            while the program ran; ``None`` when the counter is unreadable.
        host_signals: the signals the host itself sent the child, each with why.
        stderr: the last few KiB the child wrote to its stderr.
    """

    returncode: int | None = None
    cpu_seconds: float | None = None
    life_cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    oom_killed: bool | None = None
    host_signals: tuple[tuple[int, str], ...] = ()
    stderr: str = ""

    @property
    def signal(self) -> int | None:
        """The signal that ended the child, if one did."""
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


def _size(n: float) -> str:
    """Render a byte count in binary units: ``512 MiB``, ``1.5 GiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(stderr: str) -> str:
    # Only the last line: it names the fault without showing the host's own code.
    lines = stderr.strip().splitlines()
    return f"child said: {lines[-1].strip()[:300]}" if lines else ""


def _crash_hint(stderr: str) -> str:
    """What most likely crashed the child, from its last words, and what the program can do."""
    if _FREED_WHILE_RUNNING in stderr:
        return (
            "The child's last words show a generator freed while a thread still ran it (a use "
            "after free in CPython 3.11): one iterator over a generator, asked for values by "
            "pmap items at once. Give each pmap item its own iterator, or share a list. The "
            "sandbox guards the iterators known to do this, so this one is a bug worth "
            "reporting with the program."
        )
    return (
        "The crash a program is known to cause is a C stack overflow from very deep nesting "
        "(generators wrapping generators, deeply nested data, recursion through built-ins): if "
        "the program nests deeply, make the program nest less; if not, the crash is a bug in "
        "CPython or the sandbox, worth reporting with the program."
    )


def _cpu(death: Death) -> str:
    return "" if death.cpu_seconds is None else f" after {death.cpu_seconds:.1f} s of CPU"


def classify(death: Death, limits: Limits) -> errors.PtcrunError:
    """Return the error that says why the child died: which limit, measured how, or what else.

    Rules, first match wins:

    1. a signal the host sent itself: "ptcrun stopped the sandbox (why)";
    2. SIGKILL or SIGXCPU with the child's CPU at the lifetime ceiling, or the program's CPU
       at ``sandbox_cpu_seconds``: the CPU limit;
    3. SIGKILL while the cgroup counted an out-of-memory kill: the out-of-memory killer;
    4. an abnormal end with the child's stderr naming a failed allocation, or a crash with
       peak memory near ``sandbox_memory_bytes``: the memory limit;
    5. SIGSYS: a forbidden system call (seccomp); SIGXFSZ: a file write;
    6. SIGKILL with peak memory near the limit and no readable counter: most likely the
       out-of-memory killer;
    7. SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP: a crash;
    8. any other signal: killed from outside, no limit of ptcrun involved;
    9. an exit code: the child exited in the middle of the program.
    """
    number = death.signal
    name = _signal_name(number) if number is not None else ""
    peak = death.peak_rss_bytes
    memory = limits.sandbox_memory_bytes
    near_memory = peak is not None and peak >= _NEAR_MEMORY * memory
    said = _last_line(death.stderr)

    sent = [why for sig, why in death.host_signals if number is None or sig == number]
    if sent:
        via = f" with {name}" if name else ""
        return errors.SandboxError(
            f"ptcrun stopped the sandbox itself{via} ({sent[0]}); {_RESTARTED}. {said}".strip()
        )
    if number in (signal.SIGKILL, signal.SIGXCPU):
        cpu_limit = _cpu_limit(death, limits, name)
        if cpu_limit is not None:
            return cpu_limit
    if number == signal.SIGKILL and death.oom_killed:
        resident = f" at {_size(peak)} resident" if peak is not None else ""
        return errors.SandboxLimitExceeded(
            f"the kernel's out-of-memory killer stopped the sandbox (SIGKILL){resident}, before "
            f"it reached its own limit of {_size(memory)} (Limits.sandbox_memory_bytes): the "
            f"machine ran out of memory first; {_RESTARTED}. Use less memory per program, or "
            "lower sandbox_memory_bytes to what the machine can spare, so that the program gets "
            "a MemoryError instead.",
            setting="Limits.sandbox_memory_bytes",
            limit=memory,
            observed=peak,
            restarted=True,
        )
    abnormal = number is not None or (death.returncode is not None and death.returncode != 0)
    failed_allocation = abnormal and _OUT_OF_MEMORY.search(death.stderr) is not None
    if failed_allocation or (number in _CRASH_SIGNALS and near_memory):
        how = f"died with {name}" if name else f"exited with code {death.returncode}"
        resident = f", at {_size(peak)} resident" if peak is not None else ""
        evidence = said if failed_allocation else "its memory was near the limit"
        return errors.SandboxLimitExceeded(
            f"the program ran out of memory (Limits.sandbox_memory_bytes={_size(memory)}) and the "
            f"sandbox {how}{resident}; {evidence}; {_RESTARTED}. Process the data in smaller "
            "pieces, or raise sandbox_memory_bytes.",
            setting="Limits.sandbox_memory_bytes",
            limit=memory,
            observed=peak,
            restarted=True,
        )
    if number == signal.SIGSYS:
        return errors.SandboxError(
            f"the program attempted a forbidden system call and was stopped (SIGSYS); {_RESTARTED}. "
            "Programs cannot run commands, open files or use the network: use tools for that."
        )
    if number == signal.SIGXFSZ:
        return errors.SandboxError(
            f"the program tried to write a file and was stopped (SIGXFSZ); {_RESTARTED}. "
            "Programs cannot write files: print results, or return them with done()."
        )
    if number == signal.SIGKILL and near_memory and death.oom_killed is None:
        assert peak is not None
        return errors.SandboxLimitExceeded(
            f"the sandbox was killed (SIGKILL) at {_size(peak)} resident, close to its limit of "
            f"{_size(memory)} (Limits.sandbox_memory_bytes), most likely by the kernel's "
            f"out-of-memory killer; {_RESTARTED}. Use less memory per program, or lower "
            "sandbox_memory_bytes to what the machine can spare, so that the program gets a "
            "MemoryError instead.",
            setting="Limits.sandbox_memory_bytes",
            limit=memory,
            observed=peak,
            restarted=True,
        )
    if number in _CRASH_SIGNALS:
        hint = _crash_hint(death.stderr)
        return errors.SandboxError(
            f"the sandbox crashed ({name}){_cpu(death)}; {_RESTARTED}. {hint} {said}".strip()
        )
    if number is not None:
        seen = []
        if peak is not None:
            seen.append(f"peak memory {_size(peak)} of {_size(memory)}")
        if death.oom_killed is False:
            seen.append("no out-of-memory kill recorded")
        shown = f" ({', '.join(seen)})" if seen else ""
        return errors.SandboxError(
            f"the sandbox process was killed from outside by {name}{_cpu(death)}; no limit of "
            f"ptcrun stopped it{shown}. {_RESTARTED[0].upper()}{_RESTARTED[1:]}. Run the program "
            "again; if this repeats, look for what kills processes on this machine (a "
            "supervisor, a script, a user)."
        )
    status = "an unknown status" if death.returncode is None else f"exit code {death.returncode}"
    return errors.SandboxError(
        f"the sandbox child exited in the middle of the program ({status}){_cpu(death)}; "
        f"{_RESTARTED}. {said}".strip()
    )


def _cpu_limit(death: Death, limits: Limits, name: str) -> errors.SandboxLimitExceeded | None:
    """The CPU-limit error, if the measured CPU time puts the child at one of its CPU limits."""
    allowed = limits.sandbox_cpu_seconds
    ceiling = lifetime_cpu_ceiling(limits)
    life = death.life_cpu_seconds
    if life is not None and life >= ceiling - 1:
        return errors.SandboxLimitExceeded(
            f"the sandbox used {life:.0f} CPU seconds over its life, its ceiling of {ceiling} s "
            f"(20 × Limits.sandbox_cpu_seconds, at least 600 s), so the kernel stopped it with "
            f"{name}; {_RESTARTED}, and the fresh sandbox starts from zero. Do less work per "
            "program, or raise sandbox_cpu_seconds.",
            setting="Limits.sandbox_cpu_seconds",
            limit=allowed,
            observed=life,
            restarted=True,
        )
    used = death.cpu_seconds
    if used is None and name == "SIGXCPU":
        # Without a baseline the child's whole life is an upper bound; with no rusage at all,
        # SIGXCPU (the kernel's own signal for this limit) is the only evidence there is.
        used = life
        if used is not None and used < _NEAR_CPU * allowed:
            return None
    elif used is None or used < _NEAR_CPU * allowed:
        return None
    measured = "" if used is None else f" after {used:.2f} s of CPU"
    return errors.SandboxLimitExceeded(
        f"the program used more than {allowed:g} CPU seconds (Limits.sandbox_cpu_seconds): the "
        f"kernel stopped the sandbox with {name}{measured}; {_RESTARTED}. Do less work per "
        "program, or raise sandbox_cpu_seconds.",
        setting="Limits.sandbox_cpu_seconds",
        limit=allowed,
        observed=used,
        restarted=True,
    )
