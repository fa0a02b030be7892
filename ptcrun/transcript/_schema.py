"""The transcript's event schema: one frozen class per event type.

A run tells its story as events. Each class below is one event type: its class-level ``type`` is
the name written to the file (``"call.end"``), and its fields are the fields of that type. Every
event also carries the envelope: ``v`` (the schema version), ``type``, ``ts`` (Unix seconds),
``span`` and ``parent`` (the span ids that make the run a tree). The runtime builds these objects
and hands them to :class:`~._events.EventStream`, which writes :meth:`Event.as_json` of each; the
reader turns each line back into its class (``._parsing.parse_event``), checking every field's
type against the annotation, and builds its records from the objects. ``docs/transcript.md`` documents
every class and field, and a test holds the two together.

Values go through ptcrun's one JSON rule, in its form for events (``ptcrun._json.for_event``):
what the rule refuses is still written, as a stand-in, so that an odd value cannot stop a run
from recording its end. Errors are written as error payloads (``ptcrun.errors.to_payload``).

Schema versions: ``v`` changes when a field changes meaning or disappears, and each older version
has an upgrade in ``._parsing``, applied as a line is read. Version 2 writes every field of a
type (version 1 left out those that did not apply; they read as their defaults) and writes the
errors of LLM requests, pmap items and programs as error payloads (version 1 wrote
``"Type: message"`` text, ``"Failure(item 2: Type: message)"`` or ``"cancelled"``, and
``{"kind", ...}``).
"""

from __future__ import annotations

import math
import re
import time
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._json import JSON, for_event

__all__ = [
    "ENVELOPE",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "AnyJSON",
    "BatchEnd",
    "BatchResult",
    "BatchStart",
    "CallEnd",
    "CallStart",
    "ConcurrencyChange",
    "Event",
    "ItemEnd",
    "ItemStart",
    "LLMEnd",
    "LLMRetry",
    "LLMStart",
    "PmapEnd",
    "PmapStart",
    "ProgramEnd",
    "ProgramOutput",
    "ProgramStart",
    "RunEnd",
    "RunStart",
    "SandboxStart",
    "TurnEnd",
    "TurnStart",
    "describe_type",
    "event_fields",
]

#: Bumped when a field changes meaning or disappears; readers refuse newer versions.
SCHEMA_VERSION = 2

#: The fields every event has, in the order they are written.
ENVELOPE = ("v", "type", "ts", "span", "parent")


@attrs.frozen(kw_only=True)
class Event:
    """The envelope every event shares: where in the span tree it happened, and when."""

    type: ClassVar[str] = ""
    span: str
    parent: str | None
    ts: float = attrs.field(factory=time.time)

    def as_json(self) -> dict[str, JSON]:
        """The event as the JSON object written to the transcript and given to observers."""
        out: dict[str, JSON] = {
            "v": SCHEMA_VERSION, "type": self.type, "ts": self.ts, "span": self.span, "parent": self.parent,
        }
        for name in _FIELDS[type(self)]:
            value = getattr(self, name)
            # Most fields are plain scalars that the rule leaves as they are: skip the converter
            # for them (it is most of an event's cost, six events a worker call).
            if _plain(value):
                out[name] = value
            else:
                flat = _flat_copy(value)
                out[name] = flat if flat is not None else for_event(value)
        return out


_SURROGATE = re.compile("[\ud800-\udfff]")  # what for_event replaces in a string


def _plain(value: object) -> bool:
    """Whether ``for_event(value)`` is ``value`` itself, known without converting it."""
    if value is None or type(value) is bool:
        return True
    if type(value) is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if type(value) is int:
        return -(2**63) <= value < 2**63
    if type(value) is float:
        return math.isfinite(value)
    return False


def _flat_copy(value: object) -> JSON | None:
    """What ``for_event(value)`` gives for a list or tuple of plain scalars and str-keyed dicts
    of them (a call's arguments, a request's messages), or ``None`` for anything else."""
    if type(value) is dict:
        if all(type(k) is str and _plain(k) and _plain(v) for k, v in value.items()):
            return dict(value)
        return None
    if type(value) is list or type(value) is tuple:
        out: list[JSON] = []
        for item in value:
            if _plain(item):
                out.append(item)
            elif type(item) is dict and all(
                type(k) is str and _plain(k) and _plain(v) for k, v in item.items()
            ):
                out.append(dict(item))
            else:
                return None
        return out
    return None


# -- the run ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunStart(Event):
    """The run began (span ``run``): the goal, the providers, the tools, the limits, the data."""

    type = "run.start"
    goal: str
    planner: str
    worker: str
    tools: Sequence[str]
    #: Every ``Limits`` field; ``math.inf`` (no limit) is written as ``null``.
    limits: Mapping[str, JSON]
    data: Mapping[str, JSON]
    #: 0 for the run; 1 and more for a sub-run of ``tool.agent``, whose spans are prefixed
    #: with the span of the call that started it and a ``/`` (``t1.c3/run``).
    depth: int = 0
    #: The transcript of the run this one resumed (``Runtime.run(resume=...)``), or ``None``.
    resumed_from: str | None = None


