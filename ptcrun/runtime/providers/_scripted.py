"""A provider that answers from a script, for tests, examples and offline runs.

Tests of the runtime must not touch the network, yet they need an LLM that behaves like one:
it takes time (cancellably), charges tokens, and never writes more than ``max_tokens``.
``ScriptedProvider`` does that with replies given in advance or computed by a function.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from ...errors import ConfigError, ProviderError
from ._base import Price, Reply, Request

__all__ = ["ScriptedProvider"]

Respond = Callable[[Request], str | Reply | Awaitable[str | Reply]]


class ScriptedProvider:
    """An LLM stand-in that replies from a list or a function.

    A list is used in order, one reply per request in the order requests arrive, and its last
    reply repeats forever after. A function is called with each ``Request`` and returns the
    reply text (or a whole ``Reply`` to set the usage itself); it may be sync or async. An
    ``async def`` runs on the event loop; a plain function runs in a worker thread, so one
    that blocks (``time.sleep``) still lets calls overlap up to the run's concurrency. A
    function that raises fails that request: the runtime reports it as a ``ProviderError``
    naming this provider, with the exception as ``__cause__``, as it would a server's fault.

    Each request first waits ``latency`` seconds: a fixed number, or for a ``(low, high)``
    pair a uniform draw from ``random.Random(seed)``, so runs repeat. The wait is a
    ``trio.sleep``: it can be cancelled, and under a ``MockClock`` it takes no real time.

    Usage is counted with the runtime's tokenizer: the system prompt and messages for input,
    the reply for output. A reply longer than ``request.max_tokens`` is cut to fit, with
    ``stop_reason="max_tokens"``, as a real model would stop; so the budget's worst-case
    reservation holds. Every request is appended to ``.requests`` for tests to inspect.

    Example::

        provider = ScriptedProvider(["print(len(data))", "done(42)"])
    """

    def __init__(
        self,
        replies: Sequence[str | Reply] | Respond,
        *,
        latency: float | tuple[float, float] = 0.0,
        seed: int = 0,
        name: str = "scripted",
        context_window: int = 200_000,
        price: Price | None = None,
    ) -> None:
        self.name = name
        self.context_window = context_window
        self.price = price
        self.requests: list[Request] = []
        self._respond: Respond | None = None
        self._replies: tuple[str | Reply, ...] = ()
        if callable(replies):
            self._respond = replies
        else:
            if isinstance(replies, str):
                raise ConfigError(
                    "ScriptedProvider takes a list of replies or a function; got one string. "
                    "Wrap it in a list."
                )
            self._replies = tuple(replies)
            if not self._replies:
                raise ConfigError("ScriptedProvider needs at least one reply; got an empty list.")
            for reply in self._replies:
                if not isinstance(reply, (str, Reply)):
                    raise ConfigError(
                        f"ScriptedProvider replies must be strings; got {type(reply).__name__} "
                        f"{reply!r:.60}."
                    )
        self._latency = _check_latency(latency)
        self._rng = random.Random(seed)
        self._used = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> ScriptedProvider:
        """Load a script: a ``.json`` list of reply strings, or a ``.py`` file that defines
        ``respond(request) -> str``. ``options`` are passed to the constructor.

        Raises:
            ConfigError: the file is missing, a directory, unreadable, not UTF-8 text, of
                another kind, or does not hold a script.
        """
        path = Path(path)
        options.setdefault("name", f"scripted:{path.name}")
        if path.is_dir():
            raise ConfigError(
                f"scripted provider file {path} is a directory; give a .json list of replies "
                f"or a .py file defining respond(request)."
            )
        if not path.is_file():
            raise ConfigError(f"scripted provider file not found: {path}.")
        if path.suffix not in (".json", ".py"):
            raise ConfigError(
                f"scripted provider file must end in .json (a list of replies) or .py (defining "
                f"respond(request)); got {path.name}."
            )
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"scripted provider file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                f"at offset {exc.start:,}); save it as UTF-8."
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"scripted provider file {path} cannot be read: {exc.strerror or exc}."
            ) from None
        if path.suffix == ".json":
            try:
                replies = json.loads(source)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"scripted provider file {path} is not valid JSON: {exc}."
                ) from exc
            if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
                raise ConfigError(
                    f"scripted provider file {path} must hold a JSON list of reply strings; "
                    f"got {type(replies).__name__}."
                )
            return cls(replies, **options)
        spec = importlib.util.spec_from_file_location(f"_ptcrun_script_{path.stem}", path)
        assert spec is not None and spec.loader is not None  # a .py path always has both
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(
                f"scripted provider file {path} failed to load: {type(exc).__name__}: {exc}."
            ) from exc
        respond = getattr(module, "respond", None)
        if not callable(respond):
            raise ConfigError(
                f"scripted provider file {path} must define respond(request) -> str."
            )
        return cls(respond, **options)

    async def complete(self, request: Request) -> Reply:
        """Wait the latency, then reply from the script."""
        self.requests.append(request)
        scripted: str | Reply | None = None
        if self._respond is None:
            # Take the reply now, not after the wait, so replies follow the order of requests.
            scripted = self._replies[min(self._used, len(self._replies) - 1)]
            self._used += 1
        delay = self._next_delay()
        if delay > 0:
            await trio.sleep(delay)
        else:
            await trio.lowlevel.checkpoint()  # a real call always yields; so does this one
        if self._respond is not None:
            scripted = await self._call_respond(self._respond, request)
        if isinstance(scripted, Reply):
            return scripted
        if not isinstance(scripted, str):
            raise ProviderError(
                f"scripted respond() must return str or Reply; got {type(scripted).__name__}.",
                provider=self.name,
            )
        return self._measure(request, scripted)

    @staticmethod
    async def _call_respond(respond: Respond, request: Request) -> str | Reply:
        answer: str | Reply | Awaitable[str | Reply]
        call = type(respond).__call__ if not inspect.isroutine(respond) else None
        if inspect.iscoroutinefunction(respond) or inspect.iscoroutinefunction(call):
            answer = respond(request)
        else:
            # A plain function may block (time.sleep, a subprocess, a local model): on the
            # event loop it would run the calls one at a time, so it runs in a thread. A
            # cancelled call abandons the thread, which finishes on its own, answer dropped.
            # Threads without a cap of their own: trio's default of 40 would quietly hold a run
            # of Limits.max_concurrency=64 to 40 calls at once; the run's limiter bounds them.
            answer = await trio.to_thread.run_sync(
                respond, request, abandon_on_cancel=True, limiter=_uncapped_threads()
            )
        return await answer if inspect.isawaitable(answer) else answer

    def _next_delay(self) -> float:
        if isinstance(self._latency, tuple):
            return self._rng.uniform(*self._latency)
        return self._latency

    def _measure(self, request: Request, text: str) -> Reply:
        from ...corpus._tokens import count_tokens  # written beside the budget; imported when first needed

        input_tokens = count_tokens(request.system) + sum(
            count_tokens(m.content) for m in request.messages
        )
        output_tokens = count_tokens(text)
        stop_reason = "end_turn"
        if output_tokens > request.max_tokens:
            text = _cut_to_tokens(text, request.max_tokens, count_tokens)
            output_tokens = count_tokens(text)
            stop_reason = "max_tokens"
        return Reply(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            model=self.name,
            stop_reason=stop_reason,
        )

    def __repr__(self) -> str:
        return f"ScriptedProvider(name={self.name!r})"


def _check_latency(latency: float | tuple[float, float]) -> float | tuple[float, float]:
    def ok(x: object) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf

    if isinstance(latency, tuple):
        if len(latency) == 2 and ok(latency[0]) and ok(latency[1]) and latency[0] <= latency[1]:
            return (float(latency[0]), float(latency[1]))
    elif ok(latency):
        return float(latency)
    raise ConfigError(
        f"ScriptedProvider(latency=...) must be seconds >= 0 or a (low, high) pair with "
        f"low <= high; got {latency!r}."
    )


def _cut_to_tokens(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` that counts at most ``max_tokens`` tokens."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count(text[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low]


_THREADS: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("ptcrun scripted threads")


def _uncapped_threads() -> trio.CapacityLimiter:
    """The current trio run's limiter for scripted functions' threads: no cap."""
    try:
        return _THREADS.get()
    except LookupError:
        limiter = trio.CapacityLimiter(math.inf)
        _THREADS.set(limiter)
        return limiter
