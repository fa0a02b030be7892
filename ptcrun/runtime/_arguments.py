"""Check what ``Runtime.run`` is given, before anything runs or is written.

A run that starts on a bad argument fails somewhere deep (a ``TypeError`` from ``len``, a
``UnicodeEncodeError`` at the sandbox's pipe) and leaves a transcript with only ``run.start``.
These checks turn each such argument into a :class:`~ptcrun.errors.ConfigError` that names the
argument as the caller wrote it (``data``, ``data[3]``, ``data['logs']``, ``goal``,
``schema``) and the fix. They read each chunk once, cheaply: an ASCII chunk is known to hold no
surrogate without a scan.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import errors
from ..corpus._store import StoredChunks

__all__ = ["check_data", "check_goal", "check_observers", "check_schema", "check_transcript_dir"]

_SURROGATE = re.compile("[\ud800-\udfff]")

_SURROGATE_FIX = (
    "decode the source with errors='replace' rather than 'surrogateescape', or clean the text "
    "with text.encode('utf-8', 'replace').decode('utf-8')."
)


def check_goal(goal: object) -> None:
    """Refuse a goal that is not a non-empty str, or that no provider could send (UTF-8).

    Raises:
        ConfigError: naming ``goal`` and the fix.
    """
    if not isinstance(goal, str) or not goal.strip():
        shown = "an empty str" if isinstance(goal, str) else type(goal).__name__
        raise errors.ConfigError(
            f"goal must be a non-empty str; got {shown}. Pass a sentence that says what the "
            f"planner should find out."
        )
    if (found := _SURROGATE.search(goal)) is not None:
        raise errors.ConfigError(
            f"goal holds a lone surrogate (U+{ord(found.group()):04X}) at offset {found.start():,}, "
            f"which cannot be encoded as UTF-8 to reach the model; {_SURROGATE_FIX}"
        )


def check_schema(schema: Any) -> Any:
    """Refuse a schema given as text; return it unchanged otherwise.

    ``AnswerCheck.build`` checks the rest: a dict must be a valid JSON Schema, a type one a
    JSON answer could match.

    Raises:
        ConfigError: naming ``schema`` and the fix.
    """
    if isinstance(schema, (str, bytes)):
        raise errors.ConfigError(
            f"schema is a {type(schema).__name__}; pass a JSON Schema as a dict (json.loads it "
            f"first), or a Python type such as dict[str, int]."
        )
    return schema


def check_data(data: object) -> None:
    """Refuse data that is not chunk strings, or that holds no text at all.

    An empty corpus is refused rather than run: the planner would be billed for turns with
    nothing to read, as the command line refuses an empty corpus file.

    Raises:
        ConfigError: naming the argument (``data``, ``data[3]``, ``data['logs']``) and the fix.
    """
    if isinstance(data, Mapping):
        for name in data:
            if not isinstance(name, str):
                raise errors.ConfigError(
                    f"data names must be str; got {name!r} ({type(name).__name__}). Name each "
                    f"dataset with a str key, e.g. {{'logs': chunks}}."
                )
        named = [(f"data[{name!r}]", chunks) for name, chunks in data.items()]
    else:
        named = [("data", data)]
    texts = sum(_check_chunks(what, chunks) for what, chunks in named)
    if not texts:
        holds = "no datasets" if isinstance(data, Mapping) and not data else "no text"
        raise errors.ConfigError(
            f"data holds {holds}, so the planner would have nothing to read and its turns would "
            f"be billed for nothing; pass at least one chunk of text (an empty text gives no "
            f"chunks: check the text you chunked)."
        )


def _check_chunks(what: str, chunks: object) -> int:
    """Check one sequence of chunks; return how many hold text."""
    if chunks is None:
        raise errors.ConfigError(
            f"{what} is None; pass the corpus as a list of chunk strings, e.g. "
            f"ptcrun.chunk_by_tokens(text, 4000)."
        )
    if isinstance(chunks, (str, bytes)):
        raise errors.ConfigError(
            f"{what} is one {type(chunks).__name__}; pass a list of chunk strings "
            f"(e.g. ptcrun.chunk_by_tokens(text, 4000))."
        )
    if not isinstance(chunks, Sequence):
        kind = type(chunks).__name__
        raise errors.ConfigError(
            f"{what} is a {kind}, not a list: a run counts, indexes and slices its chunks, "
            f"which a {kind} cannot do. Pass list(...) of it."
        )
    if isinstance(chunks, StoredChunks):
        # Checked as it was written (str, UTF-8, no lone surrogate); reading it all again here
        # would cost a pass over a corpus that may be larger than memory.
        return int(chunks.chars > 0)
    texts = 0
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, str):
            kind = type(chunk).__name__
            if isinstance(chunk, (bytes, bytearray)):
                fix = "decode it to str first, e.g. chunk.decode('utf-8')"
            else:
                fix = "every chunk must be a str"
            raise errors.ConfigError(f"{what}[{index}] is {kind}; {fix}.")
        if not chunk.isascii() and (found := _SURROGATE.search(chunk)) is not None:
            raise errors.ConfigError(
                f"{what}[{index}] holds a lone surrogate (U+{ord(found.group()):04X}) at offset "
                f"{found.start():,}, which cannot be encoded as UTF-8 to reach the sandbox; "
                f"{_SURROGATE_FIX}"
            )
        texts += bool(chunk)
    return texts


def check_transcript_dir(transcript_dir: object) -> Path | None:
    """Return ``transcript_dir`` as a Path (None stays None).

    Whether the folder can hold a transcript is found when a run makes its folder in it.

    Raises:
        ConfigError: it is neither a path nor None.
    """
    if transcript_dir is None:
        return None
    if not isinstance(transcript_dir, (str, os.PathLike)):
        raise errors.ConfigError(
            f"transcript_dir must be a folder path (str or os.PathLike) or None; got "
            f"{type(transcript_dir).__name__}. Pass e.g. transcript_dir='runs', or None to write "
            f"no transcript."
        )
    return Path(transcript_dir)


def check_observers(observers: object) -> tuple[Callable[[dict[str, Any]], None], ...]:
    """Return the observers as a tuple.

    Raises:
        ConfigError: ``observers`` is one function rather than a list, or holds something
            that is not callable.
    """
    if callable(observers) or not isinstance(observers, Iterable) or isinstance(observers, (str, bytes)):
        raise errors.ConfigError(
            f"observers must be a list of functions; got one {type(observers).__name__}. "
            f"Pass observers=[...]."
        )
    given = tuple(observers)
    for i, observer in enumerate(given):
        if not callable(observer):
            raise errors.ConfigError(
                f"observers[{i}] is {type(observer).__name__}, not a function; pass functions, "
                f"each called with every event (a dict)."
            )
    return given
