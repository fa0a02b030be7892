"""Cut a corpus into chunks by tokens, lines or characters, and read a corpus file.

The planner never sees the corpus; its programs see ``data``, a list of chunks, and hand each
chunk to a worker LLM. A chunk must therefore fit the worker's context (count real tokens), keep a
log record or a stack trace whole when it can (end at a line break), and may repeat the end of
the previous chunk (``overlap``) so that a record cut at a boundary is still seen whole by one
worker.

Every chunker returns :class:`Chunk` objects: strings, so a list of them is the ``data`` a run
takes, that also know where they came from. In all three, the chunks cover the text in order, each
chunk after the first starts after the one before it, and dropping each chunk's first
``chunk.overlap`` characters and joining the rest gives the text back exactly.

A line is everything up to and including a ``\\n`` (so ``\\r\\n`` endings stay inside their line),
or the rest of the text after the last ``\\n``.

Memory is bounded by the chunk size, not by the longest line: a line longer than
``_PIECE_CHARS`` is indexed and counted in pieces of about that length (see :class:`_TokenIndex`
and :func:`_count`), so a 50 MB corpus on one line costs what 50 MB of ordinary lines costs.
``benchmarks/bench_chunk_memory.py`` measures both.

Past 400 lines because the token cutter, most of the module, shares Chunk and the line index.
"""

from __future__ import annotations

import hashlib
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any, Literal, NoReturn

from ..errors import ConfigError
from ._counting import count_spans, lines_add_up
from ._tokens import count_tokens, token_boundaries

__all__ = ["Chunk", "chunk_by_chars", "chunk_by_lines", "chunk_by_tokens", "corpus_digest", "read_text"]

Unit = Literal["tokens", "lines", "characters"]

# A token chunk ends at the last line break in its final quarter; an overlap starts at the first
# line start in its first quarter. A log line shorter than a quarter of the chunk is never cut,
# and no chunk is less than three quarters full, except the last or where the size check has
# to step back.
_SNAP_DIVISOR = 4
# Estimates are usually exact, so one count settles a chunk; a few more correct a bad guess.
_MAX_TRIES = 8

# Lines longer than this many characters are indexed and counted in pieces of about this
# length. Encoding a whole line at once holds a Python int per token (some 70 bytes each with
# the boundaries), so a 50 MB line took over 1 GB; pieces keep that to about a megabyte.
# Ordinary lines are far shorter, so they are handled exactly as before.
_PIECE_CHARS = 1 << 15

# A place where cl100k's pre-tokenizer always splits, so the tokens of the text on either side
# are the tokens of the whole: after an ASCII letter or digit, before ASCII punctuation or a
# space. Each pre-token ends there (a run of letters or digits stops at the first other
# character, and no pattern looks behind), so counting the two sides on their own adds up to the
# count of the whole.
_SPLIT = re.compile(r"[A-Za-z0-9](?=[ !-/:-@\[-`{-~])")


class Chunk(str):
    """A chunk of a corpus: a str, plus where it came from.

    A chunk compares, hashes, slices and serialises as the plain string it is, so a list of
    chunks can be passed wherever text is expected (``Runtime.run(goal, data=chunks)``). It is
    read-only.

    Attributes:
        index: position in the list of chunks, from 0.
        first_line: line of the original text where the chunk starts, from 1.
        last_line: line of the original text where the chunk's last character is.
        start: character offset in the original text where the chunk starts.
        end: character offset where it ends: ``text[chunk.start:chunk.end] == chunk``.
        tokens: cl100k tokens in the chunk, counted on its own.
        overlap: how many leading characters repeat the end of the previous chunk (0 for the
            first): ``chunk[chunk.overlap:]`` is the text that no earlier chunk holds.
    """

    # Hand-written rather than attrs: str is variable-sized, so it can take neither slots nor
    # an attrs __init__; the fields live in the instance dict, set once in __new__.
    # `index` hides str.index(): chunk.index("x") raises TypeError. The name is public API, so
    # it stays until it is renamed; str.index(chunk, "x") still works.
    index: int  # type: ignore[assignment]
    first_line: int
    last_line: int
    start: int
    end: int
    tokens: int
    overlap: int

    def __new__(
        cls,
        text: str,
        *,
        index: int,
        first_line: int,
        last_line: int,
        start: int,
        end: int,
        tokens: int,
        overlap: int,
    ) -> Chunk:
        self = super().__new__(cls, text)
        self.__dict__.update(
            index=index,
            first_line=first_line,
            last_line=last_line,
            start=start,
            end=end,
            tokens=tokens,
            overlap=overlap,
        )
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Chunk is read-only; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Chunk is read-only; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_chunk, (str(self), dict(self.__dict__)))

    def __repr__(self) -> str:
        head = str.__repr__(self[:40]) + ("..." if len(self) > 40 else "")
        return (
            f"Chunk(index={self.index}, lines={self.first_line}-{self.last_line}, "
            f"start={self.start}, end={self.end}, tokens={self.tokens}, "
            f"overlap={self.overlap}, text={head})"
        )


