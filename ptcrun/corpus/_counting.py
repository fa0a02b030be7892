"""Count the tokens of a text's lines on every core, and know when line counts add up exactly.

The token chunker (:mod:`._chunking`) counts every line of the corpus on its own, to estimate
where to cut, and then needs the exact count of each chunk. Encoding is nearly all its time, and
tiktoken's encoder lets go of the GIL while it works, so the lines are counted in parts of the
text on a pool of threads, one per core left idle by other work (:func:`count_spans`).

A chunk's exact count used to be a second encode of its text, which doubled the chunker's work.
Most of the time it is not needed: a chunk made of whole lines has exactly the tokens of its
lines, counted one by one, whenever every line break inside it is followed by spaces or tabs and
then a character that is not whitespace (:func:`lines_add_up` looks for the line breaks that are
not). Why, for cl100k's pre-tokenizer::

    '(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+
    |\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s

tiktoken splits a text into the matches of this pattern, one after the other, and encodes each
match on its own; so when the matches of a + b are those of a followed by those of b, the count
of a + b is the sum of their counts. Let a end with ``\\n`` and b start with ``[ \\t]*`` and a
non-whitespace character X. Only the last four alternatives and ``[\\r\\n]*+`` can take a ``\\n``.
In a + b: ``[\\r\\n]*+`` stops at b's first character (not ``\\r`` or ``\\n``); ``\\s++$`` runs
to X, is not at the end, and cannot back off; ``\\s*[\\r\\n]`` ends at the last ``\\r`` or
``\\n`` of its run of whitespace, which is a's final ``\\n`` (the spaces and tabs after it hold
none); and ``\\s+(?!\\S)`` and ``\\s`` are never tried on a run holding a ``\\n``, since
``\\s*[\\r\\n]`` matches first. So a match ends at the end of a, whichever took the ``\\n``. In a
alone, each alternative reads what it read in a + b, up to a's end, where it now meets the end
of the text instead of b's first character: ``[\\r\\n]*+`` still stops there, ``\\s*[\\r\\n]``
still ends there, and ``\\s++$`` now matches exactly the run ``\\s*[\\r\\n]`` matched (it is tried
first, so the alternative differs, not the match); no other alternative reads past a ``\\n``. b
alone is scanned as in a + b, since no alternative looks behind. Hence the counts add.
``tests/corpus/test_counting.py`` checks the rule against the pattern exhaustively on a small
alphabet, and against tiktoken's counts.

Python's ``\\S`` (not ``str.isspace``) is used for X: every character Unicode calls White_Space
is a space to Python too, so a character Python does not call a space is not one to the encoder.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice, pairwise

from ._tokens import get_encoding

__all__ = ["count_spans", "lines_add_up"]

# A line break after which the line counts of a text do not add up to its count: one not
# followed by spaces or tabs and then a non-whitespace character (blank lines, lines of only
# spaces, lines that begin with other whitespace, the end of the text).
_BREAKS_A_MATCH = re.compile(r"\n(?![ \t]*\S)")

#: Below this many characters the lines are counted in the calling thread: handing them to
#: the pool would cost more than it saves.
_PARALLEL_CHARS = 1 << 20
#: A text is counted in parts of about this many characters, several per thread, so a thread
#: slowed by other work on the machine does not hold the rest up.
_PART_CHARS = 1 << 19

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_decided = False  # whether _pool was settled: None then means "count in the calling thread"


def lines_add_up(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] has exactly as many tokens as its lines counted one by one
    (the part lines at its ends included): whether every line break in it, but one that ends
    it, is followed in it by spaces or tabs and then a non-whitespace character.

    Searched, not indexed: a list of such line breaks would take memory in proportion to the
    text, which for a corpus of blank lines is as much as the text's line index.
    """
    found = _BREAKS_A_MATCH.search(text, start, end)  # sees text[start:end] as the whole text
    return found is None or found.end() == end


def count_spans(text: str, marks: Sequence[int], known: Sequence[int] = ()) -> Iterable[int]:
    """The token count of each text[marks[i]:marks[i + 1]], counted on its own.

    ``known`` holds counts already made for the first spans (the same spans, counted before);
    only the rest are encoded. A long text is counted in parts on a pool of threads, one per
    idle core, when more than one was idle at first use; the counts are the same as counting the
    spans one by one.
    """
    first = len(known)
    todo = len(text) - marks[first] if first < len(marks) else 0
    pool = _shared_pool() if todo >= _PARALLEL_CHARS else None
    if pool is None:  # counted as they are read, so the counts are never held as a list
        return chain(known, _count_range(text, marks, first, len(marks) - 1))
    # Cut the spans to count into parts of about _PART_CHARS characters, at marks.
    bounds = [first]
    for mark in range(first + 1, len(marks) - 1):
        if marks[mark] - marks[bounds[-1]] >= _PART_CHARS:
            bounds.append(mark)
    bounds.append(len(marks) - 1)
    parts = pool.map(lambda part: list(_count_range(text, marks, *part)), pairwise(bounds))
    counts = list(known)
    for part in parts:
        counts += part
    return counts


def _count_range(text: str, marks: Sequence[int], first: int, last: int) -> Iterator[int]:
    """The counts of the spans from marks[first] to marks[last]."""
    encode = get_encoding().encode_ordinary
    return (len(encode(text[a:b])) for a, b in pairwise(islice(marks, first, last + 1)))


def _free_cores() -> int:
    """The cores this process may run on that the load average shows idle, at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return max(cores, 1)
    return max(min(cores, int(cores - load + 0.5)), 1)


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here, so decide again."""
    global _pool, _pool_decided, _lock
    _pool, _pool_decided, _lock = None, False, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _shared_pool() -> ThreadPoolExecutor | None:
    """The process's pool, a thread per idle core, settled on first use; None with one or none.

    Two threads on a machine whose cores are busy with other work were slower than one (on a
    shared machine of 2 cores, each ran 20-30% slower than one alone, and the other work took
    the rest). So the pool takes only the cores idle when it is first needed, and is not made
    when that is one or none.
    """
    global _pool, _pool_decided
    if not _pool_decided:
        with _lock:
            if not _pool_decided:
                threads = _free_cores()
                if threads > 1:
                    _pool = ThreadPoolExecutor(threads, thread_name_prefix="ptcrun-count")
                _pool_decided = True
    return _pool
