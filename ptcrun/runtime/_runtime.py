"""Runtime: give a planner a goal and a corpus; run its programs turn by turn until done.

One run owns one token ledger (planner and workers), one ``CapacityLimiter`` (every tool and
worker call, however nested), one sandbox child (restarted if a limit kills it) and one event
stream (the transcript and the observers). Every ending after the start is a :class:`Result`;
only a bad argument raises, and only before anything runs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import errors
from .._limits import Limits
from .._result import Result
from .._tools import Tool, check_documented, collect_tools
from ..sandbox.host._driver import Sandbox
from ..transcript._events import EventStream, Observer, new_run_dir, os_error_reason
from ._answers import AnswerCheck
from ._arguments import check_data, check_goal, check_observers, check_schema, check_transcript_dir
from ._cache import DiskCache
from ._estimate import Estimate, estimate
from ._resume import Recorded, load_recorded
from ._stops import go_until_signal, holds
from ._turnloop import Data, Run, data_summary
from .providers._base import Provider

__all__ = ["Runtime"]


class Runtime:
    """Runs a planner LLM over a corpus through sandboxed programs.

    Example::

        rt = Runtime(planner=AnthropicProvider("claude-sonnet-4-6"),
                     worker=AnthropicProvider("claude-haiku-4-5"),
                     tools=[lookup_customer], limits=Limits(max_tokens=100_000))
        result = rt.run("Which customers reported outages?", chunk_by_tokens(text, 4000))

    Args:
        planner: the provider that writes the programs.
        worker: the provider behind ``tool.worker``; defaults to the planner.
        sub_planner: the provider that writes the programs of ``tool.agent``'s sub-runs;
            defaults to the planner.
        tools: the user's tools: plain functions (sync or async) or ``@ptcrun.tool`` ones.
        limits: every ceiling of a run.
        transcript_dir: where each run writes ``<timestamp>-<id>/transcript.jsonl``;
            ``None`` writes no file.
        observers: functions called with every event as it happens (the same events the
            transcript holds).
        strict_tools: refuse (``ConfigError``) a tool with no docstring or a missing type hint,
            instead of warning: the planner learns a tool only from its hints and docstring.
        on_run_folder: called with each run's folder as soon as it is made, before the run's
            first event, to keep files with the run (``ptcrun run`` writes ``corpus.json``
            there); not called when ``transcript_dir`` is ``None``. What it raises ends the
            run before it starts.
        cache: a SQLite file that keeps worker replies across runs (created if missing): a
            worker request answered by an earlier run is answered from it at no cost. ``None``
            keeps none; identical worker requests within a run are answered once either way.
    """

    def __init__(
        self,
        *,
        planner: Provider,
        worker: Provider | None = None,
        sub_planner: Provider | None = None,
        tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool] | None = None,
        limits: Limits | None = None,
        transcript_dir: str | os.PathLike[str] | None = "runs",
        observers: Sequence[Observer] = (),
        strict_tools: bool = False,
        on_run_folder: Callable[[Path], object] | None = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        if planner is None:
            raise errors.ConfigError(
                "planner is None; pass the provider that writes the programs, e.g. "
                "planner=ptcrun.AnthropicProvider('claude-sonnet-4-6')."
            )
        for role, provider in (("planner", planner), ("worker", worker), ("sub_planner", sub_planner)):
            if provider is not None and not callable(getattr(provider, "complete", None)):
                raise errors.ConfigError(
                    f"{role} must be a provider (an object with an async complete(request) method); "
                    f"got {type(provider).__name__}. Use e.g. ptcrun.AnthropicProvider('claude-sonnet-4-6')."
                )
        if on_run_folder is not None and not callable(on_run_folder):
            raise errors.ConfigError(
                f"on_run_folder must be a function of the run folder's path, or None; got "
                f"{type(on_run_folder).__name__}."
            )
        if limits is not None and not isinstance(limits, Limits):
            raise errors.ConfigError(f"limits must be a ptcrun.Limits; got {type(limits).__name__}.")
        self.planner = planner
        self.worker = worker if worker is not None else planner
        self.sub_planner = sub_planner if sub_planner is not None else planner
        self.tools = collect_tools(tools)
        # The planner knows a tool only by its hints and docstring: say so when one lacks them.
        check_documented(self.tools, strict=strict_tools)
        self.limits = limits if limits is not None else Limits()
        self.transcript_dir = check_transcript_dir(transcript_dir)
        self.observers = check_observers(observers)
        self.on_run_folder = on_run_folder
        if cache is not None and not isinstance(cache, (str, os.PathLike)):
            raise errors.ConfigError(
                f"cache must be a file path (str or os.PathLike) or None; got {type(cache).__name__}."
            )
        self.cache = None if cache is None else Path(cache)

    def run(
        self, goal: str, data: Data, *, schema: Any = None, resume: str | os.PathLike[str] | None = None
    ) -> Result:
        """Run to the end and return the :class:`Result` (synchronous; starts its own trio loop).

        Args:
            goal: what the planner must find out or produce.
            data: the corpus as chunk strings (see ``chunk_by_tokens``), or a mapping of
                names to such lists.
            schema: the answer's shape: a JSON Schema dict, or a Python type such as
                ``list[str]`` or ``dict[str, int]``. A ``done()`` answer that does not match is
                fed back to the planner and costs a turn.
            resume: the run folder (or transcript) of an earlier run of the same goal and
                corpus, interrupted or not: its planner replies and worker replies are replayed
                at no cost until this run diverges from it, and the rest is live.
                ``Result.resumed_from`` and ``Result.replayed`` say what was replayed.

        Signals: a Ctrl-C (``KeyboardInterrupt``), and SIGTERM or SIGHUP (what ``timeout``,
        ``docker stop``, systemd and a closing terminal send) end the run with status
        ``cancelled``: the calls in flight are cancelled, the sandbox child is stopped, the
        transcript ends with ``run.end``, and ``Result.signal`` and ``Result.error`` name the
        signal. This method owns its event loop, so it may turn a signal into a
        :class:`Result`. It handles SIGTERM and SIGHUP only when called in the main thread
        (Python delivers signals there), and puts their previous handlers back when it returns.

        Garbage collection: called in the main thread, it sets the objects that exist when the
        run starts aside from the collector (``gc.freeze()``) and gives them back when it
        returns (``gc.unfreeze()``), so that the collector's passes during a wide fan-out walk
        the run's objects, not the whole program's (see :func:`heap_set_aside`).

        Raises:
            ConfigError: a bad argument, before anything runs (a ``resume`` run of another goal
                or corpus, a ``cache`` file that is not a ptcrun cache).
        """
        interrupted: list[Result] = []
        try:
            with heap_set_aside():
                return trio.run(self._arun, goal, data, schema, resume, interrupted, True)
        except BaseException as exc:
            if interrupted and holds(exc, KeyboardInterrupt):
                return interrupted[0]
            raise

    def estimate(
        self, goal: str, data: Data, schema: Any = None, *, worker_output_tokens: int | None = None
    ) -> Estimate:
        """What a run of ``goal`` over ``data`` would cost, computed before anything is spent.

        No provider is called and nothing is written. The :class:`Estimate` gives the corpus's
        size, what one ``tool.worker`` call on every chunk reserves (the worker's own prompt
        and template, counted with the ledger's counter and reserved by the ledger's rule), the
        planner's first turn, the price where the providers have one, and whether a full pass
        and the planner's first two turns fit ``Limits.max_tokens``. What ``tool.agent`` sub-runs
        spend is the program's choice and is not in those figures; the estimate says what bounds
        it (each its slice, all within ``Limits.max_tokens``), what a sub-run's planner takes
        of its slice, and the most the whole budget can cost.

        Args:
            goal, data, schema: as for :meth:`run`.
            worker_output_tokens: the output allowed to each call of the pass; defaults to
                ``Limits.worker_max_tokens``, what ``tool.worker`` allows when not told.

        Raises:
            ConfigError: a bad argument.
        """
        check_goal(goal)
        checker = AnswerCheck.build(check_schema(schema))
        check_data(data)
        if worker_output_tokens is not None and (
            isinstance(worker_output_tokens, bool)
            or not isinstance(worker_output_tokens, int)
            or not 1 <= worker_output_tokens <= self.limits.worker_max_tokens
        ):
            raise errors.ConfigError(
                f"worker_output_tokens must be a whole number from 1 to Limits.worker_max_tokens="
                f"{self.limits.worker_max_tokens:,}; got {worker_output_tokens!r}."
            )
        return estimate(
            planner=self.planner,
            worker=self.worker,
            tools=self.tools,
            limits=self.limits,
            goal=goal,
            data=data,
            schema=checker.schema,
            output_tokens=worker_output_tokens,
            sub_planner=self.sub_planner,
        )

    async def arun(
        self, goal: str, data: Data, schema: Any = None, *, resume: str | os.PathLike[str] | None = None
    ) -> Result:
        """The async form of :meth:`run`, for use under trio.

        A ``KeyboardInterrupt`` (or a cancellation from outside) is not turned into a
        :class:`Result`: it propagates, as trio expects, after the transcript has recorded
        ``run.end`` with status ``cancelled``. Other signals are left to the application: it
        owns the event loop, so it decides what SIGTERM means (``trio.open_signal_receiver``,
        then cancel the scope the run is in: the run then ends the same way).
        """
        return await self._arun(goal, data, schema, resume, [])

    async def _arun(
        self,
        goal: str,
        data: Data,
        schema: Any,
        resume: str | os.PathLike[str] | None,
        interrupted: list[Result],
        watch_signals: bool = False,
    ) -> Result:
        # Every argument is checked before anything runs or is written: a bad one is a
        # ConfigError, never a half-started run.
        check_goal(goal)
        checker = AnswerCheck.build(check_schema(schema))
        check_data(data)
        Sandbox(data=data, limits=self.limits)
        recorded = None
        if resume is not None:
            if not isinstance(resume, (str, os.PathLike)):
                raise errors.ConfigError(
                    f"resume must be a run folder or transcript path; got {type(resume).__name__}."
                )
            path = resume

            def load() -> Recorded:
                # Reading a long transcript and hashing the corpus take a while: off the loop.
                return load_recorded(path, goal=goal, data_summary=data_summary(data),
                                     planner=self.planner, worker=self.worker)

            recorded = await trio.to_thread.run_sync(load)
        disk = None if self.cache is None else await trio.to_thread.run_sync(DiskCache.open, self.cache)
        try:
            events = self._open_events()
        except BaseException:
            if disk is not None:
                disk.close()
            raise
        try:
            run = Run(self, goal, data, checker, events, disk=disk, recorded=recorded)
        except BaseException:
            events.close()  # and let go of the transcript's lock
            if disk is not None:
                disk.close()
            raise
        try:
            if watch_signals and threading.current_thread() is threading.main_thread():
                result = await go_until_signal(run.go, run.stop)
            else:
                result = await run.go()
        finally:
            events.close()
            if disk is not None:
                disk.close()
            if run.interrupted is not None:
                interrupted.append(_with_warnings(run.interrupted, events))
        return _with_warnings(result, events)

    def _open_events(self) -> EventStream:
        """The run's event stream, its transcript file made first.

        Raises:
            ConfigError: ``transcript_dir`` cannot hold a transcript (a file, a read-only
                disk, no permission, a full disk).
        """
        if self.transcript_dir is None:
            return EventStream(None, self.observers)
        run_dir: Path | None = None
        try:
            run_dir = new_run_dir(self.transcript_dir)
            events = EventStream(run_dir / "transcript.jsonl", self.observers)
        except OSError as exc:
            if run_dir is not None:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise errors.ConfigError(
                f"transcript_dir={str(self.transcript_dir)!r} cannot hold transcripts: "
                f"{os_error_reason(exc)} ({exc.strerror or exc}). Pass transcript_dir= a folder you "
                f"can write to, or None to write no transcript."
            ) from None
        if self.on_run_folder is not None:
            try:
                self.on_run_folder(run_dir)
            except BaseException:
                events.close()
                raise
        return events


def _with_warnings(result: Result, events: EventStream) -> Result:
    """The result, with what went wrong beside the run (the transcript stopped short...)."""
    return attrs.evolve(result, warnings=tuple(events.warnings)) if events.warnings else result


@contextlib.contextmanager
def heap_set_aside() -> Iterator[None]:
    """Set the objects that exist now aside from the garbage collector while the block runs.

    A full collection walks every object the process holds: with an SDK loaded, some 180,000,
    a tenth of a second each time. A fan-out of thousands of calls makes enough objects to start
    one every few hundred calls. The objects made before the run are the program's modules,
    classes and data, which a run does not free, so the collector skips them until the block
    ends, then gets them back. Done only in the main thread (where a program's own setup runs,
    as for signal handlers), when the collector is on, and when nothing else has frozen objects
    (``gc.unfreeze`` would thaw theirs too). Garbage cycles among those older objects that arise
    while the block runs are collected after it.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or not gc.isenabled()
        or gc.get_freeze_count()
    ):
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