def _rebuild_chunk(text: str, fields: dict[str, int]) -> Chunk:
    return Chunk(text, **fields)


def chunk_by_tokens(text: str, size: int, overlap: int = 0) -> list[Chunk]:
    """Cut text into chunks of at most size cl100k tokens, ending at line breaks where near.

    Each chunk holds as much as fits in size tokens, then steps back to the last line break in
    its final quarter, so a line shorter than a quarter of size is never cut. When no line break
    lies that close, the chunk is filled to size and the line is cut between two tokens; this
    is how a line longer than size is split. Every chunk's text, counted on its own, has at most
    size tokens (``chunk.tokens``), since counts are checked after each cut.

    Example::

        chunks = chunk_by_tokens(read_text("app.log"), 4_000, overlap=200)

    Args:
        text: the corpus.
        size: the most tokens a chunk may hold.
        overlap: each chunk after the first begins with at most overlap tokens repeated from
            the end of the previous one (counted on the repeated text alone). The repeat begins
            at a line start when one lies in the first quarter of those tokens, and otherwise
            between two tokens. It can come out shorter than asked, or empty, when the previous
            chunk is itself that short or the new chunk would not fit size with it.

    Returns:
        The chunks in order; an empty list for empty text.

    Raises:
        ConfigError: size is not a positive int, overlap is negative or not smaller than size,
            or size is too small to hold one character of the text (a character takes up to 4
            tokens).
    """
    _check_arguments(text, size, overlap, "tokens")
    if not text:
        return []
    index = _TokenIndex(text)
    spans, _ = _cut_by_tokens(index, 0, 0, size, overlap)
    return _make_chunks(text, index.starts, spans)


def _cut_by_tokens(
    index: _TokenIndex, start: int, previous_end: int, size: int, overlap: int, *,
    limit: int | None = None, base: int = 0,
) -> tuple[list[tuple[int, int, int]], tuple[int, int]]:
    """The (start, end, tokens) spans of token chunks, from the chunk that begins at start.

    Without limit, the spans run to the end of the text. With one, they stop before the first
    chunk that would end past limit, and the second value is where that chunk begins and the
    end of the one before it, to resume from: :mod:`._stream` cuts a file window by window.
    base is the text's offset in the whole corpus, for error messages.
    """
    text = index.text
    spans: list[tuple[int, int, int]] = []
    while True:
        cut = _fill(index, start, previous_end, size)
        if cut is None:
            # The repeated tail and one new character together exceed size: drop the repeat.
            start = previous_end
            cut = _fill(index, start, previous_end, size) or _character_too_big(text, start, size, base)
        end, tokens = cut
        if limit is not None and end > limit:
            return spans, (start, previous_end)
        spans.append((start, end, tokens))
        if end == len(text):
            return spans, (end, end)
        start, previous_end = _repeat_start(index, start, end, overlap), end


