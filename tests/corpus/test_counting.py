"""Cutting by tokens counts each line once, on every core, and counts a chunk again only when
its lines' counts may not add up to its count: the chunks and their counts are exactly those of
counting every chunk on its own, in one thread."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import signal
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from ptcrun import build_store
from ptcrun.corpus import _chunking, _counting
from ptcrun.corpus._chunking import _TokenIndex, chunk_by_tokens
from ptcrun.corpus._stream import stream_chunks
from ptcrun.corpus._tokens import count_tokens, get_encoding
from tests.corpus.test_chunking import sizes, texts


@pytest.fixture(autouse=True, scope="module")
def _loaded_encoding():
    get_encoding()


def varied_text(seed: int, lines: int) -> str:
    """A corpus of every kind of line that decides where pre-tokens end: log lines, lines that
    start with spaces or tabs, blank and whitespace-only lines, lines that start with other
    whitespace (no-break, ideographic, form feed, NEL, line separator), unicode, contractions,
    punctuation before line breaks, bare carriage returns, lines longer than a piece, with
    \\n or \\r\\n endings and with or without a final line break."""
    rng = random.Random(seed)
    kinds = [
        lambda: (
            f"2024-03-0{rng.randrange(1, 10)}T10:{rng.randrange(60):02d} INFO [w-{rng.randrange(16)}] "
            f"id={rng.getrandbits(40):x} took={rng.random() * 100:.2f}ms"
        ),
        lambda: f'  File "app/h{rng.randrange(9)}.py", line {rng.randrange(400)}, in run',
        lambda: f"\tat com.example.Handler.run(Handler.java:{rng.randrange(99)})",
        lambda: "",
        lambda: rng.choice([" ", "\t", " \t ", "   "]),
        lambda: "naïve café — 東京 🚀 ok e\u0301\u0301 ٣٤٥ ۱۲",
        lambda: rng.choice(["\xa0indented", "\u3000全角", "\x0cfeed", "\x85next", "\u2028sep", "\u2003em"]),
        lambda: rng.choice(["}", "});", "...", "'ll be", "'s fine", "12345678", "!!", "<|endoftext|>"]),
        lambda: "x" * rng.choice([40_000, 70_001]),
        lambda: " ".join(
            rng.choice(["word", "ok.", "a1", "Überall", "id=42"]) for _ in range(rng.randrange(5000, 15000))
        ),
        lambda: "a\rb" + " \r" * rng.randrange(3),
    ]
    weights = [40, 8, 4, 8, 4, 5, 5, 6, 0.06, 0.12, 2]
    out = []
    for _ in range(lines):
        body = rng.choices(kinds, weights)[0]()
        out.append(body + rng.choice(["\n"] * 9 + ["\r\n"]))
    text = "".join(out)
    return text if rng.random() < 0.5 else text + "tail without a break"


def digest(chunks) -> tuple[int, str]:
    whole = hashlib.sha256()
    count = 0
    for chunk in chunks:
        whole.update(repr((str(chunk), sorted(chunk.__dict__.items()))).encode("utf-8", "surrogatepass"))
        count += 1
    return count, whole.hexdigest()[:16]


# Each chunk's text and fields, as cut before lines were counted on several threads and chunks
# counted from their lines (every chunk and overlap encoded again, in one thread): (seed, lines,
# size, overlap) -> (chunks, digest).
BEFORE = {
    (1, 2000, 4000, 0): (29, "17ecea8033f7de75"),
    (1, 2000, 4000, 200): (30, "e244df9b6a69386d"),
    (2, 2000, 500, 50): (369, "55e3fa6e818be93c"),
    (3, 2000, 60, 15): (2673, "d92a60b95a8d3b32"),
    (4, 300, 9, 4): (2086, "c821338d883d2a02"),
}

# Count on a pool of two threads, whatever the machine's load, even in small windows, in many
# parts; a process forked meanwhile makes its own.
TWO_THREADS = ThreadPoolExecutor(2)
PARALLEL = [
    mock.patch.object(_counting, "_PARALLEL_CHARS", 20_000),
    mock.patch.object(_counting, "_PART_CHARS", 3_000),
    mock.patch.object(_counting, "_pool", TWO_THREADS),
    mock.patch.object(_counting, "_pool_decided", True),
    mock.patch.object(_counting, "_free_cores", return_value=2),
]


@pytest.fixture
def on_two_threads():
    with contextlib.ExitStack() as stack:
        for patch in PARALLEL:
            stack.enter_context(patch)
        yield


def recount_every_chunk(index: _TokenIndex, start: int, end: int) -> int:
    return count_tokens(index.text[start:end])


@pytest.mark.parametrize(("seed", "lines", "size", "overlap"), list(BEFORE))
def test_chunks_and_counts_are_those_made_before(tmp_path, on_two_threads, seed, lines, size, overlap):
    text = varied_text(seed, lines)
    path = tmp_path / "corpus.log"
    path.write_bytes(text.encode())
    whole = digest(chunk_by_tokens(text, size, overlap))
    streamed = digest(stream_chunks(path, "tokens", size, overlap, window_chars=50_000, guard_chars=15_000))
    stored = digest(build_store(path, tmp_path / "c.store", chunk_tokens=size, overlap=overlap))
    assert whole == streamed == stored == BEFORE[seed, lines, size, overlap]


def test_chunks_of_a_text_with_lone_surrogates_are_those_made_before(on_two_threads):
    text = varied_text(5, 600)
    text = text[:1000] + "\ud800" + text[1000:5000] + "\udc80\n\ud83d" + text[5000:]
    assert digest(chunk_by_tokens(text, 300, 40)) == (154, "1d0653295d71bef0")


@given(texts, sizes(low=4), st.sampled_from([16, 1 << 15]))
def test_chunks_are_those_of_counting_every_chunk_again(text, size_overlap, piece_chars):
    with mock.patch.object(_chunking, "_PIECE_CHARS", piece_chars):
        with contextlib.ExitStack() as stack:
            for patch in [*PARALLEL, mock.patch.object(_counting, "_PARALLEL_CHARS", 1)]:
                stack.enter_context(patch)
            fast = chunk_by_tokens(text, *size_overlap)
        with mock.patch.object(_TokenIndex, "count", recount_every_chunk):
            slow = chunk_by_tokens(text, *size_overlap)
    assert [(str(c), c.__dict__) for c in fast] == [(str(c), c.__dict__) for c in slow]


@given(texts, st.lists(st.integers(0, 10_000), min_size=2, max_size=2))
def test_a_span_counts_what_its_text_counts(text, ends):
    start, end = sorted(min(e, len(text)) for e in ends)
    with mock.patch.object(_chunking, "_PIECE_CHARS", 16):
        index = _TokenIndex(text)
    assert index.count(start, end) == count_tokens(text[start:end])


def test_lines_counted_on_the_pool_or_given_are_counted_as_one_by_one(on_two_threads):
    text = varied_text(6, 2000)
    marks = _chunking._line_starts(text)
    one_by_one = [count_tokens(text[a:b]) for a, b in itertools.pairwise(marks)]
    assert list(_counting.count_spans(text, marks)) == one_by_one
    assert list(_counting.count_spans(text, marks, one_by_one[:700])) == one_by_one
    assert list(_counting.count_spans(text, marks, one_by_one)) == one_by_one
    with mock.patch.object(_counting, "_pool", None):  # in the calling thread
        assert list(_counting.count_spans(text, marks, one_by_one[:700])) == one_by_one


# -- the rule: after a line break followed by [ \t]* and a non-space, counts add up ----------

PATTERN = regex.compile(get_encoding()._pat_str)
BEFORE_BREAK = ["a", "1", ".", "'", " ", "\t", "\r", "\n", "\xa0", "é", "\u2028", "\x0c"]
LEADING = ["", " ", "\t", "  ", "\t "]
FIRST_WORD = ["a", "s", "1", ".", "'", "é", "٣", "\ufffd", "🚀"]
AFTER = ["", "a", " ", "\n", "'", "1", "ll"]


def pieces(text: str) -> list[str]:
    return PATTERN.findall(text)


def test_a_line_break_before_spaces_and_a_word_never_joins_two_pre_tokens():
    # Exhaustive over short texts built from every class of character the pattern tells apart.
    heads = ["".join(p) + "\n" for n in range(4) for p in itertools.product(BEFORE_BREAK, repeat=n)]
    tails = [w + x + t for w in LEADING for x in FIRST_WORD for t in AFTER]
    for head in heads:
        head_pieces = pieces(head)
        for tail in tails:
            assert pieces(head + tail) == head_pieces + pieces(tail), (head, tail)
            assert _counting.lines_add_up(head + tail, len(head) - 1, len(head + tail))


@pytest.mark.parametrize(
    ("head", "tail", "joined"),
    [
        ("a\n", "\nb", "\n\n"),
        (".\n", "\rb", ".\n\r"),
        ("a \n", " \nb", " \n \n"),
        ("}\n", "\n", "}\n\n"),
        ("a\n", "  ", "\n  "),
        ("a\n", "\xa0b", None),  # adds up, but the rule does not look past spaces and tabs
    ],
)
def test_line_breaks_outside_the_rule_count_as_joining_as_they_can_join_pre_tokens(head, tail, joined):
    text = head + tail
    assert not _counting.lines_add_up(text, len(head) - 1, len(text))
    assert (joined in pieces(text)) == (pieces(text) != pieces(head) + pieces(tail)) == (joined is not None)


def test_every_unicode_space_is_a_space_to_python():
    # The rule looks for a non-space with Python's \S; the encoder's \s is Unicode White_Space.
    white_space = [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
    assert all(chr(c).isspace() for c in white_space)
    spaces = regex.compile(r"\s")
    assert all(chr(c).isspace() for c in range(sys.maxunicode + 1) if spaces.fullmatch(chr(c)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_process_forked_after_counting_on_the_pool_counts_on_a_pool_of_its_own(on_two_threads):
    # A fork copies the pool but not its threads: work handed to the copy would never run.
    text = varied_text(7, 400)
    marks = _chunking._line_starts(text)
    expected = list(_counting.count_spans(text, marks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: exit at once, whatever happens
        try:
            counted = list(_counting.count_spans(text, marks))
            os._exit(0 if counted == expected and _counting._pool is not TWO_THREADS else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if done == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done != (0, 0), "the forked process never finished counting"
    assert os.waitstatus_to_exitcode(done[1]) == 0


@pytest.mark.parametrize(("cores", "load", "threads"), [(2, 0.1, 2), (2, 0.8, 1), (2, 3.5, 1), (8, 2.2, 6), (8, 0.0, 8)])
def test_the_pool_takes_the_cores_the_load_leaves_idle_and_is_not_made_for_one(cores, load, threads):
    with (
        mock.patch.object(os, "sched_getaffinity", return_value=set(range(cores)), create=True),
        mock.patch.object(os, "getloadavg", return_value=(load, load, load)),
        mock.patch.object(_counting, "_pool", None),
        mock.patch.object(_counting, "_pool_decided", False),
    ):
        assert _counting._free_cores() == threads
        pool = _counting._shared_pool()
        try:
            assert (pool is None) == (threads == 1)
            assert pool is None or pool._max_workers == threads
        finally:
            if pool is not None:
                pool.shutdown()


@given(texts, st.lists(st.integers(0, 10_000), min_size=2, max_size=2))
def test_a_span_whose_lines_add_up_counts_as_its_lines(text, ends):
    start, end = sorted(min(e, len(text)) for e in ends)
    if not _counting.lines_add_up(text, start, end):
        return
    *whole, rest = text[start:end].split("\n")  # lines end at \n only, never at \r or \u2028
    lines = [line + "\n" for line in whole] + [rest]
    assert sum(map(count_tokens, lines)) == count_tokens(text[start:end])
