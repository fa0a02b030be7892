"""The sandbox child: receive the corpus, lock itself down, then run programs on request.

Started by the host's driver as ``python -I -B -c ...`` with an empty environment, in a new
session, with two inherited pipe descriptors. Start-up order matters: everything the programs
may need is imported and warmed up first, then rlimits, then the kernel lockdown (after which no
file can be opened), and only then is any program text compiled or run.

This module imports nothing outside the standard library, RestrictedPython and the sandbox
package: no trio, no provider SDKs, no runtime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import resource
import sys
import threading
import time
import types
from collections.abc import Iterable
from typing import Any

from ... import _json, errors
from .. import _protocol
from .._ceilings import lifetime_cpu_seconds
from . import _exact, _host_api, _scope
from ._link import FrameTooLarge, Link

__all__ = ["main"]

MAX_ERROR_CHARS = 2_000
#: Seconds a program's end waits for the items of cancelled pmaps to notice and stop.
_STRAGGLER_GRACE = 0.25


class OutputLimit(BaseException):
    """The program printed more than Limits.sandbox_output_bytes (uncatchable by programs)."""


class _Rejected(Exception):
    """The program did not compile."""

    def __init__(self, kind: str, message: str, line: int | None, source_line: str | None) -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line
        self.source_line = source_line

    def payload(self) -> dict[str, Any]:
        """The error payload, with the policy's kind (``NotAllowed``, ``SyntaxError``...) as its type."""
        payload = errors.to_payload(self, line=self.line, source_line=self.source_line)
        return {**payload, "type": self.kind, "message": _clip(payload["message"])}


class Output:
    """Captured ``print`` output: streamed to the host in order, capped in bytes."""

    def __init__(self, link: Link, cap_bytes: int) -> None:
        self._link = link
        self._cap = cap_bytes
        self._lock = threading.Lock()
        self.total = 0

    def reset(self) -> None:
        self.total = 0

    def write(self, text: str) -> None:
        scope = _scope.current()
        if scope is not None and scope.cancelled:
            # An item of a pmap that timed out or failed fast: stop it here, so its output
            # cannot land in what the program prints after the pmap.
            raise _host_api.Cancelled("the enclosing pmap was cancelled")
        size = len(text.encode("utf-8", "replace"))
        with self._lock:
            self.total += size
            over = self.total > self._cap
        if over:
            raise OutputLimit(
                f"the program printed more than {self._cap:,} bytes "
                f"(Limits.sandbox_output_bytes). Print less: summaries, counts, a few samples."
            )
        self._link.send(_protocol.Output(text, **_scope.position()))


def _clip(text: str) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 20] + " … (cut)"


def _describe(
    exc: BaseException, source: str, trusted: Any, names: Iterable[object] = ()
) -> dict[str, Any]:
    """The error payload of an exception raised by the program, with its line when known.

    ``names`` are the program's globals and builtins; the local names of the innermost program
    frame are added, so that a mistyped local gets a suggestion too.
    """
    line = None
    local_names: tuple[str, ...] = ()
    with trusted():
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == "<program>":
                line = tb.tb_lineno
                local_names = code.co_varnames + code.co_cellvars + code.co_freevars
            tb = tb.tb_next
    lines = source.splitlines()
    source_line = lines[line - 1].strip() if line and 0 < line <= len(lines) else None
    payload = _exact.error_payload(
        exc, line=line, source_line=source_line, names=itertools.chain(names, local_names)
    )
    return {**payload, "message": _clip(payload["message"])}