def chunk_by_lines(text: str, size: int, overlap: int = 0) -> list[Chunk]:
    """Cut text into chunks of size lines; each chunk after the first repeats overlap lines.

    The last chunk may hold fewer lines. Lines are never cut, however long they are.

    Args:
        text: the corpus.
        size: lines per chunk.
        overlap: each chunk after the first begins with exactly the last overlap lines of the
            previous one.

    Raises:
        ConfigError: size is not a positive int, or overlap is negative or not smaller than size.
    """
    _check_arguments(text, size, overlap, "lines")
    starts = _line_starts(text)
    lines = len(starts) - 1
    firsts = range(0, max(lines - overlap, 1), size - overlap) if lines else ()
    return _make_chunks(text, starts, [(starts[f], starts[min(f + size, lines)]) for f in firsts])


def chunk_by_chars(text: str, size: int, overlap: int = 0) -> list[Chunk]:
    """Cut text into chunks of size characters; each chunk after the first repeats overlap.

    Cuts fall exactly every size - overlap characters, inside lines or words alike; the last
    chunk may be shorter.

    Args:
        text: the corpus.
        size: characters per chunk.
        overlap: each chunk after the first begins with exactly the last overlap characters of
            the previous one.

    Raises:
        ConfigError: size is not a positive int, or overlap is negative or not smaller than size.
    """
    _check_arguments(text, size, overlap, "characters")
    length = len(text)
    firsts = range(0, max(length - overlap, 1), size - overlap) if text else ()
    return _make_chunks(text, _line_starts(text), [(f, min(f + size, length)) for f in firsts])


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a corpus file as UTF-8 text, exactly as stored.

    Line endings are kept as they are (``\\r\\n`` stays), so offsets in chunks match the file.
    A leading UTF-8 byte-order mark is dropped.

    Raises:
        ConfigError: the file is missing, is a directory, cannot be read, or is not UTF-8 text
            (a NUL byte or an invalid UTF-8 sequence; the message gives the byte offset).
    """
    shown = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise _unreadable(shown, exc) from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _utf16(shown)
    nul = data.find(b"\x00")
    if nul != -1:
        raise _nul(shown, nul)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(shown, data[exc.start], exc.start, exc.reason) from None
    return text.removeprefix("\ufeff")


# The refusals of a corpus file, shared with the streaming reader (:mod:`._stream`), which
# must refuse the same files with the same words.


def _unreadable(shown: str, exc: OSError) -> ConfigError:
    if isinstance(exc, FileNotFoundError):
        return ConfigError(
            f"corpus file {shown!r} does not exist; check the path (relative paths start at "
            f"the current directory, {os.getcwd()!r})."
        )
    if isinstance(exc, IsADirectoryError):
        return ConfigError(
            f"corpus path {shown!r} is a directory, not a file; pass one file, or read each "
            f"file with read_text() and join the texts."
        )
    return ConfigError(
        f"corpus file {shown!r} cannot be read: {exc.strerror or exc}; check that it "
        f"exists and that you may read it."
    )


def _utf16(shown: str) -> ConfigError:
    return ConfigError(
        f"corpus file {shown!r} is UTF-16 text (it starts with a UTF-16 byte-order mark), "
        f"not UTF-8; convert it to UTF-8 first."
    )


def _nul(shown: str, offset: int) -> ConfigError:
    return ConfigError(
        f"corpus file {shown!r} is not text: NUL byte at byte offset {offset:,}; pass a "
        f"UTF-8 text file."
    )


def _not_utf8(shown: str, byte: int, offset: int, reason: str) -> ConfigError:
    return ConfigError(
        f"corpus file {shown!r} is not UTF-8 text: byte 0x{byte:02x} at byte "
        f"offset {offset:,} is {reason}; convert the file to UTF-8 first."
    )


def _check_arguments(text: object, size: object, overlap: object, unit: Unit) -> None:
    if not isinstance(text, str):
        raise ConfigError(
            f"text must be a str; got {type(text).__name__}. Decode bytes first, or read the "
            f"file with read_text(path)."
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"chunk size must be a positive whole number of {unit}; got size={size!r}. "
            f"Pass an int of at least 1."
        )
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ConfigError(
            f"chunk overlap must be a whole number of {unit}, 0 or more; got overlap={overlap!r}. "
            f"Pass 0 for no overlap."
        )
    if overlap >= size:
        raise ConfigError(
            f"overlap={overlap:,} {unit} is not smaller than size={size:,} {unit}, so chunks "
            f"could never move forward; lower overlap below {size:,} or raise size."
        )


def _line_starts(text: str) -> list[int]:
    """Offsets where each line starts, then len(text): line k is text[starts[k]:starts[k+1]]."""
    # Found one by one rather than with split(), which would copy the whole text into lines.
    starts = [0]
    find, at = text.find, text.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = find("\n", at + 1)
    if starts[-1] != len(text):  # the text does not end with a line break: its last line has none
        starts.append(len(text))
    return starts


def _pieces(text: str, start: int, end: int) -> list[int]:
    """Where to cut text[start:end] into pieces of at most about _PIECE_CHARS characters.

    Returns the offsets inside it, ascending, where a piece starts (not start itself). A cut is
    at a pre-token boundary (``_SPLIT``) in the second half of each piece when there is one,
    so counting the pieces on their own gives the count of the whole; otherwise (a run of
    letters longer than half a piece) it is at the piece's length, and counts only estimate.
    """
    cuts: list[int] = []
    at = start
    while end - at > _PIECE_CHARS:
        limit = at + _PIECE_CHARS
        cut = limit
        for match in _SPLIT.finditer(text, limit - _PIECE_CHARS // 2, limit):
            cut = match.end()
        cuts.append(cut)
        at = cut
    return cuts


def _count(text: str, start: int, end: int) -> int:
    """count_tokens(text[start:end]), in pieces when the span is long, so memory stays bounded.

    A long span is counted in pieces cut at pre-token boundaries, which add up exactly; where
    no such boundary is near, the pieces are joined, so the count stays exact.
    """
    if end - start <= _PIECE_CHARS:
        return count_tokens(text[start:end])
    total, at = 0, start
    for cut in _pieces(text, start, end):
        if _SPLIT.match(text, cut - 1) is not None:  # a true boundary: the sides add up
            total += count_tokens(text[at:cut])
            at = cut
    return total + count_tokens(text[at:end])


def _make_chunks(
    text: str, starts: list[int], spans: Sequence[tuple[int, int] | tuple[int, int, int]]
) -> list[Chunk]:
    """Chunks from (start, end[, tokens]) spans in order; tokens are counted when not given."""
    chunks: list[Chunk] = []
    previous_end = 0
    for index, (start, end, *counted) in enumerate(spans):
        chunks.append(
            Chunk(
                text[start:end],
                index=index,
                first_line=bisect_right(starts, start),
                last_line=bisect_right(starts, end - 1),
                start=start,
                end=end,
                tokens=counted[0] if counted else _count(text, start, end),
                overlap=max(previous_end - start, 0),
            )
        )
        previous_end = end
    return chunks


class _TokenIndex:
    """Estimated token positions in a text, from one encode per line (or piece of a line).

    The position of a line start is the sum of the token counts of the lines before it, each
    line counted on its own. That can differ from counting the text at once (tokens such as
    ``"\\n\\n"`` can span lines), so it only guides where to cut; every cut is counted exactly
    afterwards (:meth:`count`: from the line counts where they provably add up, else by
    encoding it). Inside a line, positions come from the line's own tokens, computed only for
    the few lines a cut lands in. The lines are counted on a thread per idle core
    (:func:`._counting.count_spans`).

    A line longer than ``_PIECE_CHARS`` is indexed as pieces (:func:`_pieces`): ``marks`` holds
    every line start and piece start, and ``positions`` the token position of each mark, so
    no line is ever encoded whole. Cuts prefer line starts (``starts``, ``line_positions``);
    piece starts are only places where positions are known.
    """

    def __init__(self, text: str, known: Sequence[int] = ()) -> None:
        """Index text; known holds the counts of its first marks' spans, when counted before."""
        self.text = text
        self.starts = _line_starts(text)
        long_lines = [(a, b) for a, b in pairwise(self.starts) if b - a > _PIECE_CHARS]
        if not long_lines:
            self.marks = self.starts
        else:
            inside = {a: _pieces(text, a, b) for a, b in long_lines}
            self.marks = [m for a in self.starts for m in (a, *inside.get(a, ()))]
        self.positions = [0, *accumulate(count_spans(text, self.marks, known))]
        # A line counted in pieces has only an estimated count: a span holding one is encoded.
        self.long_lines = [a for a, _ in long_lines]
        self.total = self.positions[-1]
        if self.marks is self.starts:
            self.line_positions = self.positions
        else:
            at_line = set(self.starts)
            self.line_positions = [p for m, p in zip(self.marks, self.positions, strict=True) if m in at_line]
        self._boundaries: dict[int, tuple[list[int], list[int]]] = {}
        self._parts: dict[tuple[int, int], int] = {}

    def counts_from(self, offset: int) -> list[int]:
        """The token counts of the marks' spans from offset (a mark) on, to be given as known
        to the index of a text that starts there."""
        mark = bisect_left(self.marks, offset)
        return [b - a for a, b in pairwise(self.positions[mark:])]

    def count(self, start: int, end: int) -> int:
        """count_tokens(text[start:end]), from the line counts where they add up to it.

        The whole lines in the span count what their lines count one by one, when no line
        break in the span can join two pre-tokens (see :mod:`._counting`); then only the part
        lines at either end are encoded. Otherwise the span is encoded whole.
        """
        starts = self.starts
        first = bisect_left(starts, start)  # the first line start in the span
        last = bisect_right(starts, end, first) - 1  # the last
        if last - first < 1:  # not one whole line
            if first > last or starts[first] in (start, end):  # inside one line
                return self._part_line(start, end)
            return count_tokens(self.text[start:end])
        long_lines = self.long_lines
        long_line = bisect_left(long_lines, starts[first])
        if (long_line < len(long_lines) and long_lines[long_line] < starts[last]) or not lines_add_up(
            self.text, start, end
        ):
            return count_tokens(self.text[start:end])
        head = self._part_line(start, starts[first])
        tail = self._part_line(starts[last], end)
        return head + self.line_positions[last] - self.line_positions[first] + tail

    def _part_line(self, start: int, end: int) -> int:
        """count_tokens(text[start:end]), kept for the next chunk: an overlap that begins inside
        a line is counted for the overlap and again as the head of the next chunk."""
        if start == end:
            return 0
        found = self._parts.get((start, end))
        if found is None:
            if len(self._parts) >= 8:  # cuts move forward; old parts are not needed again
                self._parts.clear()
            found = self._parts[start, end] = count_tokens(self.text[start:end])
        return found

    def position(self, offset: int) -> int:
        """The token position of a character offset (a cut point at or before it)."""
        mark = bisect_right(self.marks, offset) - 1
        if mark >= len(self.marks) - 1:
            return self.total
        if offset == self.marks[mark]:
            return self.positions[mark]
        chars, counts = self._boundaries_of(mark)
        return self.positions[mark] + counts[bisect_right(chars, offset - self.marks[mark]) - 1]

    def cut(self, position: int, *, after: bool = False) -> int:
        """The character offset of the last cut point at or before a token position (with
        after: the first one at or after it). Cut points are line starts and token ends."""
        mark = bisect_right(self.positions, position) - 1
        if mark >= len(self.marks) - 1:
            return len(self.text)
        within = position - self.positions[mark]
        if within == 0:
            return self.marks[mark]
        chars, counts = self._boundaries_of(mark)
        found = bisect_left(counts, within) if after else bisect_right(counts, within) - 1
        return self.marks[mark] + chars[found]

    def line_start(self, position: int, *, after: bool = False) -> tuple[int, int]:
        """The last line start at or before a token position (with after: the first one at or
        after it), as (character offset, token position)."""
        if after:
            line = bisect_left(self.line_positions, position)
        else:
            line = bisect_right(self.line_positions, position) - 1
        return self.starts[line], self.line_positions[line]

    def _boundaries_of(self, mark: int) -> tuple[list[int], list[int]]:
        found = self._boundaries.get(mark)
        if found is None:
            if len(self._boundaries) >= 4:  # cuts move forward; old lines are not needed again
                self._boundaries.clear()
            found = token_boundaries(self.text[self.marks[mark] : self.marks[mark + 1]])
            self._boundaries[mark] = found
        return found


