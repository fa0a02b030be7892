"""Write a reproducible application log with planted incidents, and the ground truth.

The log audit needs a corpus whose answer is known. This writes ``app.log`` (ordinary log
records: access lines, cache hits, logins, slow-query warnings, declined cards, ...) with
incidents of five kinds planted in it, and ``ground_truth.json`` listing each incident: its id,
kind, first and last line, and request id.

Incidents come single-line and multi-line (Java and native stack traces, a Python traceback),
and some are placed on purpose where the chunker cuts the log, using the same settings as the
run (``CHUNK_TOKENS`` with ``OVERLAP_TOKENS`` overlap, on the numbered view of the log):

- *cut*: a stack trace that a chunk ends inside of, so one worker sees its head and the next
  worker sees only its last frames (which it must not report as an incident of their own);
- *overlap*: a record in the lines two neighbouring chunks both hold, so two workers report it
  and the planner's aggregation has to count it once.

The same seed and line count always give the same files.

Usage::

    python examples/log_audit/generate.py --lines 10000 --seed 7 --out runs/log_audit
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# examples/ is not a package: reach _common and the sibling module by path.

import _common
from _common import number_lines, numbered_line

from ptcrun import chunk_by_tokens

log_lines = _common.load_module(Path(__file__).resolve().parent / "log_lines.py")
KINDS = log_lines.KINDS

#: The run cuts the numbered log into chunks of this many tokens...
CHUNK_TOKENS = 4_000
#: ...each repeating about this many tokens of the chunk before it.
OVERLAP_TOKENS = 200
#: One incident per this many lines (at least MIN_INCIDENTS).
LINES_PER_INCIDENT = 400
MIN_INCIDENTS = 8
#: About this share of the incidents is placed at chunk boundaries.
BOUNDARY_SHARE = 0.25
# Incidents keep this many plain lines between them, so each stays a separate record.
_GAP_LINES = 3
# Tries to settle an incident at one boundary before moving to the next.
_AIM_TRIES = 4


def chunk_log(text: str) -> list:
    """Cut a raw log into the chunks the run uses: its numbered view (line numbers in the text,
    as ``cat -n`` shows them), with the same settings."""
    return chunk_by_tokens(number_lines(text), CHUNK_TOKENS, OVERLAP_TOKENS)


# --- planting ----------------------------------------------------------------------------------


@attrs.define
class Incident:
    """One planted incident while the log is built (``line`` is 1-based, 0 until placed)."""

    id: str
    kind: str
    request_id: str
    first: str
    rest: list[str]
    placement: str  # "random", "cut" or "overlap"
    target: int = -1  # for cut/overlap: the chunk at whose end it is placed
    line: int = 0

    @property
    def length(self) -> int:
        return 1 + len(self.rest)

    @property
    def last_line(self) -> int:
        return self.line + self.length - 1


@attrs.frozen
class Corpus:
    """A generated log and its ground truth."""

    text: str
    truth: list[dict]
    chunks: int
    seed: int

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write ``app.log`` and ``ground_truth.json`` into ``out``; return their paths."""
        out.mkdir(parents=True, exist_ok=True)
        log, truth = out / "app.log", out / "ground_truth.json"
        log.write_text(self.text, encoding="utf-8")
        document = {
            "lines": self.text.count("\n"),
            "seed": self.seed,
            "chunk_tokens": CHUNK_TOKENS,
            "overlap_tokens": OVERLAP_TOKENS,
            "chunks": self.chunks,
            "incidents": self.truth,
        }
        truth.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return log, truth


@attrs.frozen
class _Span:
    """Where one chunk lies, in absolute lines (its start is a line start plus ``column``)."""

    index: int
    first_line: int
    last_line: int
    column: int
    next_line: int  # where the next chunk starts, or 0 for the last chunk
    next_column: int


