"""The host side of the sandbox: start the child, serve its tool calls, enforce the clocks.

A :class:`Sandbox` owns one child process at a time. The child keeps the program's namespace
from one :meth:`Sandbox.execute` to the next. When a program hits a limit that leaves the child
unusable (memory, CPU, the turn clock, a crash), the host kills the child's whole process group
and the next ``execute`` starts a fresh one, with a note that earlier variables are gone.

Longer than most modules because the child's lifecycle and the serving of one program's
frames share the same private state (the pipe, the frame buffer, the limiter); split, each
half would reach into the other.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ... import errors
from ..._limits import Limits
from ..._tools import Tool, collect_tools
from .. import _protocol
from .._results import ExecResult, ProgramError

__all__ = ["Sandbox", "execute"]

Event = dict[str, Any]
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[3]); "
    "from ptcrun.sandbox.child._loop import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)
# No variable of the host's environment reaches the child: API keys stay on the host.
_CHILD_ENV = {"MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
_START_TIMEOUT = 60.0
_DATA_FRAME_CHARS = 4 << 20
_RESTART_NOTE = (
    "this program ran in a fresh sandbox because the previous one was stopped ({reason}); "
    "earlier variables are gone, so define again what you need."
)


#: The tool call being served, as ``{"call": id, "pmap": id | None, "item": index | None}``:
#: set around each tool so that a tool (the worker LLM) can place its own events under it.
current_call: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ptcrun_current_call", default=None
)


class _StderrTail:
    """Drain the child's stderr on a thread, keeping the last few KiB.

    The pipe must never fill: a child blocked writing to it (Python's "Exception ignored"
    messages, say) would hang with its program half done. What is kept explains a crash.
    """

    def __init__(self, fd: int, keep_bytes: int = 4096) -> None:
        self._fd = fd
        self._keep = keep_bytes
        self._tail = b""
        self.finished = threading.Event()
        threading.Thread(target=self._drain, name="ptcrun-child-stderr", daemon=True).start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                self._tail = (self._tail + chunk)[-self._keep :]
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self.finished.set()

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")


def _no_budget() -> dict[str, Any]:
    return {"tokens": None, "turns": None, "seconds": None, "cost": None}


def _signal_name(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return f"exit code {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class Sandbox:
    """A confined child process that runs planner programs, one at a time.

    Use it as an async context manager::

        async with Sandbox(data=chunks, tools=[lookup], limits=Limits()) as sandbox:
            result = await sandbox.execute("print(len(data))")

    Args:
        data: the corpus: a sequence of chunk strings, or a mapping of names to such sequences.
            The child gets a read-only copy.
        tools: user tools (plain functions, sync or async, or ``Tool`` objects), offered to
            programs as ``tool.<name>``. Arguments are validated on the host before a tool runs.
        limits: the ceilings; see :class:`~ptcrun.Limits`.
        budget: a function returning what ``budget.remaining`` shows, asked live each time a
            program reads it (``tokens``, ``turns``, ``seconds``, ``cost``).
        limiter: the ``trio.CapacityLimiter`` that bounds tool calls in flight; pass the run's
            one limiter to share it. Defaults to a new one of ``limits.max_concurrency``.
        on_event: called with each event (``call.start``, ``call.end``, ``pmap.start``,
            ``item.start``, ``item.end``, ``pmap.end``, ``output``, ``sandbox.start``) as it
            happens. Exceptions it raises propagate.
        strict: refuse to start unless every OS layer (seccomp, Landlock, no_new_privs) is
            active.
    """

    def __init__(
        self,
        *,
        data: Sequence[str] | Mapping[str, Sequence[str]] = (),
        tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any]] | None = None,
        limits: Limits | None = None,
        budget: Callable[[], Mapping[str, Any]] | None = None,
        limiter: trio.CapacityLimiter | None = None,
        on_event: Callable[[Event], None] | None = None,
        strict: bool = False,
        _language_layer: bool = True,
        _os_layers: bool = True,
    ) -> None:
        self.limits = limits if limits is not None else Limits()
        self._data = _check_data(data)
        self._tools: dict[str, Tool] = collect_tools(tools, allow_reserved=True)
        self._budget = budget or _no_budget
        self._limiter = limiter or trio.CapacityLimiter(self.limits.max_concurrency)
        self._thread_limiter = trio.CapacityLimiter(self.limits.max_concurrency)
        self._on_event = on_event or (lambda event: None)
        self._strict = strict
        self._language_layer = _language_layer
        self._os_layers = _os_layers
        self._process: trio.Process | None = None
        self._to_child: trio.lowlevel.FdStream | None = None
        self._from_child: trio.lowlevel.FdStream | None = None
        self._frames = _protocol.FrameBuffer(_protocol.MAX_CHILD_FRAME_BYTES)
        self._queued: list[dict[str, Any]] = []
        self._send_lock = trio.Lock()
        self._outbox: list[bytes] = []
        self._ids = itertools.count(1)
        self._stopped_reason: str | None = None
        self._busy = False
        self._stderr: _StderrTail | None = None
        #: The OS layers the child reported active (``None`` before start or when off).
        self.layers: dict[str, Any] | None = None

    async def __aenter__(self) -> Sandbox:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the child. Safe to call twice."""
        if self._process is not None:
            with trio.CancelScope(shield=True):
                if not self._busy:
                    # An idle child exits on request; one still running a program (the run
                    # was cancelled mid-pmap) is killed at once.
                    try:
                        await self._send({"op": "shutdown"})
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                    with trio.move_on_after(2):
                        await self._process.wait()
                await self._kill()

    # -- child lifecycle -------------------------------------------------------------------

    async def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self._process = await trio.lowlevel.open_process(
                [sys.executable, "-I", "-B", "-c", _BOOT, str(to_child_r), str(from_child_w), _PACKAGE_PARENT],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                pass_fds=(to_child_r, from_child_w),
                env=_CHILD_ENV,
                start_new_session=True,
            )
        except BaseException:
            os.close(err_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
            os.close(err_w)
        self._stderr = _StderrTail(err_r)
        self._to_child = trio.lowlevel.FdStream(to_child_w)
        self._from_child = trio.lowlevel.FdStream(from_child_r)
        self._frames = _protocol.FrameBuffer(_protocol.MAX_CHILD_FRAME_BYTES)
        self._queued = []
        self._outbox = []
        try:
            with trio.fail_after(_START_TIMEOUT):
                await self._send_init()
                frame = await self._next_frame()
        except (trio.TooSlowError, EOFError, _protocol.ProtocolError, trio.BrokenResourceError) as exc:
            detail = await self._stderr_after_death()
            await self._kill()
            raise errors.SandboxError(f"the sandbox child failed to start ({exc!r}). {detail}") from None
        if frame.get("op") != "ready":
            await self._kill()
            raise errors.SandboxError(f"the sandbox child sent {frame.get('op')!r} before 'ready'")
        self.layers = frame.get("layers")
        self._on_event({"type": "sandbox.start", "pid": self._process.pid, "layers": self.layers})

    async def _send_init(self) -> None:
        limits = {
            "sandbox_output_bytes": self.limits.sandbox_output_bytes,
            "sandbox_memory_bytes": self.limits.sandbox_memory_bytes,
            "sandbox_cpu_seconds": self.limits.sandbox_cpu_seconds,
            "sandbox_threads": self.limits.sandbox_threads,
            "max_concurrency": self.limits.max_concurrency,
            "max_pmap_items": self.limits.max_pmap_items,
            # JSON has no infinity; the child treats a huge clock as none.
            "pmap_timeout": min(self.limits.pmap_timeout, 1e9),
        }
        named = isinstance(self._data, Mapping)
        await self._send(
            {
                "op": "init",
                "limits": limits,
                "tools": sorted(self._tools),
                "data_kind": "mapping" if named else "sequence",
                "language_layer": self._language_layer,
                "os_layers": self._os_layers,
                "strict": self._strict,
            }
        )
        parts = list(self._data.items()) if named else [(None, self._data)]
        batch: list[str] = []
        size = 0
        for name, chunks in parts:
            for chunk in chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= _DATA_FRAME_CHARS:
                    await self._send({"op": "data", "name": name, "chunks": batch, "last": False})
                    batch, size = [], 0
            await self._send({"op": "data", "name": name, "chunks": batch, "last": False})
            batch, size = [], 0
        await self._send({"op": "data", "name": None, "chunks": [], "last": True})

    async def _kill(self) -> None:
        process, self._process = self._process, None
        for stream in (self._to_child, self._from_child):
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
        self._to_child = self._from_child = None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with trio.CancelScope(shield=True):
            await process.wait()

    async def _stderr_after_death(self) -> str:
        process = self._process
        if process is None or self._stderr is None:
            return ""
        with trio.move_on_after(1):
            await process.wait()
        # Let the drain thread take what the dead child wrote last.
        await trio.to_thread.run_sync(self._stderr.finished.wait, 0.5)
        # Only the last line: it names the fault without showing the host's own code.
        lines = self._stderr.text().strip().splitlines()
        return f"child said: {lines[-1].strip()}" if lines else ""

    # -- frames ----------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        if self._to_child is None:
            raise trio.ClosedResourceError("no sandbox child")
        # Frames queue up while another task is writing; the writer sends them all in one
        # write. Under a wide fan-out this turns hundreds of small writes into a few.
        self._outbox.append(_protocol.encode(message))
        if self._send_lock.locked():
            return
        async with self._send_lock:
            while self._outbox:
                data = b"".join(self._outbox)
                self._outbox.clear()
                await self._to_child.send_all(data)

    async def _next_frame(self) -> dict[str, Any]:
        while not self._queued:
            assert self._from_child is not None
            chunk = await self._from_child.receive_some(1 << 16)
            if not chunk:
                raise EOFError("the sandbox child closed its pipe")
            self._queued.extend(self._frames.feed(chunk))
        return self._queued.pop(0)

    # -- execute ---------------------------------------------------------------------------

    async def execute(self, source: str, *, timeout: float | None = None) -> ExecResult:
        """Run one program; return its output, its ``done``/``fail`` value or its error.

        Top-level names the program defines stay for the next program. The program runs under
        the turn clock (``timeout`` seconds, at most ``Limits.turn_timeout``); when it
        expires, or a memory, CPU or output limit is hit, or the child crashes, the result
        says which limit and setting, and the child is replaced before the next program.
        Never raises for anything the program does.
        """
        if not isinstance(source, str):
            raise errors.ConfigError(f"a program must be a str of Python source; got {type(source).__name__}")
        note = None
        if self._process is None:
            if self._stopped_reason is not None:
                note = _RESTART_NOTE.format(reason=self._stopped_reason)
            await self._start()
        clock = self.limits.turn_timeout if timeout is None else min(timeout, self.limits.turn_timeout)
        run = _Execution(self, source, clock)
        started = time.monotonic()
        # Cleared only when the program ends normally: if this call is cancelled, the child is
        # still running it, and aclose() kills it instead of waiting for it to exit.
        self._busy = True
        result = await run.go()
        self._busy = False
        if result.restarted:
            # The first clause of the error names the limit: "turn clock expired after 1 s (...)".
            self._stopped_reason = run.restart_reason or (
                result.error.message.split(";")[0].rstrip(".") if result.error else "stopped"
            )
            await self._kill()
        return attrs.evolve(result, note=note, seconds=time.monotonic() - started)


class _Execution:
    """One program's run: pumps frames and serves calls until the child reports a result."""

    def __init__(self, sandbox: Sandbox, source: str, clock: float) -> None:
        self.sandbox = sandbox
        self.source = source
        self.clock = clock
        self.output: list[str] = []
        self.output_bytes = 0
        self.calls: dict[int, trio.CancelScope] = {}
        self.restart_reason: str | None = None
        self.cancelled: set[int] = set()
        self.call_count = 0

    async def go(self) -> ExecResult:
        sandbox = self.sandbox
        frame: dict[str, Any] | None = None
        failure: ExecResult | None = None
        with trio.move_on_after(self.clock) as clock_scope:
            async with trio.open_nursery() as nursery:
                try:
                    await sandbox._send({"op": "exec", "id": next(sandbox._ids), "source": self.source})
                    frame = await self._pump(nursery)
                except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                    failure = await self._child_died()
                except _protocol.ProtocolError as exc:
                    failure = self._stopped(
                        errors.SandboxError(f"the sandbox child broke the protocol: {exc}"), "SandboxError"
                    )
                nursery.cancel_scope.cancel()
        if clock_scope.cancelled_caught:
            detail = "the program was stopped and the sandbox restarted; earlier variables are gone"
            if self.clock < sandbox.limits.turn_timeout:
                detail = (
                    f"the program had {self.clock:.1f} s of the turn's "
                    f"{sandbox.limits.turn_timeout:g} s left when it started; {detail}"
                )
            exc = errors.TimeLimitExceeded("turn", round(self.clock, 1), detail)
            return self._stopped(exc, "TimeLimitExceeded")
        if failure is not None:
            return failure
        assert frame is not None
        return self._from_frame(frame)

    def _text(self) -> str:
        return "".join(self.output)

    def _stopped(self, exc: errors.PtcrunError, kind: str) -> ExecResult:
        return ExecResult(
            status="error",
            output=self._text(),
            error=ProgramError(kind=kind, message=str(exc)),
            limit=exc,
            restarted=True,
            calls=self.call_count,
        )

    def _from_frame(self, frame: dict[str, Any]) -> ExecResult:
        error = frame.get("error")
        limit = None
        program_error = None
        restart = bool(frame.get("restart"))
        if isinstance(error, dict):
            program_error = ProgramError(
                kind=str(error.get("kind", "Error")),
                message=str(error.get("message", "")),
                line=error.get("line") if isinstance(error.get("line"), int) else None,
                source_line=error.get("source_line") if isinstance(error.get("source_line"), str) else None,
            )
            if program_error.kind == "SandboxLimitExceeded":
                setting = str(error.get("setting", "Limits"))
                limit = errors.SandboxLimitExceeded(
                    program_error.message,
                    setting=setting,
                    limit=getattr(self.sandbox.limits, setting.removeprefix("Limits."), math.nan),
                    restarted=restart,
                )
        if isinstance(frame.get("restart_reason"), str):
            self.restart_reason = frame["restart_reason"][:500]
        status = frame.get("status")
        if status not in ("ok", "done", "failed", "error"):
            status = "error"
        return ExecResult(
            status=status,
            output=self._text(),
            answer=frame.get("answer"),
            error=program_error,
            limit=limit,
            restarted=restart,
            cpu_seconds=frame["cpu_seconds"] if isinstance(frame.get("cpu_seconds"), (int, float)) else None,
            calls=self.call_count,
            threads_peak=int(frame.get("threads_peak") or 0),
            candidate=frame.get("candidate"),
            candidate_set=bool(frame.get("candidate_set")),
        )

    async def _child_died(self) -> ExecResult:
        sandbox = self.sandbox
        process = sandbox._process
        returncode = None
        if process is not None:
            with trio.move_on_after(2):
                await process.wait()
            returncode = process.returncode
        limits = sandbox.limits
        if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            exc: errors.PtcrunError = errors.SandboxLimitExceeded(
                f"the program used more than {limits.sandbox_cpu_seconds:g} CPU seconds "
                "(Limits.sandbox_cpu_seconds); the sandbox was restarted and earlier variables are "
                "gone. Do less work per program, or raise sandbox_cpu_seconds.",
                setting="Limits.sandbox_cpu_seconds",
                limit=limits.sandbox_cpu_seconds,
                restarted=True,
            )
            return self._stopped(exc, "SandboxLimitExceeded")
        if returncode == -signal.SIGSYS:
            exc = errors.SandboxError(
                "the program attempted a forbidden system call and was stopped; the sandbox was "
                "restarted and earlier variables are gone. Programs cannot run commands, open "
                "files or use the network: use tools for that."
            )
            return self._stopped(exc, "SandboxError")
        if returncode == -signal.SIGXFSZ:
            exc = errors.SandboxError("the program tried to write a file and was stopped; programs cannot write files.")
            return self._stopped(exc, "SandboxError")
        detail = await sandbox._stderr_after_death()
        exc = errors.SandboxError(
            f"the sandbox crashed ({_signal_name(returncode)}); it was restarted and earlier "
            f"variables are gone. {detail}".strip()
        )
        return self._stopped(exc, "SandboxError")

    async def _pump(self, nursery: trio.Nursery) -> dict[str, Any]:
        sandbox = self.sandbox
        while True:
            frame = await sandbox._next_frame()
            _protocol.check_child_frame(frame)
            op = frame["op"]
            if op == "result":
                return frame
            if op == "output":
                text = str(frame.get("text", ""))
                self.output.append(text)
                self.output_bytes += len(text)
                if self.output_bytes > 2 * sandbox.limits.sandbox_output_bytes:
                    # The child's own cap failed to hold: treat it as hostile.
                    raise _protocol.ProtocolError("output beyond twice Limits.sandbox_output_bytes")
                sandbox._on_event({"type": "output", "text": text, "pmap": frame.get("pmap"), "item": frame.get("item")})
            elif op == "call":
                self.call_count += 1
                nursery.start_soon(self._serve_call, frame)
            elif op == "cancel":
                for call_id in frame.get("ids", []):
                    scope = self.calls.get(call_id)
                    if scope is not None:
                        self.cancelled.add(call_id)
                        scope.cancel()
            elif op == "budget":
                await sandbox._send({"op": "reply", "id": frame.get("id"), "ok": True, "value": dict(sandbox._budget())})
            elif op == "event":
                event = {k: v for k, v in frame.items() if k != "op"}
                sandbox._on_event(event)

    async def _serve_call(self, frame: dict[str, Any]) -> None:
        sandbox = self.sandbox
        call_id = frame.get("id")
        name = frame.get("tool")
        args = frame.get("args")
        kwargs = frame.get("kwargs")
        where = {"pmap": frame.get("pmap"), "item": frame.get("item")}
        reply: dict[str, Any] = {"op": "reply", "id": call_id}
        started = time.monotonic()
        announced = False

        def announce() -> None:
            nonlocal announced, started
            announced, started = True, time.monotonic()
            sandbox._on_event(
                {"type": "call.start", "call": call_id, "tool": name, "args": args, "kwargs": kwargs, **where}
            )

        current_call.set({"call": call_id, **where})
        with trio.CancelScope() as scope:
            self.calls[call_id] = scope
            try:
                tool = sandbox._tools.get(name) if isinstance(name, str) else None
                if tool is None:
                    raise errors.ToolError(
                        f"there is no tool named {name!r}; tools: {', '.join(sorted(sandbox._tools)) or 'none'}",
                        tool=str(name),
                    )
                if not isinstance(args, list) or not isinstance(kwargs, dict):
                    raise errors.ToolArgumentError(f"tool {name!r} got malformed arguments", tool=name)
                async with sandbox._limiter:
                    # The call starts, for its clock and its events, once it holds a slot; one
                    # scope serves both the clock and the child's cancel requests.
                    announce()
                    scope.deadline = trio.current_time() + sandbox.limits.call_timeout
                    value = await tool.call(args, kwargs, limiter=sandbox._thread_limiter)
                reply.update(ok=True, value=value)
            except errors.PtcrunError as exc:
                reply.update(ok=False, error=_error_payload(exc))
            finally:
                self.calls.pop(call_id, None)
        if scope.cancelled_caught:
            if call_id in self.cancelled:
                reply.update(ok=False, error={"type": "Cancelled", "message": "cancelled"})
            else:
                exc = errors.TimeLimitExceeded("call", sandbox.limits.call_timeout, f"tool {name!r} did not answer in time")
                reply.update(ok=False, error=_error_payload(exc))
        ok = bool(reply.get("ok"))
        if not announced:  # refused or cancelled before it ran: a zero-length call
            announce()
        sandbox._on_event(
            {
                "type": "call.end",
                "call": call_id,
                "tool": name,
                "ok": ok,
                "value": reply.get("value") if ok else None,
                "error": None if ok else reply["error"],
                "seconds": time.monotonic() - started,
                **where,
            }
        )
        try:
            await sandbox._send(reply)
        except (ValueError, TypeError):
            # A tool result that is not JSON after all: tell the program instead.
            error = errors.ToolError(f"tool {name!r} returned a value that is not JSON data", tool=str(name))
            await sandbox._send({"op": "reply", "id": call_id, "ok": False, "error": _error_payload(error)})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _error_payload(exc: errors.PtcrunError) -> dict[str, Any]:
    fields = {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_") and (v is None or isinstance(v, (str, int, float, bool)))
        and not (isinstance(v, float) and not math.isfinite(v))
    }
    return {"type": type(exc).__name__, "message": str(exc), "fields": fields}


def _check_data(data: Any) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
    def as_chunks(value: Any, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            raise errors.ConfigError(
                f"{what} is one string; pass a list of chunk strings (e.g. ptcrun.chunk_by_tokens(text, 4000))."
            )
        chunks = tuple(value)
        for index, chunk in enumerate(chunks):
            if not isinstance(chunk, str):
                raise errors.ConfigError(f"{what}[{index}] is {type(chunk).__name__}; every chunk must be a str.")
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
    tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any]] | None = None,
    limits: Limits | None = None,
) -> ExecResult:
    """Run one program in a fresh sandbox and return its result (synchronous, for one-off use)."""

    async def main() -> ExecResult:
        async with Sandbox(data=data, tools=tools, limits=limits) as sandbox:
            return await sandbox.execute(source)

    return trio.run(main)
