"""The host side of the sandbox: start the child, run programs in it, enforce the turn clock.

A :class:`Sandbox` owns one child process at a time. The child keeps the program's namespace
from one :meth:`Sandbox.execute` to the next. When a program hits a limit that leaves the child
unusable (memory, CPU, the turn clock, a crash, a bad frame), the host kills the child's whole
process group and the next ``execute`` starts a fresh one, with a note that earlier variables
are gone. When the child dies on its own, the host gathers the evidence of why (its CPU time,
its peak memory, out-of-memory kills, the signals the host sent itself) and
:mod:`~._death` names the cause: a limit, a crash, or a kill from outside.

The sandbox hands the child's pipes to a :class:`~._channel.Channel`, its tools to a
:class:`~._calls.CallServer`, and each program's frames to a :class:`~._program.ProgramRun`.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import attrs
import trio

from ... import errors
from ..._limits import Limits
from ..._tools import Tool, collect_tools
from ...corpus._store import StoredChunks
from .. import _protocol
from .._results import ExecResult
from ._calls import BatchHandler, CallServer, Estimator, Event
from ._channel import CHILD_GONE, Channel
from ._corpus import CorpusServer, SharedText, StoreGrant
from ._death import Death
from ._program import ProgramRun
from ._watch import ChildWatch

__all__ = ["Sandbox", "execute"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[3]); "
    "from ptcrun.sandbox.child._loop import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)
# No variable of the host's environment reaches the child: API keys stay on the host.
# A fixed mmap threshold gives each buffer of 256 KiB or more (a batch of corpus text) back to
# the OS when freed; by default glibc raises the threshold after the first such free and serves
# the next from its heap, where batches of varying sizes fragmented it: reading a 390 MB corpus
# twice took the child from 33 MB to 114 MB, and with the fixed threshold it stays at 33 MB.
_CHILD_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "262144",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}
_START_TIMEOUT = 60.0
#: Seconds a child whose pipe closed gets to finish dying before the host kills it.
_DEATH_GRACE = 2.0
_PIPE_BYTES = 1 << 20
_RESTART_NOTE = (
    "this program ran in a fresh sandbox because the previous one was stopped ({reason}); "
    "earlier variables are gone, so define again what you need."
)


def _check_seed(seed: object) -> int:
    if seed is None:
        return secrets.randbits(63)
    if type(seed) is not int or not 0 <= seed < 2**63:
        raise errors.ConfigError(
            f"seed must be a whole number from 0 to 2**63 - 1 (it crosses as JSON), not {seed!r}"
        )
    return seed


def _no_budget() -> dict[str, Any]:
    return {"tokens": None, "turns": None, "seconds": None, "cost": None}


def _ignore(event: Event) -> None:
    pass


class Sandbox:
    """A confined child process that runs planner programs, one at a time.

    Use it as an async context manager::

        async with Sandbox(data=chunks, tools=[lookup], limits=Limits()) as sandbox:
            result = await sandbox.execute("print(len(data))")

    Args:
        data: the corpus: a sequence of chunk strings, or a mapping of names to such sequences;
            a ``StoredChunks`` (``ptcrun.open_store``) is read from its file. The child holds no
            copy: programs read chunks through a read-only ``data`` that asks the host for them.
        tools: user tools (plain functions, sync or async, or ``Tool`` objects), offered to
            programs as ``tool.<name>``. Arguments are validated on the host before a tool runs.
        limits: the ceilings; see :class:`~ptcrun.Limits`.
        budget: a function returning what ``budget.remaining`` shows, asked live each time a
            program reads it (``tokens``, ``turns``, ``seconds``, ``cost``).
        estimate: answers ``budget.estimate(texts, instruction, schema, max_tokens)`` with the
            tokens those worker calls would reserve; without it, programs that ask get a
            ``ToolError``.
        limiter: the ``trio.CapacityLimiter`` that bounds tool calls in flight; pass the run's
            one limiter to share it. Defaults to a new one of ``limits.max_concurrency``.
        on_event: called with each event (``call.start``, ``call.end``, ``pmap.start``,
            ``item.start``, ``item.end``, ``pmap.end``, ``output``, ``sandbox.start``) as it
            happens. Exceptions it raises propagate.
        batches: serves the requests of ``pmap(..., batch=True)`` (the runtime's batch engine);
            without it such a pmap fails with a ``ToolError``.
        strict: refuse to start unless every OS layer (seccomp, Landlock, no_new_privs) is
            active.
        seed: the seed of the generator behind the programs' ``random`` module, a whole number
            from 0 to ``2**63 - 1``. By default each sandbox draws its own. Every child it
            starts, a restarted one too, begins from this seed, and each ``sandbox.start`` event
            carries it, so the same programs run again with the same seed draw the same numbers
            (``ptcrun exec --turn`` does that).
    """

    def __init__(
        self,
        *,
        data: Sequence[str] | Mapping[str, Sequence[str]] = (),
        tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool] | None = None,
        limits: Limits | None = None,
        budget: Callable[[], Mapping[str, Any]] | None = None,
        estimate: Estimator | None = None,
        limiter: trio.CapacityLimiter | None = None,
        on_event: Callable[[Event], None] | None = None,
        batches: BatchHandler | None = None,
        strict: bool = False,
        seed: int | None = None,
        _language_layer: bool = True,
        _os_layers: bool = True,
    ) -> None:
        self.limits = limits if limits is not None else Limits()
        self._corpus = CorpusServer(_check_data(data))
        self._on_event = on_event or _ignore
        self._call_server = CallServer(
            tools=collect_tools(tools, allow_reserved=True),
            limits=self.limits,
            limiter=limiter or trio.CapacityLimiter(self.limits.max_concurrency),
            budget=budget or _no_budget,
            on_event=self._on_event,
            estimate=estimate,
            batches=batches,
        )
        self._strict = strict
        self._language_layer = _language_layer
        self._os_layers = _os_layers
        self._seed = _check_seed(seed)
        self._process: trio.Process | None = None
        self._channel: Channel | None = None
        # Kept after the child is stopped: its record of the host's own signals explains a
        # program whose child another task closed.
        self._watch: ChildWatch | None = None
        #: The store file the child reads itself, when the corpus is one whole store.
        self._grant: StoreGrant | None = None
        self._ids = itertools.count(1)
        self._stopped_reason: str | None = None
        self._busy = False
        #: The OS layers the child reported active (``None`` before start or when off).
        self.layers: dict[str, Any] | None = None

    @property
    def seed(self) -> int:
        """The seed of the programs' ``random`` generator in this sandbox (see the ``seed`` argument)."""
        return self._seed

    @property
    def pid(self) -> int | None:
        """The process id of the sandbox child, or ``None`` when none runs.

        A child that was stopped (by a limit, a crash, the turn clock) is replaced by one with a
        new id at the next :meth:`execute`. Read-only. A signal that someone else sends this
        process ends the running program with a ``SandboxError`` saying it was killed from
        outside, unless the child's measured CPU time or memory shows that a limit ended it.
        """
        return None if self._process is None else self._process.pid

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            # A clock that runs out mid-start (a sub-run's) cancels it, and ``async with``
            # calls no __aexit__ when __aenter__ raises: the half-started child goes here.
            if self._process is not None:
                await self._kill("its start was cancelled")
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the child. Safe to call twice."""
        if self._process is not None:
            with trio.CancelScope(shield=True):
                if not self._busy and self._channel is not None:
                    # An idle child exits on request; one still running a program (the run
                    # was cancelled mid-pmap) is killed at once.
                    # Bounded: the request may queue behind the rest of a reply a cancelled
                    # writer left, which a child that no longer reads would never take.
                    with trio.move_on_after(2):
                        try:
                            await self._channel.send(_protocol.Shutdown())
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                        await self._process.wait()
                await self._kill("the sandbox was closed")

    # -- child lifecycle -------------------------------------------------------------------

    async def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        _widen(to_child_w)
        from_child_r, from_child_w = os.pipe()
        err_r, err_w = os.pipe()
        # Memory for corpus text only when there is a corpus to read.
        shared = SharedText.create() if any(count for _, count in self._corpus.datasets()) else None
        self._grant = grant = self._corpus.grant_store()
        shared_fds = tuple(given.child_fd for given in (shared, grant) if given is not None)
        argv = [sys.executable, "-I", "-B", "-c", _BOOT, str(to_child_r), str(from_child_w), _PACKAGE_PARENT]
        try:
            self._process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                pass_fds=(to_child_r, from_child_w, *shared_fds),
                env=_CHILD_ENV,
                start_new_session=True,
            )
        except BaseException:
            for fd in (err_r, to_child_w, from_child_r):
                os.close(fd)
            if shared is not None:
                shared.close()
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
            os.close(err_w)
            for fd in shared_fds:
                os.close(fd)  # the child has its own copy
        self._corpus.shared = shared
        self._watch = watch = ChildWatch(self._process, err_r)
        self._channel = channel = Channel(to_child_w, from_child_r)
        try:
            with trio.fail_after(_START_TIMEOUT):
                await self._send_init(channel)
                frame = await channel.receive()
        except (trio.TooSlowError, _protocol.ProtocolError, *CHILD_GONE) as exc:
            await watch.reap(1)
            lines = (await watch.stderr_text()).strip().splitlines()
            # Only the last line: it names the fault without showing the host's own code.
            detail = f"child said: {lines[-1].strip()}" if lines else ""
            await self._kill("it failed to start")
            raise errors.SandboxError(f"the sandbox child failed to start ({exc!r}). {detail}") from None
        if not isinstance(frame, _protocol.Ready):
            await self._kill("it sent a frame before 'ready'")
            raise errors.SandboxError(f"the sandbox child sent {frame.OP!r} before 'ready'")
        self.layers = frame.layers
        self._on_event(
            {"type": "sandbox.start", "pid": self._process.pid, "layers": self.layers, "seed": self._seed}
        )

    async def _send_init(self, channel: Channel) -> None:
        limits = {
            "sandbox_output_bytes": self.limits.sandbox_output_bytes,
            "sandbox_memory_bytes": self.limits.sandbox_memory_bytes,
            "sandbox_cpu_seconds": self.limits.sandbox_cpu_seconds,
            "sandbox_threads": self.limits.sandbox_thread_count,
            "max_concurrency": self.limits.max_concurrency,
            "max_pmap_items": self.limits.max_pmap_items,
            # JSON has no infinity; the child treats a huge clock as none.
            "pmap_timeout": min(self.limits.pmap_timeout, 1e9),
        }
        await channel.send(
            _protocol.Init(
                limits=limits,
                tools=self._call_server.tool_names,
                data_kind="mapping" if self._corpus.named else "sequence",
                language_layer=self._language_layer,
                os_layers=self._os_layers,
                strict=self._strict,
                seed=self._seed,
                **self._shared_fields(),
                store_fd=None if self._grant is None else self._grant.child_fd,
            )
        )
        layouts = {} if self._grant is None else self._grant.layouts
        for name, count in self._corpus.datasets():
            await channel.send(_protocol.Data(name, count, last=False, layout=layouts.get(name)))
        await channel.send(_protocol.Data(None, 0, last=True))

    def _shared_fields(self) -> dict[str, Any]:
        shared = self._corpus.shared
        if shared is None:
            return {}
        return {
            "shared_fd": shared.child_fd,
            "shared_slots": shared.slots,
            "shared_slot_bytes": shared.slot_bytes,
        }

    async def _kill(self, reason: str) -> None:
        """Kill the child's process group, recording that the host did and why; wait for it."""
        process, self._process = self._process, None
        channel, self._channel = self._channel, None
        shared, self._corpus.shared = self._corpus.shared, None
        if shared is not None:
            shared.close()
        # Record the kill before the first checkpoint: the task running a program wakes when the
        # channel closes, and must find the host's own signal among the evidence of the death.
        if process is not None and self._watch is not None:
            self._watch.kill(reason)
        if channel is not None:
            await channel.aclose()
        if process is None:
            return
        with trio.CancelScope(shield=True):
            await process.wait()

    async def _death(self) -> Death:
        """Reap the dead child and return the evidence of why it died."""
        watch = self._watch
        if watch is None or self._process is None:  # another task closed the sandbox meanwhile
            return Death(host_signals=watch.host_signals if watch is not None else ())
        return await watch.death(_DEATH_GRACE)

    # -- execute ---------------------------------------------------------------------------

    # The turn loop passes what is left of the turn; the argument is the public contract.
    async def execute(self, source: str, *, timeout: float | None = None) -> ExecResult:  # noqa: ASYNC109
        """Run one program; return its output, its ``done``/``fail`` value or its error.

        Top-level names the program defines stay for the next program. The program runs under
        the turn clock (``timeout`` seconds, at most ``Limits.turn_timeout``); when it
        expires, or a memory, CPU or output limit is hit, or the child crashes or is killed from
        outside, the result says which (the limit and its setting, or what the host measured),
        and the child is replaced before the next program.
        Never raises for anything the program does.
        """
        if not isinstance(source, str):
            raise errors.ConfigError(f"a program must be a str of Python source; got {type(source).__name__}")
        note = None
        if self._process is None:
            if self._stopped_reason is not None:
                note = _RESTART_NOTE.format(reason=self._stopped_reason)
            await self._start()
        assert self._channel is not None
        clock = self.limits.turn_timeout if timeout is None else min(timeout, self.limits.turn_timeout)
        run = ProgramRun(self._channel, self._call_server, self.limits, self._on_event, corpus=self._corpus)
        assert self._watch is not None
        self._watch.program_starts()
        started = time.monotonic()
        # Cleared only when the program ends normally: if this call is cancelled, the child is
        # still running it, and aclose() kills it instead of waiting for it to exit.
        self._busy = True
        result = await self._run(run, _protocol.Exec(next(self._ids), source), clock)
        self._busy = False
        if result.restarted:
            # The first clause of the error names the limit: "turn clock expired after 1 s (...)".
            self._stopped_reason = run.restart_reason or (
                result.error.message.split(";")[0].rstrip(".") if result.error else "stopped"
            )
            await self._kill(self._stopped_reason)
        return attrs.evolve(result, note=note, seconds=time.monotonic() - started)

    async def _run(self, run: ProgramRun, request: _protocol.Exec, clock: float) -> ExecResult:
        """Run the program under the turn clock of ``clock`` seconds."""
        frame: _protocol.Result | None = None
        failure: ExecResult | None = None
        gone = False
        with trio.move_on_after(clock) as clock_scope:
            try:
                frame = await run.run(request)
            except CHILD_GONE:
                gone = True
            except _protocol.ProtocolError as exc:
                failure = run.stopped(
                    errors.SandboxError(f"the sandbox child broke the protocol: {exc}"), "SandboxError"
                )
        if gone:
            # Outside the clock: the child is dead whatever the clock says, and learning why
            # (reaping it, reading its last words) takes a moment.
            return run.crashed(await self._death())
        if clock_scope.cancelled_caught:
            detail = "the program was stopped and the sandbox restarted; earlier variables are gone"
            if clock < self.limits.turn_timeout:
                detail = (
                    f"the program had {clock:.1f} s of the turn's "
                    f"{self.limits.turn_timeout:g} s left when it started; {detail}"
                )
            expired = errors.TimeLimitExceeded("turn", round(clock, 1), detail)
            return run.stopped(expired, "TimeLimitExceeded")
        if failure is not None:
            return failure
        assert frame is not None
        return run.result(frame)


def _widen(fd: int) -> None:
    """Give the pipe to the child 1 MiB of buffer where the OS allows (Linux), not 64 KiB: corpus
    text goes down it 4 MiB a frame, and each refill is a wake-up on both sides."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):
        pass  # another OS, or a lower /proc/sys/fs/pipe-max-size: the default works, more slowly


def _check_data(data: Any) -> Sequence[str] | dict[str, Sequence[str]]:
    def as_chunks(value: Any, what: str) -> Sequence[str]:
        if isinstance(value, StoredChunks):
            return value  # checked when it was written; reading it all here would defeat it
        if isinstance(value, str):
            raise errors.ConfigError(
                f"{what} is one string; pass a list of chunk strings "
                "(e.g. ptcrun.chunk_by_tokens(text, 4000))."
            )
        chunks = tuple(value)
        for index, chunk in enumerate(chunks):
            if not isinstance(chunk, str):
                kind = type(chunk).__name__
                raise errors.ConfigError(f"{what}[{index}] is {kind}; every chunk must be a str.")
        return tuple(str(c) for c in chunks)

    if isinstance(data, Mapping):
        out = {}
        for name, chunks in data.items():
            if not isinstance(name, str):
                raise errors.ConfigError(f"data names must be str; got {name!r}")
            out[name] = as_chunks(chunks, f"data[{name!r}]")
        return out
    return as_chunks(data, "data")


def execute(
    source: str,
    *,
    data: Sequence[str] | Mapping[str, Sequence[str]] = (),
    tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool] | None = None,
    limits: Limits | None = None,
) -> ExecResult:
    """Run one program in a fresh sandbox and return its result (synchronous, for one-off use)."""

    async def main() -> ExecResult:
        async with Sandbox(data=data, tools=tools, limits=limits) as sandbox:
            return await sandbox.execute(source)

    return trio.run(main)