class Child:
    """The state of one sandbox child: its namespace persists from program to program."""

    def __init__(self, link: Link, init: _protocol.Init, data: Any) -> None:
        self.link = link
        self.limits = init.limits
        self.restricted = init.language_layer
        # Set by main() once the OS layers are known: how to mark trusted code for the
        # tripwire, and how to run a program so the tripwire lets exactly its exec through.
        self._trusted: Any = contextlib.nullcontext
        self._exec: Any = exec
        self.output = Output(link, int(self.limits["sandbox_output_bytes"]))
        from . import _failure, _pmap

        self.fanout = _pmap.Fanout(
            send=link.send,
            open_request=link.open_request,
            default_concurrency=int(self.limits["max_concurrency"]),
            default_timeout=self.limits["pmap_timeout"],
            max_items=int(self.limits["max_pmap_items"]),
            # the main thread and the link reader are threads too
            max_threads=max(int(self.limits["sandbox_threads"]) - 2, 0),
        )
        #: The first done()/fail() of the running program, whatever happens after it.
        self.exit: _host_api.ProgramExit | None = None
        done, fail = _host_api.make_done_fail(self._record_exit)
        self.host: dict[str, Any] = {
            "data": data,
            "tool": _host_api.Tools(link, init.tools),
            "budget": _host_api.Budget(link),
            "pmap": self.fanout.pmap,
            "pcalls": self.fanout.pcalls,
            "done": done,
            "fail": fail,
            "Failure": _failure.Failure,
            "PmapError": _failure.PmapError,
            "ToolError": errors.ToolError,
            "ToolArgumentError": errors.ToolArgumentError,
            "LimitExceeded": errors.LimitExceeded,
            "BudgetExceeded": errors.BudgetExceeded,
            "TimeLimitExceeded": errors.TimeLimitExceeded,
        }
        if self.restricted:
            from ._namespace import build_globals

            self.globals = build_globals(host=self.host, write_output=self.output.write)
        else:
            self.globals = self._plain_globals()

    def _names(self) -> list[object]:
        """The names a program could have meant by a name that is not defined."""
        names: list[object] = list(self.globals)
        builtins = self.globals.get("__builtins__")
        if type(builtins) is dict:
            names.extend(builtins)
        return names

    def _record_exit(self, exit: _host_api.ProgramExit) -> None:
        if self.exit is None:
            self.exit = exit

    def _plain_globals(self) -> dict[str, Any]:
        """Globals for the language-layer-off mode used by layer tests: real builtins."""
        import builtins

        def _print(*objects: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
            self.output.write(sep.join(map(str, objects)) + end)

        namespace = {"__builtins__": builtins, "print": _print, "__name__": "__program__"}
        namespace.update(self.host)
        return namespace

    def _compile(self, source: str) -> types.CodeType:
        if not self.restricted:
            try:
                return compile(source, "<program>", "exec")
            except SyntaxError as exc:
                text = (exc.text or "").strip() or None
                raise _Rejected("SyntaxError", str(exc.msg), exc.lineno, text) from None
        from ._compile import ProgramRejected, compile_program

        try:
            return compile_program(source, filename="<program>")
        except ProgramRejected as exc:
            raise _Rejected(exc.kind, exc.message, exc.line, exc.source_line) from None

    def execute(self, request: _protocol.Exec) -> dict[str, Any]:
        trusted = self._trusted
        source = request.source
        self.output.reset()
        self.exit = None
        result: dict[str, Any] = {"status": "ok", "answer": None, "error": None, "restart": False}
        self._arm_cpu_limit()
        started = time.process_time()
        try:
            try:
                with trusted():
                    code = self._compile(source)
            except _Rejected as exc:
                result.update(status="error", error=exc.payload())
                return result
            _scope.set_current(None)
            try:
                self._exec(code, self.globals)
            except _host_api.ProgramExit as exc:
                result.update(status=exc.status, answer=exc.value)
            except OutputLimit as exc:
                result.update(status="error", error=self._limit("sandbox_output_bytes", exc))
            except MemoryError as exc:
                result.update(status="error", error=self._limit("sandbox_memory_bytes", exc), restart=True)
            except RecursionError as exc:
                result.update(status="error", error=_describe(exc, source, trusted))
            except BaseException as exc:  # anything the program raised, reported as data
                if type(exc) is errors.SandboxLimitExceeded and type(exc.setting) is str:
                    error = self._limit(exc.setting.removeprefix("Limits."), exc)
                else:
                    error = _describe(exc, source, trusted, self._names())
                result.update(status="error", error=error)
        finally:
            stale = self.fanout.stragglers(_STRAGGLER_GRACE)
            if stale:
                result["restart"] = True
                result["restart_reason"] = (
                    f"{stale} item(s) of a cancelled pmap were still computing when the program ended"
                )
            if self.exit is not None and result["status"] not in ("done", "failed"):
                # done() was called, then something in a finally block raised over it.
                result.update(status=self.exit.status, answer=self.exit.value, error=None)
            self._report_answer_variable(result)
            result["cpu_seconds"] = time.process_time() - started
            result["threads_peak"] = self.fanout.threads_peak + 2
        return result

    def _report_answer_variable(self, result: dict[str, Any]) -> None:
        """Send the program's ``answer`` variable, the fallback if the turns run out."""
        if "answer" not in self.globals:
            return
        try:
            result["candidate"] = _json.to_json(self.globals["answer"], what="the answer variable")
            result["candidate_set"] = True
        except Exception:  # not JSON data (or too deep, too big): it cannot be an answer
            pass

    def _limit(self, setting: str, exc: BaseException) -> dict[str, Any]:
        message = _exact.text(exc)  # a program may raise MemoryError(...) of its own objects
        if setting == "sandbox_memory_bytes":
            message = (
                f"the program ran out of memory: it needed more than "
                f"{self.limits['sandbox_memory_bytes']:,} bytes (Limits.sandbox_memory_bytes); "
                "the sandbox was restarted and earlier variables are gone. Process the data in "
                "smaller pieces, or raise sandbox_memory_bytes."
            )
        # A limit of the host's that is no Limits field (a chunk too large names chunk_tokens,
        # the chunk size the corpus is cut with) keeps its own name and value: "Limits.x" with
        # no value would name a setting nobody can change.
        known = setting in self.limits
        limit = errors.SandboxLimitExceeded(
            _clip(message),
            setting=f"Limits.{setting}" if known else setting,
            limit=self.limits[setting] if known else _finite(getattr(exc, "limit", None)),
            observed=None if known else _finite(getattr(exc, "observed", None), None),
            restarted=setting == "sandbox_memory_bytes",
        )
        return errors.to_payload(limit)

    def _arm_cpu_limit(self) -> None:
        """Give this program ``sandbox_cpu_seconds`` of CPU on top of what the child used so far."""
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        wanted = math.ceil(spent + self.limits["sandbox_cpu_seconds"])
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        try:
            with self._trusted():
                resource.setrlimit(resource.RLIMIT_CPU, (wanted, hard))
        except (ValueError, OSError):
            pass  # the session-wide hard limit still holds


def _finite(value: object, otherwise: float | None = math.nan) -> Any:
    """An exact finite number, or ``otherwise``: what crosses as a limit's value is JSON."""
    if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
        return value
    return otherwise


def _send_result(link: Link, frame: _protocol.Result) -> None:
    """Send a program's result; an answer too big to cross becomes an error saying so."""
    try:
        link.send(frame)
        return
    except FrameTooLarge:
        frame = dataclasses.replace(frame, candidate=None, candidate_set=False)
    try:
        link.send(frame)
    except FrameTooLarge:
        what = {"done": "the answer given to done() is", "failed": "the reason given to fail() is"}.get(
            frame.status, "the program's result is"
        )
        error = errors.to_payload(_host_api.too_big(what, frame.answer))
        link.send(dataclasses.replace(frame, status="error", answer=None, error=error))


def _receive_data(link: Link, init: _protocol.Init) -> Any:
    """Read the corpus frames that follow ``init``; return ``data``: a view read from the host,
    or a read-only mapping of such views. Only the datasets' sizes cross here."""
    from ._data import ChunkCache, Dataset, DataView
    from ._stored import StoredText, StoreFile

    cache = ChunkCache()
    file = None if init.store_fd is None else StoreFile(init.store_fd)
    named: dict[str, DataView] = {}
    plain = DataView(Dataset(link, None, 0, cache), range(0))
    while True:
        frame = link.read()
        if not isinstance(frame, _protocol.Data):
            raise RuntimeError(f"expected a data frame, got {frame.OP!r}")
        if frame.count or not frame.last:
            stored = None
            if file is not None and frame.layout is not None:
                stored = StoredText(file, frame.layout)
            view = DataView(Dataset(link, frame.name, frame.count, cache, stored), range(frame.count))
            if frame.name is None:
                plain = view
            else:
                named[frame.name] = view
        if frame.last:
            break
    if init.data_kind == "mapping":
        return types.MappingProxyType(named)
    return plain


def main(fd_in: int, fd_out: int) -> None:
    link = Link(fd_in, fd_out)
    init = link.read()
    if not isinstance(init, _protocol.Init):
        raise RuntimeError(f"expected an init frame, got {init.OP!r}")
    data = _receive_data(link, init)
    limits = init.limits
    if init.shared_fd is not None:
        link.map_shared(init.shared_fd, init.shared_slots, init.shared_slot_bytes)

    # Everything a program may touch must be imported before the lockdown closes the files.
    if init.language_layer:
        from ._namespace import warm_up

        warm_up()
    from ._mod_random import seed_session

    seed_session(init.seed)  # the host's seed for this session, so a replay draws the same
    threading.stack_size(4 << 20)
    child = Child(link, init, data)

    layers = None
    if init.os_layers:
        from . import _confine

        child._trusted = _confine.trusted
        child._exec = _confine.exec_program
        _confine.set_rlimits(
            memory_bytes=int(limits["sandbox_memory_bytes"]),
            cpu_seconds=lifetime_cpu_seconds(limits["sandbox_cpu_seconds"]),
        )
        layers = _confine.lock_down(network=False, strict=init.strict)
        _confine.install_tripwire()
    link.start_reader()
    link.send(_protocol.Ready(layers.as_dict() if layers is not None else None))

    while True:
        command = link.commands.get()
        if isinstance(command, _protocol.Exec):
            result = child.execute(command)
            _send_result(link, _protocol.Result(id=command.id, **result))
        else:  # shutdown, or the host went away
            break
    sys.stdout.flush()
    os._exit(0)