class _Log:
    """The lines being built: filler everywhere, incidents laid over it."""

    def __init__(self, lines: int, rng: random.Random) -> None:
        moment = datetime(2024, 5, 14, 8, 0, 0, tzinfo=UTC)
        self.stamps: list[str] = []
        for _ in range(lines):
            moment += timedelta(milliseconds=rng.randint(5, 900))
            self.stamps.append(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z")
        self.lines = [f"{stamp} {log_lines.filler(rng)}" for stamp in self.stamps]
        self.filler = list(self.lines)
        self.incidents: list[Incident] = []

    def free(self, line: int, length: int, ignore: Incident | None = None) -> bool:
        if line < 1 or line + length - 1 > len(self.lines):
            return False
        return all(
            not (line <= other.last_line + _GAP_LINES and other.line <= line + length - 1 + _GAP_LINES)
            for other in self.incidents
            if other.line and other is not ignore
        )

    def place(self, incident: Incident, line: int) -> None:
        self.unplace(incident)
        incident.line = line
        self.lines[line - 1] = f"{self.stamps[line - 1]} {incident.first}"
        self.lines[line : line - 1 + incident.length] = incident.rest

    def unplace(self, incident: Incident) -> None:
        if incident.line:
            self.lines[incident.line - 1 : incident.last_line] = self.filler[incident.line - 1 : incident.last_line]
            incident.line = 0

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def spans_from(self, line: int, column: int, index: int, count: int) -> list[_Span]:
        """Chunk the numbered log from a chunk start; return at least ``count`` whole chunks
        (fewer at the end of the log).

        A chunk's end depends only on where it starts and the text after, so chunking from a
        known chunk start gives the same chunks as chunking the whole log, at the cost of the
        window alone: that is what lets incidents follow boundaries that move as they are
        planted.
        """
        window = max(count + 2, 3) * 160
        while True:
            last = min(line - 1 + window, len(self.lines))
            text = "".join(numbered_line(n, self.lines[n - 1]) for n in range(line, last + 1))[column:]
            chunks = chunk_by_tokens(text, CHUNK_TOKENS, OVERLAP_TOKENS)
            at_end = last == len(self.lines)
            if at_end or len(chunks) > count:
                break
            window *= 2
        starts = [0]
        for chunk_line in text.splitlines(keepends=True):
            starts.append(starts[-1] + len(chunk_line))
        spans = []
        usable = chunks if at_end else chunks[:-1]  # the window cuts the last chunk short
        for position, chunk in enumerate(usable):
            after = chunks[position + 1] if position + 1 < len(chunks) else None
            spans.append(
                _Span(
                    index=index + position,
                    first_line=line + chunk.first_line - 1,
                    last_line=line + chunk.last_line - 1,
                    column=chunk.start - starts[chunk.first_line - 1] + (column if chunk.first_line == 1 else 0),
                    next_line=line + after.first_line - 1 if after else 0,
                    next_column=after.start - starts[after.first_line - 1] + (column if after.first_line == 1 else 0) if after else 0,
                )
            )
        return spans


def _chunks_holding(chunks: Sequence, line: int) -> list[int]:
    return [c.index for c in chunks if c.first_line <= line <= c.last_line]


def _cut_by_chunk_end(chunks: Sequence, incident: Incident) -> bool:
    return any(incident.line <= c.last_line < incident.last_line for c in chunks[:-1])


def _aim(here: _Span, following: _Span, incident: Incident) -> int:
    """The first line that puts the incident where its placement wants it."""
    if incident.placement == "cut":
        # The chunk ends two lines before the trace does: the next chunk's overlap holds only
        # the last frames, not the record that starts the trace.
        return here.last_line - incident.length + 3
    return (following.first_line + here.last_line) // 2  # inside the lines both chunks hold


def _placed_well(spans: Sequence[_Span], incident: Incident) -> bool:
    if incident.placement == "cut":
        return _cut_by_chunk_end(spans, incident)
    return len(_chunks_holding(spans, incident.line)) >= 2


def _plant_at_boundaries(log: _Log, boundary: list[Incident]) -> None:
    """Walk the chunks from the start, planting each boundary incident at its target chunk.

    Planting changes token counts and so where every later chunk ends; walking left to right
    and re-chunking from the last settled chunk start keeps each placement exact.
    """
    first = log.spans_from(1, 0, 0, 2)
    lines_per_chunk = max(first[0].next_line - 1, 1) if first[0].next_line else len(log.lines)
    boundaries = max(len(log.lines) // lines_per_chunk, 1)
    for j, incident in enumerate(boundary):
        incident.target = int((j + 0.5) * boundaries / len(boundary))
    line, column, index = 1, 0, 0
    for incident in boundary:
        target = max(incident.target, index)
        while not incident.line:
            spans = log.spans_from(line, column, index, target - index + 2)
            if len(spans) < target - index + 2:
                break  # the log ended before the target: it gets a random place instead
            here = spans[target - index]
            # The incident's own tokens move the chunk's end: aim, plant, look again.
            settled = None
            for _ in range(_AIM_TRIES):
                local = log.spans_from(here.first_line, here.column, here.index, 2)
                aim = _aim(local[0], local[1], incident)
                if aim <= here.first_line or not log.free(aim, incident.length, ignore=incident):
                    break
                log.place(incident, aim)
                after = log.spans_from(here.first_line, here.column, here.index, 2)
                if _placed_well(after, incident):
                    settled = after[0]
                    break
            if settled is None:
                log.unplace(incident)
                target += 1  # taken, or it would not settle: try the next boundary
            else:
                incident.target = here.index
                line, column, index = settled.next_line, settled.next_column, here.index + 1
        if not incident.line:
            incident.placement = "random"


def generate(lines: int = 10_000, seed: int = 7, incidents: int | None = None) -> Corpus:
    """Build the log and its ground truth; the same arguments always give the same corpus."""
    rng = random.Random(seed)
    log = _Log(lines, rng)
    count = incidents if incidents is not None else max(MIN_INCIDENTS, lines // LINES_PER_INCIDENT)
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(max(count - len(KINDS), 0))]
    rng.shuffle(kinds)
    kinds = kinds[:count]
    wanted = round(count * BOUNDARY_SHARE)
    multi_kinds = log_lines.MULTI_LINE_KINDS
    made: list[Incident] = []
    for number, planned in enumerate(kinds):
        kind, placement = planned, "random"
        if number < wanted:
            placement = "cut" if number % 2 == 0 else "overlap"
            if placement == "cut" and kind not in multi_kinds:
                kind = multi_kinds[number % 3]
        length = 1 if placement == "overlap" else log_lines.length_of(kind, rng, multi=placement == "cut")
        req = log_lines.request_id(rng)
        first, rest = log_lines.MAKERS[kind](rng, req, length)
        made.append(Incident(f"INC-{number + 1:03d}", kind, req, first, rest, placement))

    # Random incidents first: planting them moves the boundaries the others are aimed at.
    log.incidents = made
    for incident in made:
        if incident.placement != "random":
            continue
        for _ in range(1000):
            line = rng.randint(1, lines - incident.length + 1)
            if log.free(line, incident.length):
                log.place(incident, line)
                break
    _plant_at_boundaries(log, [i for i in made if i.placement != "random"])
    for incident in made:
        while not incident.line:
            line = rng.randint(1, lines - incident.length + 1)
            if log.free(line, incident.length):
                log.place(incident, line)

    text = log.text()
    chunks = chunk_log(text)
    truth = [
        {
            "id": incident.id,
            "kind": incident.kind,
            "line": incident.line,
            "last_line": incident.last_line,
            "request_id": incident.request_id,
            "placement": incident.placement,
            "chunks": _chunks_holding(chunks, incident.line),
            "cut_by_chunk_end": _cut_by_chunk_end(chunks, incident),
        }
        for incident in sorted(made, key=lambda i: i.line)
    ]
    return Corpus(text=text, truth=truth, chunks=len(chunks), seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a log with planted incidents and its ground truth.")
    parser.add_argument("--lines", type=int, default=10_000, help="log lines (default 10,000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--incidents", type=int, help=f"incidents to plant (default lines / {LINES_PER_INCIDENT})")
    parser.add_argument("--out", type=Path, default=Path("runs") / "log_audit", help="output folder (default runs/log_audit)")
    args = parser.parse_args(argv)
    if args.lines < 100:
        parser.error("--lines must be at least 100")
    corpus = generate(args.lines, args.seed, args.incidents)
    log, truth = corpus.write(args.out)
    seen_twice = sum(len(t["chunks"]) > 1 for t in corpus.truth)
    cut = sum(t["cut_by_chunk_end"] for t in corpus.truth)
    print(
        f"wrote {log} ({args.lines:,} lines, {corpus.chunks} chunks of {CHUNK_TOKENS:,} tokens) and {truth}: "
        f"{len(corpus.truth)} incidents, {seen_twice} in lines two chunks share, {cut} cut by a chunk end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