@attrs.frozen(kw_only=True)
class RunEnd(Event):
    """The run ended (span ``run``), however it ended: always the last event of a whole file."""

    type = "run.end"
    status: str
    answer: JSON
    fallback_used: bool
    error: Mapping[str, JSON] | None
    usage: Mapping[str, JSON]
    turns: int
    seconds: float
    #: Calls whose results came back as failures, by error kind (absent before this field).
    failed_calls: Mapping[str, int] = attrs.field(factory=dict)
    #: What ``failed_calls`` is out of: pmap items, tool calls outside pmap, caught failures.
    calls_made: int = 0
    #: The answer was built while calls were failing (``Result.partial``).
    partial: bool = False
    #: The sub-runs below the run, at every depth, by status (``Result.sub_runs``).
    sub_runs: Mapping[str, int] = attrs.field(factory=dict)
    #: Worker requests answered by the result cache (an identical request of this run, or the
    #: cache file), at no cost.
    cached_calls: int = 0
    #: Replies replayed from the resumed run at no cost: ``{"planner": n, "worker": m}``.
    replayed: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SandboxStart(Event):
    """A sandbox child started (span ``tN.sandbox``), at the run's start or after a restart."""

    type = "sandbox.start"
    pid: int
    layers: Mapping[str, JSON] | None
    #: The seed of the programs' ``random`` generator (absent before this field).
    seed: int | None = None


# -- turns and the planner -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TurnStart(Event):
    """A planner turn began (span ``tN``)."""

    type = "turn.start"
    turn: int


@attrs.frozen(kw_only=True)
class TurnEnd(Event):
    """A planner turn ended (span ``tN``)."""

    type = "turn.end"
    turn: int
    status: str
    tokens_used: int
    #: Whether the reply held a program; ``None`` when the turn ended before a reply was read.
    program: bool | None = None


@attrs.frozen(kw_only=True)
class LLMStart(Event):
    """An LLM request was sent (span ``tN.planner``, or ``tN.cK.llmA`` for a worker call)."""

    type = "llm.start"
    role: str
    provider: str
    system: str
    messages: Sequence[Mapping[str, str]]
    max_tokens: int
    reserved_tokens: int


@attrs.frozen(kw_only=True)
class LLMEnd(Event):
    """An LLM request ended: its reply and usage, or its error."""

    type = "llm.end"
    role: str
    status: str
    seconds: float
    text: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float | None = None
    model: str | None = None
    stop_reason: str | None = None
    error: Mapping[str, JSON] | None = None
    #: Where a reply that cost nothing came from: ``"run"`` (an identical request earlier in
    #: this run), ``"disk"`` (the cache file) or ``"resume"`` (the run resumed); ``None`` when
    #: the provider answered.
    cached: str | None = None


@attrs.frozen(kw_only=True)
class LLMRetry(Event):
    """An attempt of an LLM request failed and the request will be sent again (same span as its
    ``llm.start``), after ``wait`` seconds."""

    type = "llm.retry"
    role: str
    attempt: int
    reason: str
    wait: float
    status: int | None
    request_id: str | None


@attrs.frozen(kw_only=True)
class ConcurrencyChange(Event):
    """The requests allowed in flight to one account changed (span ``run``): the planner, the
    workers and the sub-runs that call the same API with the same key share it, and
    ``provider`` names them all. The account's rate limits (a 429 or 529, or headers saying
    little of a limit is left) halved it, or replies without them let it grow back by one, up
    to ``Limits.max_concurrency``."""

    type = "concurrency.change"
    provider: str
    allowed: int
    previous: int
    ceiling: int
    reason: str


# -- the program -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProgramStart(Event):
    """A turn's program began to run (span ``tN.program``)."""

    type = "program.start"
    source: str


@attrs.frozen(kw_only=True)
class ProgramOutput(Event):
    """The program printed (span ``tN.program``); ``pmap`` and ``item`` say which item did."""

    type = "program.output"
    text: str
    pmap: int | None
    item: int | None


@attrs.frozen(kw_only=True)
class ProgramEnd(Event):
    """The program ended (span ``tN.program``); a run that ends meanwhile writes only the status
    and the error."""

    type = "program.end"
    status: str
    answer: JSON = None
    error: Mapping[str, JSON] | None = None
    note: str | None = None
    restarted: bool = False
    seconds: float | None = None
    cpu_seconds: float | None = None
    calls: int | None = None


# -- fan-out and calls -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PmapStart(Event):
    """A ``pmap`` or ``pcalls`` began (span ``tN.mK``)."""

    type = "pmap.start"
    pmap: int
    total: int
    concurrency: int


@attrs.frozen(kw_only=True)
class PmapEnd(Event):
    """A ``pmap`` or ``pcalls`` ended (span ``tN.mK``)."""

    type = "pmap.end"
    pmap: int
    done: int
    failed: int
    timed_out: bool


@attrs.frozen(kw_only=True)
class ItemStart(Event):
    """One item of a pmap began on a thread (span ``tN.mK.iJ``)."""

    type = "item.start"
    pmap: int
    item: int
    slot: int