def _fill(index: _TokenIndex, start: int, floor: int, size: int) -> tuple[int, int] | None:
    """Choose where the chunk that begins at start ends: (end offset, its exact token count).

    The end lies after floor (the previous chunk's end), so every chunk brings new text.
    Returns None when not even one character after floor fits.
    """
    text = index.text
    begin = index.position(start)
    fill_at_least = size - size // _SNAP_DIVISOR
    budget = size
    best: tuple[int, int] | None = None
    may_grow = True
    for _ in range(_MAX_TRIES):
        reach = begin + budget
        if reach >= index.total:
            end = len(text)
        else:
            line_start, line_position = index.line_start(reach)
            if line_start > floor and line_position - begin >= fill_at_least:
                end = line_start
            else:
                end = index.cut(reach)
        if end <= floor or (best is not None and end <= best[0]):
            break
        tokens = index.count(start, end)
        if tokens > size:  # the estimate was short; aim lower, and never grow again
            budget -= tokens - size
            may_grow = False
            if budget <= 0:
                break
            continue
        best = (end, tokens)
        if not may_grow or tokens >= fill_at_least or end == len(text):
            return best
        # The estimate was long (runs of blank lines count less together than apart):
        # reach further, in proportion.
        budget = budget * size // tokens
    return best or _fill_by_characters(text, start, floor, size)


