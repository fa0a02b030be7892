"""Read a run's transcript back as objects: turns, calls, pmaps, LLM requests and usage.

A transcript is the JSONL file a run writes as it goes (``docs/transcript.md`` documents every
event). Reading it rebuilds the run's span tree from the start and end events, so a user can
analyse runs in their own code, and every view (``ptcrun show``, ``tree``, ``export``,
``view``) reads the same objects.

A transcript cut short by a crash or a kill is still readable: its last line may be half
written (it is dropped), spans that never ended are ``"unfinished"``, and the run's status is
``"incomplete"`` when no ``run.end`` was written.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._result import Usage
from ..errors import TranscriptError
from ._parsing import parse_event
from ._reading import Reader
from ._records import (
    CallRecord,
    ItemRecord,
    LLMRecord,
    PmapRecord,
    SpanRecord,
    TurnRecord,
    span_turn,
)
from ._schema import SCHEMA_VERSION, Event

__all__ = [
    "CallRecord",
    "ItemRecord",
    "LLMRecord",
    "PmapRecord",
    "SpanRecord",
    "Transcript",
    "TurnRecord",
    "span_turn",
]

_FILE_NAME = "transcript.jsonl"


@attrs.frozen
class Transcript:
    """A run's transcript, read back.

    Build it with :meth:`load` (a ``transcript.jsonl`` file or its run folder) or
    :meth:`from_events` (events an observer collected). Example::

        t = ptcrun.Transcript.load("runs/20250101T120000Z-ab12cd")
        print(t.status, t.usage.total_tokens)
        slow = max(t.calls, key=lambda c: c.seconds or 0)
        print(slow.tool, slow.seconds, slow.reply)

    Attributes:
        path: the file read, when read from one.
        events: every event, in order, as written (an older schema version's in its own shape).
        status: the run's final status, or ``"incomplete"`` when the file has no ``run.end``
            (the process was killed).
        answer, error, fallback_used: from ``run.end``.
        failed_calls, calls_made, partial: from ``run.end`` (``Result.failed_calls``,
            ``Result.calls_made``, ``Result.partial``); empty, 0 and false for a transcript
            written before ``run.end`` carried them, or with no ``run.end``.
        turns, calls, pmaps, llm_calls: every turn, tool call, pmap and LLM request.
        usage: tokens and cost; summed from the LLM requests when the run did not end. A
            run's ``run.end`` counts its sub-runs' usage too.
        damaged_tail: the last line was cut mid-write and was dropped.
        sub_runs: the sub-runs its ``tool.agent`` calls started, each a ``Transcript`` of its
            own (with its own ``sub_runs``), keyed by the span of the call that started it
            (``"t1.c3"``). ``events``, ``turns``, ``calls`` and the rest are this run's own;
            :meth:`spans` and :meth:`walk` cover the whole tree.
        cached_calls: worker requests the result cache answered at no cost.
        replayed: replies replayed from a resumed run, by role (``{"planner": 2, "worker": 40}``).
        resumed_from: the transcript of the run this one resumed, or ``None``.
    """

    path: Path | None
    events: tuple[Mapping[str, Any], ...] = attrs.field(repr=False)
    status: str
    answer: Any
    error: Mapping[str, Any] | None
    fallback_used: bool
    usage: Usage
    turns: tuple[TurnRecord, ...] = attrs.field(repr=False)
    calls: tuple[CallRecord, ...] = attrs.field(repr=False)
    pmaps: tuple[PmapRecord, ...] = attrs.field(repr=False)
    llm_calls: tuple[LLMRecord, ...] = attrs.field(repr=False)
    started: float
    ended: float
    damaged_tail: bool = False
    failed_calls: Mapping[str, int] = attrs.field(factory=dict)
    calls_made: int = 0
    partial: bool = False
    sub_runs: Mapping[str, Transcript] = attrs.field(factory=dict, repr=False)
    cached_calls: int = 0
    replayed: Mapping[str, int] = attrs.field(factory=dict)
    resumed_from: str | None = None

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transcript:
        """Read a transcript file, or the run folder that holds ``transcript.jsonl``.

        Raises:
            TranscriptError: the file is missing or is not a ptcrun transcript, a line other
                than the last is not JSON or does not fit its event type, or the file was
                written by a newer schema.
        """
        file = Path(path)
        if file.is_dir():
            file = file / _FILE_NAME
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TranscriptError(
                f"transcript {os.fspath(path)!r} does not exist; pass a transcript.jsonl file or "
                f"the run folder that holds one (runs/<timestamp>-<id>/)."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TranscriptError(f"transcript {str(file)!r} cannot be read: {exc}.") from None
        lines = text.split("\n")
        events: list[dict[str, Any]] = []
        numbers: list[int] = []
        damaged = False
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines) and not text.endswith("\n"):
                    damaged = True  # the writer was stopped mid-line: keep everything before it
                    break
                raise TranscriptError(
                    f"transcript {str(file)!r} line {number} is not JSON ({exc.msg}); only the "
                    f"last line may be cut short, so the file was changed after it was written."
                ) from None
            if not isinstance(event, dict):
                raise TranscriptError(f"transcript {str(file)!r} line {number} is not an event object.")
            events.append(event)
            numbers.append(number)
        return cls._read(tuple(events), path=file, damaged_tail=damaged, lines=numbers)

    @classmethod
    def from_events(
        cls,
        events: Iterable[Mapping[str, Any]],
        *,
        path: Path | None = None,
        damaged_tail: bool = False,
    ) -> Transcript:
        """Build a transcript from events, e.g. those an observer collected during a run.

        Raises:
            TranscriptError: the events do not start with ``run.start``, one was written by a
                newer schema than this ptcrun reads, or one does not fit its type's schema.
        """
        return cls._read(tuple(events), path=path, damaged_tail=damaged_tail, lines=None)

    @classmethod
    def _read(
        cls,
        events: tuple[Mapping[str, Any], ...],
        *,
        path: Path | None,
        damaged_tail: bool,
        lines: Sequence[int] | None,
    ) -> Transcript:
        """Check the events against the schema and build the records.

        ``lines`` are the file's line numbers of the events, for the error messages.
        """
        source = f"transcript {str(path)!r}" if path is not None else "the events"
        if not events:
            raise TranscriptError(f"{source} holds no events; the run stopped before it started.")
        for event in events:
            version = event.get("v")
            if not isinstance(version, int) or not isinstance(event.get("type"), str) or "ts" not in event:
                raise TranscriptError(
                    f"{source} holds {str(event)[:80]!r}, which is not a ptcrun event "
                    f"(no 'v', 'type' or 'ts')."
                )
            if version > SCHEMA_VERSION:
                raise TranscriptError(
                    f"{source} was written with transcript schema v{version}; this ptcrun reads up "
                    f"to v{SCHEMA_VERSION}. Upgrade ptcrun to read it."
                )
        if events[0]["type"] != "run.start":
            raise TranscriptError(
                f"{source} starts with {events[0]['type']!r}, not 'run.start'; it is not a whole "
                f"ptcrun transcript."
            )
        own, own_lines, nested = _split(events, lines)
        parsed = _parse(own, source, own_lines)
        sub_runs: dict[str, Transcript] = {}
        for call, group in nested.items():
            sub_source = f"{source} (the sub-run of call {call})"
            if group[0]["type"] != "run.start":
                raise TranscriptError(f"{sub_source} starts with {group[0]['type']!r}, not 'run.start'.")
            sub_runs[call] = cls._read(tuple(group), path=path, damaged_tail=False, lines=None)
        fields = Reader(parsed).fields()
        if fields["status"] == "incomplete":
            # No run.end to count the sub-runs' usage in: add up what they wrote.
            for sub in sub_runs.values():
                fields["usage"] = _plus(fields["usage"], sub.usage)
        return cls(path=path, events=own, damaged_tail=damaged_tail, sub_runs=sub_runs, **fields)

    # -- views of the run ------------------------------------------------------------------

    @property
    def run(self) -> Mapping[str, Any]:
        """The ``run.start`` event: goal, planner, worker, tools, limits, data summary."""
        return self.events[0]

    @property
    def goal(self) -> str:
        return str(self.run.get("goal", ""))

    @property
    def limits(self) -> Mapping[str, Any]:
        """The run's limits as written (``None`` stands for ``math.inf``)."""
        return self.run.get("limits") or {}

    @property
    def complete(self) -> bool:
        """The run ended normally or was interrupted, and wrote its ``run.end``."""
        return self.status != "incomplete"

    @property
    def seconds(self) -> float:
        """The run's wall time."""
        end = self.events[-1]
        if end["type"] == "run.end" and isinstance(end.get("seconds"), (int, float)):
            return float(end["seconds"])
        return max(self.ended - self.started, 0.0)

    @property
    def call_seconds(self) -> float:
        """The sum of every tool call's duration."""
        return sum(c.seconds or 0.0 for c in self.calls)

    @property
    def call_busy_seconds(self) -> float:
        """The wall time during which at least one tool call was running.

        A call runs from ``call.start``, sent once it holds a concurrency slot, to ``call.end``;
        time spent waiting for a slot, and time with no call at all (the planner thinking), is
        not counted.
        """
        spans = sorted(
            (c.started, c.started + c.seconds) for c in self.calls if c.seconds is not None
        )
        busy, reach = 0.0, -math.inf
        for start, end in spans:
            if end > reach:
                busy += end - max(start, reach)
                reach = end
        return busy

    @property
    def parallel_speedup(self) -> float | None:
        """How many calls ran at once, on average, while any call was running: the sum of the
        calls' running times over :attr:`call_busy_seconds`. A serial run is 1.0x; four calls
        always in flight make 4.0x.

        ``None`` when the run made no calls, or none that took measurable time.
        """
        busy = self.call_busy_seconds
        if not self.calls or busy <= 0:
            return None
        return self.call_seconds / busy

    def turn(self, number: int) -> TurnRecord:
        """The turn with this 1-based number.

        Raises:
            TranscriptError: the run has no such turn.
        """
        for turn in self.turns:
            if turn.number == number:
                return turn
        raise TranscriptError(
            f"the run has no turn {number}; it has {len(self.turns)} turn"
            f"{'s' * (len(self.turns) != 1)} (1 to {len(self.turns)})."
            if self.turns else f"the run has no turn {number}; it ended before its first turn."
        )

    @property
    def depth(self) -> int:
        """0 for the run, 1 for a sub-run its programs started, and so on."""
        depth = self.run.get("depth", 0)
        return depth if isinstance(depth, int) else 0

    @property
    def sub_run_statuses(self) -> dict[str, int]:
        """The sub-runs below this run, at every depth, by status, most frequent first
        (ties by name; ``Result.sub_runs``; a sub-run cut short by a kill reads ``"incomplete"``)."""
        counts = Counter(run.status for _, run in list(self.walk())[1:])
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def sub_run(self, call: str) -> Transcript:
        """The sub-run that the ``tool.agent`` call ``call`` started: ``"t1.c3"``, or
        ``"t1.c3/t2.c1"`` for one that sub-run started, as :meth:`walk` names them.

        Raises:
            TranscriptError: no call of that name started a sub-run.
        """
        for prefix, run in self.walk():
            if prefix and prefix == f"{call}/":
                return run
        known = [prefix.rstrip("/") for prefix, _ in list(self.walk())[1:]]
        have = f"its sub-runs: {', '.join(known)}" if known else "it started no sub-run"
        raise TranscriptError(f"the run has no sub-run of call {call}; {have} (`ptcrun show` lists them).")

    def walk(self) -> Iterator[tuple[str, Transcript]]:
        """This run and every sub-run below it, depth first in order of start, each with the
        prefix of its span ids in the file (``""``, ``"t1.c3/"``, ``"t1.c3/t2.c1/"``)."""
        yield "", self
        for call, sub in sorted(self.sub_runs.items(), key=lambda kv: kv[1].started):
            for prefix, run in sub.walk():
                yield f"{call}/{prefix}", run

    def spans(self) -> list[SpanRecord]:
        """Every span in order of start: the run's tree as a flat list with parent ids.

        Sub-runs' spans are included, with the span ids the file gives them
        (``t1.c3/t1.program``); a sub-run's ``run`` span has the call that started it as parent.
        """
        own = Reader(_parse(self.events, "the transcript", None)).span_list()
        for call, sub in self.sub_runs.items():
            for record in sub.spans():
                parent = call if record.parent is None else f"{call}/{record.parent}"
                own.append(attrs.evolve(record, span=f"{call}/{record.span}", parent=parent))
        own.sort(key=lambda s: s.started)
        return own


# ``sub_runs`` names the class itself, which the generated ``__init__`` cannot see when its
# hints are read: resolve them once the class exists, for ``typing.get_type_hints``.
attrs.resolve_types(Transcript)
Transcript.__init__.__annotations__.update({f.name: f.type for f in attrs.fields(Transcript)})


def _plus(a: Usage, b: Usage) -> Usage:
    """Two usages together; the cost is unknown when either has calls of unknown price."""
    names = [f.name for f in attrs.fields(Usage) if f.name != "cost"]
    counts = {name: getattr(a, name) + getattr(b, name) for name in names}
    unknown = (a.cost is None and a.calls) or (b.cost is None and b.calls) or not counts["calls"]
    return Usage(**counts, cost=None if unknown else (a.cost or 0.0) + (b.cost or 0.0))


def _split(
    events: Sequence[Mapping[str, Any]], lines: Sequence[int] | None
) -> tuple[tuple[Mapping[str, Any], ...], list[int] | None, dict[str, list[dict[str, Any]]]]:
    """This run's own events (and their line numbers), and its sub-runs' events by the call
    that started each, with that call's prefix taken off their span ids."""
    own: list[Mapping[str, Any]] = []
    own_lines: list[int] | None = None if lines is None else []
    nested: dict[str, list[dict[str, Any]]] = {}
    for index, event in enumerate(events):
        span = event.get("span")
        call, slash, rest = span.partition("/") if isinstance(span, str) else ("", "", "")
        if not slash:
            own.append(event)
            if own_lines is not None and lines is not None:
                own_lines.append(lines[index])
            continue
        parent = event.get("parent")
        if parent == call:
            parent = None
        elif isinstance(parent, str) and parent.startswith(f"{call}/"):
            parent = parent[len(call) + 1 :]
        nested.setdefault(call, []).append({**event, "span": rest, "parent": parent})
    return tuple(own), own_lines, nested


def _parse(events: Iterable[Mapping[str, Any]], source: str, lines: Sequence[int] | None) -> list[Event]:
    """The schema's object for each event, skipping types this ptcrun does not know."""
    parsed = []
    for index, event in enumerate(events):
        try:
            typed = parse_event(event)
        except ValueError as exc:
            at = f"{source} line {lines[index]}" if lines is not None else f"event {index + 1} of {source}"
            raise TranscriptError(
                f"{at}: the {event['type']} event {exc}; it was changed after it was "
                f"written, or was not written by ptcrun."
            ) from None
        if typed is not None:
            parsed.append(typed)
    return parsed