@attrs.frozen(kw_only=True)
class ItemEnd(Event):
    """One item of a pmap ended (span ``tN.mK.iJ``)."""

    type = "item.end"
    pmap: int
    item: int
    slot: int
    ok: bool
    error: Mapping[str, JSON] | None


@attrs.frozen(kw_only=True)
class CallStart(Event):
    """A tool call began (span ``tN.cK``), once it held a concurrency slot."""

    type = "call.start"
    call: int
    tool: str
    args: Sequence[JSON]
    kwargs: Mapping[str, JSON]
    pmap: int | None
    item: int | None


@attrs.frozen(kw_only=True)
class CallEnd(Event):
    """A tool call ended (span ``tN.cK``): its value or its error."""

    type = "call.end"
    call: int
    tool: str
    ok: bool
    value: JSON
    error: Mapping[str, JSON] | None
    seconds: float
    pmap: int | None
    item: int | None
    #: For a worker call none of whose requests was sent: where its replies came from
    #: (``"run"``, ``"disk"``, ``"resume"``, as ``llm.end`` says); ``None`` otherwise.
    cached: str | None = None


@attrs.frozen(kw_only=True)
class BatchStart(Event):
    """A batch of worker requests was submitted to the provider's batch engine (span
    ``tN.mK.bJ``, under the ``pmap(..., batch=True)`` that made it)."""

    type = "batch.start"
    pmap: int
    #: The provider's id for the batch.
    batch_id: str
    provider: str
    #: How many requests it holds, and the pmap items they came from, first and last.
    requests: int
    first_item: int
    last_item: int
    #: Tokens reserved from the budget for its requests' worst case.
    reserved_tokens: int
    #: Bytes of the request body, within the API's limit per batch.
    bytes: int
    #: Each request's ``custom_id`` and result-cache key, so that a resumed run finds the
    #: requests of a batch whose results were never read, and reads them instead of paying twice.
    keys: Mapping[str, str] | None = None
    #: The batch was submitted by the run this one resumed: its results are read, not paid again.
    resumed: bool = False


@attrs.frozen(kw_only=True)
class BatchResult(Event):
    """One request of a batch ended (same span as its ``batch.start``): its reply or error."""

    type = "batch.result"
    item: int
    #: ``succeeded``, ``errored``, ``canceled`` or ``expired``, as the provider says; or
    #: ``missing`` when the results had no line for it.
    status: str
    text: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    error: Mapping[str, JSON] | None = None
    #: The request's result-cache key, when ``batch.start``'s ``keys`` do not give it (a batch
    #: read for the run this one resumed), so that a resumed run replays the reply.
    key: str | None = None
    #: Why the model stopped (``succeeded`` only), as ``llm.end`` says: ``max_tokens`` when the
    #: reply was cut at its output limit.
    stop_reason: str | None = None


@attrs.frozen(kw_only=True)
class BatchEnd(Event):
    """A batch ended (span ``tN.mK.bJ``): how its requests ended, what it cost, how long."""

    type = "batch.end"
    #: ``ended`` (the provider processed it; see the counts), ``canceled`` (a clock or a cancel
    #: ended the pmap and the batch was cancelled), or ``error`` (it could not be submitted or
    #: read).
    status: str
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    #: USD at the batch price (half the list price), or ``null`` when the price is unknown.
    cost: float | None = None
    #: How many times the batch was asked how it stands.
    polls: int = 0
    seconds: float = 0.0
    error: Mapping[str, JSON] | None = None


#: Every event type by its name, in the order of a run.
EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStart, SandboxStart, TurnStart, LLMStart, LLMRetry, LLMEnd, ConcurrencyChange, ProgramStart,
        ProgramOutput, PmapStart, ItemStart, CallStart, CallEnd, ItemEnd, BatchStart, BatchResult, BatchEnd,
        PmapEnd, ProgramEnd, TurnEnd, RunEnd,
    )
}

#: Each type's own fields (the envelope aside), in the order they are written.
_FIELDS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in attrs.fields(cls) if f.name not in ENVELOPE) for cls in EVENT_TYPES.values()
}


def event_fields(cls: type[Event]) -> dict[str, Any]:
    """The type hint of each of ``cls``'s own fields, in order; ``JSON`` stands for any JSON value."""
    hints = typing.get_type_hints(cls, localns={"JSON": AnyJSON})
    return {name: hints[name] for name in _FIELDS[cls]}


class AnyJSON:
    """Stands for ``JSON`` in the hints :func:`event_fields` gives: any JSON value."""


def describe_type(hint: Any) -> str:
    """A field's type as the docs spell it: ``int``, ``str or null``, ``list[JSON]`` ..."""
    if hint is AnyJSON:
        return "JSON"
    if hint is type(None):
        return "null"
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in sorted(args, key=lambda a: a is type(None)))
    if origin is Sequence:
        return f"list[{describe_type(args[0])}]"
    if origin is Mapping:
        return f"dict[{describe_type(args[0])}, {describe_type(args[1])}]"
    if isinstance(hint, type):
        return hint.__name__
    raise TypeError(f"no rule to describe the type {hint!r}")