def _fill_by_characters(text: str, start: int, floor: int, size: int) -> tuple[int, int] | None:
    """The furthest end after floor whose text counts at most size tokens, found by search.

    Only reached when token positions mislead (boundaries inside characters, or counts that
    change a lot when a line is cut). Steps double until the text no longer fits, then halve,
    so it costs a few encodes of about one chunk.
    """
    fits = floor + 1
    tokens = count_tokens(text[start:fits])
    if tokens > size:
        return None
    best = (fits, tokens)
    step = 1
    while fits < len(text):  # gallop: find an end that does not fit
        probe = min(fits + step, len(text))
        tokens = count_tokens(text[start:probe])
        if tokens > size:
            break
        best, fits, step = (probe, tokens), probe, step * 2
    else:
        return best
    low, high = fits + 1, probe - 1
    while low <= high:  # bisect between the last end that fits and the first that does not
        middle = (low + high) // 2
        tokens = count_tokens(text[start:middle])
        if tokens <= size:
            best, low = (middle, tokens), middle + 1
        else:
            high = middle - 1
    return best


def _repeat_start(index: _TokenIndex, start: int, end: int, overlap: int) -> int:
    """Where the next chunk starts: at most overlap tokens before end, and after start."""
    if overlap == 0:
        return end
    finish = index.position(end)
    near = overlap // _SNAP_DIVISOR
    budget = overlap
    while budget > 0:
        aim = max(finish - budget, 0)
        line_start, line_position = index.line_start(aim, after=True)
        if line_start < end and line_position - aim <= near:
            begin = line_start
        else:
            begin = index.cut(aim, after=True)
        if begin <= start:  # the whole previous chunk is within reach; repeat less of it
            begin = index.cut(index.position(start) + 1, after=True)
        if begin >= end:
            return end
        tokens = index.count(begin, end)
        if tokens <= overlap:
            return begin
        budget -= tokens - overlap
    return end


def _character_too_big(text: str, offset: int, size: int, base: int = 0) -> NoReturn:
    character = text[offset]
    raise ConfigError(
        f"character U+{ord(character):04X} at offset {base + offset:,} takes "
        f"{count_tokens(character)} tokens, more than size={size} tokens; raise size "
        f"(4 tokens hold any character)."
    )


def corpus_digest(chunks: Sequence[str]) -> str:
    """A fingerprint of a list of chunks: the SHA-256 of their SHA-256s, in order.

    Recorded in each transcript's ``run.start``, so a turn can later be re-run against data
    proven to be the same.
    """
    whole = hashlib.sha256()
    for chunk in chunks:
        whole.update(hashlib.sha256(chunk.encode("utf-8", "surrogatepass")).digest())
    return whole.hexdigest()
