"""The wire schema: every frame crosses unchanged, and every malformed frame is one ProtocolError."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptcrun.sandbox import _protocol
from ptcrun.sandbox._protocol import CHILD_FRAMES, HOST_FRAMES, ProtocolError

SAMPLES: list[_protocol.Frame] = [
    _protocol.Init(
        limits={"max_concurrency": 4, "pmap_timeout": 1e9},
        tools=["lookup", "worker"],
        data_kind="mapping",
        language_layer=True,
        os_layers=False,
        strict=False,
    ),
    _protocol.Data("logs", 2, last=False),
    _protocol.Data(None, 0, last=True),
    _protocol.ChunksQuery(11, "logs", 0, 2),
    _protocol.ChunksQuery(12, None, 5, 6, release=[0, 3]),
    _protocol.Exec(3, "print(1)"),
    _protocol.Reply(7, True, {"rows": [1, 2.5, None, "x"]}),
    _protocol.Reply(8, False, None, {"type": "ToolError", "message": "boom", "fields": {"tool": "t"}}),
    _protocol.Shutdown(),
    _protocol.Ready({"seccomp": True, "landlock": None}),
    _protocol.Ready(None),
    _protocol.Call(1, "lookup", ["ann"], {"limit": 3}, pmap=2, item=0),
    _protocol.Call(2, "lookup", [], {}),
    _protocol.Cancel([4, 5]),
    _protocol.BudgetQuery(9),
    _protocol.EstimateQuery(10, ["a chunk", "another"], "Summarise.", {"type": "string"}, 300),
    _protocol.Output("line\n", pmap=None, item=None),
    _protocol.PmapStart(pmap=1, total=3, concurrency=2, parent_pmap=None, parent_item=None),
    _protocol.PmapEnd(1, done=2, failed=1, timed_out=False),
    _protocol.ItemStart(1, 0, 0),
    _protocol.ItemEnd(1, 0, 0, False, {"type": "ValueError", "message": "bad"}),
    _protocol.ItemEnd(1, 1, 0, True, None),
    _protocol.Result(4, "done", answer={"n": 1}, cpu_seconds=0.25, threads_peak=3),
    _protocol.Result(None, "error", error={"type": "NameError", "message": "x"}, restart=True,
                     restart_reason="stale items", candidate=[1], candidate_set=True),
]


# Frames that carry bytes after their JSON (the corpus text the child asked for).
BYTE_SAMPLES: list[_protocol.Frame] = [
    _protocol.Chunks(11, 0, [1, 2], payload="aü".encode()),
    _protocol.Chunks(12, 5, [0], slot=3),
]


@pytest.mark.parametrize("frame", BYTE_SAMPLES, ids=lambda frame: f"{frame.OP}-{len(frame.payload)}")
def test_frames_with_bytes_cross_unchanged(frame):
    data = _protocol.encode(frame)
    (length,) = struct.unpack(">I", data[:4])
    assert length & 0x8000_0000 and length & 0x7FFF_FFFF == len(data) - 4
    assert _protocol.decode(data[4:], HOST_FRAMES, carries_bytes=True) == frame
    assert _protocol.FrameBuffer(1 << 20, HOST_FRAMES).feed(data) == [frame]


def test_bytes_are_refused_where_a_frame_carries_none_and_wanted_where_it_does():
    query = _protocol.encode(_protocol.ChunksQuery(1, None, 0, 1))
    flagged = struct.pack(">I", (len(query) - 4 + 4) | 0x8000_0000) + struct.pack(">I", len(query) - 4) + query[4:]
    with pytest.raises(ProtocolError, match="has bytes after its JSON"):
        _protocol.FrameBuffer(1 << 20, CHILD_FRAMES).feed(flagged)
    chunks = _protocol.encode(_protocol.Chunks(1, 0, [1], payload=b"a"))
    body = chunks[8:].split(b"}", 1)[0] + b"}"
    with pytest.raises(ProtocolError, match="lacks bytes after its JSON"):
        _protocol.decode(body, HOST_FRAMES)
    with pytest.raises(ProtocolError, match="claims more JSON than it holds"):
        _protocol.decode(struct.pack(">I", 999) + b"{}", HOST_FRAMES, carries_bytes=True)


def body_of(message: object) -> bytes:
    return json.dumps(message).encode()


def child_frame(**fields: object) -> bytes:
    """A well-formed ``call`` frame from the child, with ``fields`` changed."""
    message = {"op": "call", "id": 1, "tool": "t", "args": [], "kwargs": {}, "pmap": None, "item": None}
    message.update(fields)
    return body_of({k: v for k, v in message.items() if v is not ...})


def test_every_op_has_one_class_and_one_direction():
    assert set(HOST_FRAMES).isdisjoint(CHILD_FRAMES)
    every = {type(frame) for frame in [*SAMPLES, *BYTE_SAMPLES]}
    assert every == set(HOST_FRAMES.values()) | set(CHILD_FRAMES.values())


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda frame: frame.OP)
def test_every_frame_crosses_unchanged(frame):
    accept = HOST_FRAMES if frame.OP in HOST_FRAMES else CHILD_FRAMES
    data = _protocol.encode(frame)
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert json.loads(data[4:])["op"] == frame.OP
    assert _protocol.decode(data[4:], accept) == frame


def test_frames_are_frozen():
    frame = _protocol.Cancel([1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.ids = [2]  # type: ignore[misc]


def test_frame_buffer_joins_split_frames_and_splits_joined_ones():
    frames = [_protocol.ItemStart(1, i, 0) for i in range(3)]
    data = b"".join(_protocol.encode(frame) for frame in frames)
    buffer = _protocol.FrameBuffer(_protocol.MAX_CHILD_FRAME_BYTES, CHILD_FRAMES)
    got = buffer.feed(data[:5]) + buffer.feed(data[5:-3]) + buffer.feed(data[-3:])
    assert got == frames


def test_frame_buffer_refuses_a_frame_over_the_cap_before_reading_it():
    buffer = _protocol.FrameBuffer(100, CHILD_FRAMES)
    with pytest.raises(ProtocolError, match="exceeds the 100-byte cap"):
        buffer.feed(struct.pack(">I", 101))


def test_encode_refuses_what_json_cannot_carry():
    with pytest.raises(ValueError, match="not JSON compliant"):
        _protocol.encode(_protocol.Reply(1, True, float("nan")))
    with pytest.raises(TypeError):
        _protocol.encode(_protocol.Reply(1, True, object()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"op": "output", "text": NaN, "pmap": null, "item": null}', "not valid JSON"),
        (b'{"op": "result", "id": 1, "status": "ok", "cpu_seconds": Infinity}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (body_of(["op", "call"]), "not a JSON object"),
        (body_of({"tool": "t"}), "unexpected op None"),
        (body_of({"op": 5}), "unexpected op 5"),
        (body_of({"op": "launch"}), "unexpected op 'launch'"),
        (body_of({"op": "reply", "id": 1, "ok": True, "value": 1, "error": None}), "unexpected op 'reply'"),
        (child_frame(id=...), r"lacks fields \['id'\]"),
        (child_frame(extra=1), r"unknown fields \['extra'\]"),
        (child_frame(id=True), "bad 'id': bool"),
        (child_frame(id=1.0), "bad 'id': float"),
        (child_frame(tool=None), "bad 'tool': NoneType"),
        (child_frame(args={}), "bad 'args': dict"),
        (child_frame(kwargs=[]), "bad 'kwargs': list"),
        (child_frame(pmap="1"), "bad 'pmap': str"),
        (body_of({"op": "cancel", "ids": 5}), "bad 'ids': int"),
        (body_of({"op": "cancel", "ids": [1, "2"]}), "bad 'ids': list"),
        (body_of({"op": "cancel", "ids": [True]}), "bad 'ids': list"),
        (
            body_of({"op": "item.end", "pmap": 1, "item": 0, "slot": 0, "ok": 1, "error": None}),
            "bad 'ok': int",
        ),
    ],
)
def test_a_malformed_frame_from_the_child_is_one_protocol_error(body, message):
    with pytest.raises(ProtocolError, match=message):
        _protocol.decode(body, CHILD_FRAMES)


def test_a_result_with_an_unknown_status_is_refused():
    body = _protocol.encode(_protocol.Result(1, "ok"))[4:].replace(b'"status":"ok"', b'"status":"fine"')
    with pytest.raises(ProtocolError, match="bad 'status'"):
        _protocol.decode(body, CHILD_FRAMES)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(
    op=st.sampled_from(sorted(CHILD_FRAMES) + sorted(HOST_FRAMES) + ["event"]),
    fields=st.dictionaries(st.sampled_from(["id", "tool", "args", "kwargs", "pmap", "item", "ids", "text",
                                            "status", "error", "layers", "slot", "ok", "extra"]),
                           JSON_VALUES, max_size=8),
)
def test_decoding_anything_gives_a_checked_frame_or_a_protocol_error(op, fields):
    try:
        frame = _protocol.decode(body_of({"op": op, **fields}), CHILD_FRAMES)
    except ProtocolError:
        return
    assert _protocol.decode(_protocol.encode(frame)[4:], CHILD_FRAMES) == frame


def test_a_large_frame_arriving_in_pieces_is_gathered_whole_with_what_follows_it():
    big = _protocol.Chunks(1, 0, [3 << 20, 2], payload=b"a" * (3 << 20) + "é".encode())
    small = _protocol.Reply(2, True, "after")
    stream = _protocol.encode(big) + _protocol.encode(small) + _protocol.encode(small)
    for piece in (1, 4096, 1 << 20, 3_000_001):
        buffer = _protocol.FrameBuffer(_protocol.MAX_HOST_FRAME_BYTES, HOST_FRAMES)
        frames = []
        for at in range(0, len(stream), piece):
            frames += buffer.feed(stream[at : at + piece])
        assert frames == [big, small, small], piece


def test_a_reader_can_fill_a_large_frame_in_place():
    big = _protocol.Chunks(1, 0, [2 << 20], payload=b"b" * (2 << 20))
    data = _protocol.encode(big)
    buffer = _protocol.FrameBuffer(_protocol.MAX_HOST_FRAME_BYTES, HOST_FRAMES)
    assert buffer.into() is None
    assert buffer.feed(data[:1000]) == []
    frames = []
    at = 1000
    while (target := buffer.into()) is not None:
        count = min(len(target), 300_000)
        target[:count] = data[at : at + count]
        at += count
        frames += buffer.filled(count)
    assert frames == [big] and at == len(data)


def test_a_reused_buffer_gives_each_large_frame_whole_when_read_in_turn():
    frames = [_protocol.Chunks(i, 0, [2 << 20], payload=bytes([65 + i]) * (2 << 20)) for i in range(3)]
    stream = b"".join(_protocol.encode(f) for f in frames)
    buffer = _protocol.FrameBuffer(_protocol.MAX_HOST_FRAME_BYTES, HOST_FRAMES, reuse=True)
    seen = []
    for at in range(0, len(stream), 700_000):
        for frame in buffer.feed(stream[at : at + 700_000]):
            seen.append((frame.id, bytes(frame.payload)))  # read before the next call, as required
    assert seen == [(f.id, f.payload) for f in frames]
