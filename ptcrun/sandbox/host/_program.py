"""One program's run, seen from the host: route the child's frames until it says how it ended.

While a program runs, the child sends tool calls (served concurrently by the
:class:`~._calls.CallServer`), cancel requests, budget queries, printed output and the events of
its pmaps. A :class:`ProgramRun` routes each to its place, keeps the output, and turns the
child's final :class:`~.._protocol.Result`, or the reason the program was stopped, into an
:class:`~.._results.ExecResult`. The clock and the child's lifecycle belong to the driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from ... import errors
from ..._limits import Limits
from .. import _protocol
from .._results import ExecResult, ProgramError
from ._calls import CallServer, Event
from ._channel import CHILD_GONE, Channel
from ._corpus import CorpusServer, limit_of
from ._death import Death, classify

__all__ = ["ProgramRun"]


class ProgramRun:
    """Serve one program's frames; single use.

    Attributes:
        calls: how many tool calls the program made so far.
        restart_reason: why the child asked to be replaced after this program, if it did.
    """

    def __init__(
        self,
        channel: Channel,
        server: CallServer,
        limits: Limits,
        on_event: Callable[[Event], None],
        *,
        corpus: CorpusServer | None = None,
    ) -> None:
        self._channel = channel
        self._server = server
        self._corpus = corpus if corpus is not None else CorpusServer(())
        self._limits = limits
        self._on_event = on_event
        self._output: list[str] = []
        self._output_chars = 0
        self.calls = 0
        self.restart_reason: str | None = None

    @property
    def output(self) -> str:
        """Everything the program printed so far, in order."""
        return "".join(self._output)

    async def run(self, request: _protocol.Exec) -> _protocol.Result:
        """Send the program, serve its frames, and return the child's result.

        Calls still in flight when the result arrives are cancelled; so are they when this
        raises or is cancelled (the turn clock).

        Raises:
            EOFError, trio.BrokenResourceError, trio.ClosedResourceError: the child died.
            ProtocolError: the child sent a bad frame, or a frame out of place.
        """
        result: _protocol.Result | None = None
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            # Raised inside the nursery, these would reach the caller wrapped in a group.
            try:
                await self._channel.send(request)
                result = await self._route(nursery)
            except (*CHILD_GONE, _protocol.ProtocolError, errors.SandboxError) as exc:
                failure = exc  # a SandboxError: the corpus could not be read (see _corpus)
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        assert result is not None
        return result

    async def _route(self, nursery: trio.Nursery) -> _protocol.Result:
        channel = self._channel
        while True:
            frame = await channel.receive()
            match frame:
                case _protocol.Call():
                    self.calls += 1
                    nursery.start_soon(self._server.serve, frame, channel.send)
                case (
                    _protocol.ItemStart() | _protocol.ItemEnd() | _protocol.PmapStart() | _protocol.PmapEnd()
                ):
                    self._on_event({"type": frame.OP, **_protocol.fields_of(frame)})
                case _protocol.Output():
                    self._add_output(frame)
                case _protocol.Cancel():
                    self._server.cancel(frame.ids)
                case _protocol.BudgetQuery():
                    await channel.send(self._server.answer_budget(frame))
                case _protocol.ChunksQuery():
                    # Answered in order, each written before the next frame is read: a flood
                    # of reads waits on the pipe, never piles up in the host's memory.
                    await channel.send_flushed(await self._corpus.answer(frame))
                case _protocol.EstimateQuery():
                    nursery.start_soon(self._server.answer_estimate, frame, channel.send)
                case _protocol.Result():
                    return frame
                case _:
                    raise _protocol.ProtocolError(f"{frame.OP!r} frame while a program runs")

    def _add_output(self, frame: _protocol.Output) -> None:
        self._output.append(frame.text)
        self._output_chars += len(frame.text)
        if self._output_chars > 2 * self._limits.sandbox_output_bytes:
            # The child's own cap failed to hold: treat it as hostile.
            raise _protocol.ProtocolError("output beyond twice Limits.sandbox_output_bytes")
        self._on_event({"type": "output", "text": frame.text, "pmap": frame.pmap, "item": frame.item})

    def result(self, frame: _protocol.Result) -> ExecResult:
        """Return what the program's ``Result`` frame reports, with the output and call count."""
        program_error = None
        limit = None
        if frame.error is not None:
            program_error = ProgramError.from_payload(frame.error)
            if program_error.kind == "SandboxLimitExceeded":
                # The limit's value is the host's own: the child only names the setting.
                setting = program_error.fields.get("setting")
                setting = setting if isinstance(setting, str) else "Limits"
                name = setting.removeprefix("Limits.")
                known = name in attrs.fields_dict(Limits)
                own = getattr(self._limits, name) if known else limit_of(setting)
                limit = errors.SandboxLimitExceeded(
                    program_error.message,
                    setting=setting,
                    limit=math.nan if own is None else own,
                    restarted=frame.restart,
                )
        if frame.restart_reason is not None:
            self.restart_reason = frame.restart_reason[:500]
        return ExecResult(
            status=frame.status,
            output=self.output,
            answer=frame.answer,
            error=program_error,
            limit=limit,
            restarted=frame.restart,
            cpu_seconds=frame.cpu_seconds,
            calls=self.calls,
            threads_peak=frame.threads_peak,
            candidate=frame.candidate,
            candidate_set=frame.candidate_set,
        )

    def crashed(self, death: Death) -> ExecResult:
        """Return the result of a program whose child died, saying truthfully what ended it.

        The evidence (exit status, CPU time, peak memory, out-of-memory kills, the host's own
        signals, the child's last words) decides between a limit, a crash and a kill from
        outside; see :func:`~._death.classify`.
        """
        exc = classify(death, self._limits)
        return self.stopped(exc, type(exc).__name__, cpu_seconds=death.cpu_seconds)

    def stopped(
        self, exc: errors.PtcrunError, kind: str, *, cpu_seconds: float | None = None
    ) -> ExecResult:
        """Return the result of a program the host stopped (a clock, a crash, a bad frame).

        Args:
            exc: the error, also kept as the result's ``limit``.
            kind: the error kind the program's ``error`` shows.
            cpu_seconds: CPU time the program used, when the host measured it.
        """
        return ExecResult(
            status="error",
            output=self.output,
            error=ProgramError.from_payload({**errors.to_payload(exc), "type": kind}),
            limit=exc,
            restarted=True,
            cpu_seconds=cpu_seconds,
            calls=self.calls,
        )
