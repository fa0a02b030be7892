"""``data`` in the sandbox: read from the host on demand, the same for a store and a list, and
closed to a program that tries to write it, reach the file behind it or make the host misread."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import trio

from ptcrun import errors, write_store
from ptcrun.sandbox import Sandbox, _protocol
from ptcrun.sandbox.host import _channel, _corpus
from ptcrun.sandbox.host._corpus import CorpusServer

from .conftest import limits

CHUNKS = [f"chunk {i}: " + "é東🚀x"[i % 4] * (i % 5) for i in range(40)]
CHUNKS[3] = ""
CHUNKS[7] = "line one\nline two\r\n"
CHUNKS[11] = CHUNKS[12]  # a repeated chunk: count() and index() must find both


def through_the_host(monkeypatch):
    """Make the host serve a store's text, as it does when the corpus is not one whole store."""
    monkeypatch.setattr(_corpus.CorpusServer, "grant_store", lambda self: None)


@pytest.fixture(params=["store", "list", "store through the host", "store through the pipe"])
def corpus(request, tmp_path, monkeypatch):
    """The same chunks, as a store on disk that the child reads itself, and as a list in memory,
    whose text the host sends in shared memory or (where the OS has none) down the pipe:
    programs must not tell."""
    if request.param == "list":
        return list(CHUNKS)
    if request.param != "store":
        through_the_host(monkeypatch)
    if request.param == "store through the pipe":
        monkeypatch.setattr(_corpus.SharedText, "create", classmethod(lambda cls: None))
    return write_store(tmp_path / "c.store", CHUNKS)


async def run(data, program, **options):
    async with Sandbox(data=data, limits=limits(**options.pop("limits", {})), **options) as sandbox:
        return await sandbox.execute(textwrap.dedent(program))


OPERATIONS = """
ops = {}
ops['len'] = len(data)
ops['first'] = data[0]
ops['last'] = data[-1]
ops['minus_len'] = data[-len(data)]
ops['slice'] = list(data[1:4])
ops['step'] = list(data[::3])
ops['backwards'] = list(data[::-2])
ops['down'] = list(data[9:1:-3])
ops['empty_slice'] = list(data[10:2])
ops['len_of_step'] = len(data[::7])
ops['slice_of_slice'] = list(data[2:][1:20][::4])
ops['negative_in_slice'] = data[5:][-1]
ops['iterate'] = [c for c in data]
ops['reversed'] = list(reversed(data))
ops['reversed_slice'] = list(reversed(data[3:8]))
ops['in'] = [data[7] in data, 'nope' in data, 5 in data]
ops['count'] = [data.count(data[11]), data.count('nope'), data.count(5)]
ops['index'] = [data.index(data[12]), data.index(data[12], 12), data[3:].index(data[20])]
ops['equal'] = [data[1:3] == (data[1], data[2]), data[1:3] == [data[1], data[2]], data == data[:],
                data[:2] == data[1:3]]
ops['plus'] = list(data[:2] + ('z',)) + list(('y',) + data[38:])
ops['sorted'] = sorted(data)[:3]
ops['enumerate'] = [i for i, c in enumerate(data) if c == '']
ops['zip'] = [a + b for a, b in zip(data, data[1:])][:2]
ops['bool'] = [bool(data), bool(data[3:3])]
ops['max'] = max(data, key=len)
done(ops)
"""


def expected_operations(chunks):
    data = tuple(chunks)
    return {
        "len": len(data), "first": data[0], "last": data[-1], "minus_len": data[-len(data)],
        "slice": list(data[1:4]), "step": list(data[::3]), "backwards": list(data[::-2]),
        "down": list(data[9:1:-3]), "empty_slice": [], "len_of_step": len(data[::7]),
        "slice_of_slice": list(data[2:][1:20][::4]), "negative_in_slice": data[5:][-1],
        "iterate": list(data), "reversed": list(reversed(data)), "reversed_slice": list(reversed(data[3:8])),
        "in": [True, False, False], "count": [2, 0, 0], "index": [11, 12, 17],
        "equal": [True, False, True, False], "plus": [data[0], data[1], "z", "y", data[38], data[39]],
        "sorted": sorted(data)[:3], "enumerate": [3], "zip": [data[0] + data[1], data[1] + data[2]],
        "bool": [True, False], "max": max(data, key=len),
    }


async def test_every_sequence_operation_gives_what_a_tuple_gives(corpus):
    result = await run(corpus, OPERATIONS)
    assert result.status == "done", result.error
    assert result.answer == expected_operations(CHUNKS)


@pytest.mark.parametrize(
    ("expression", "kind", "message"),
    [
        ("data[40]", "IndexError", (
            "data index 40 out of range: this data holds 40 chunks, so an index runs from 0 to 39 "
            "(or -1 to -40 from the end)"
        )),
        ("data[-41]", "IndexError", "data index -41 out of range"),
        # A slice is a tuple of its chunks: indexing it past its end is a tuple's IndexError.
        ("data[10:20][10]", "IndexError", "tuple index out of range"),
        ("data[5:5][0]", "IndexError", "tuple index out of range"),
        ("data['a']", "TypeError", "data indices must be integers or slices, not str"),
        ("data[1.5]", "TypeError", "data indices must be integers or slices, not float"),
        ("data.index('nope')", "ValueError", "data.index(x): x is not a chunk of data"),
        ("data[::0]", "ValueError", "slice step cannot be zero"),
    ],
)
async def test_a_bad_index_raises_what_python_would_saying_why(corpus, expression, kind, message):
    result = await run(corpus, f"x = {expression}")
    assert result.status == "error"
    assert result.error.kind == kind
    assert message in result.error.message


async def test_a_huge_index_is_refused_in_the_child_before_anything_is_asked(corpus):
    result = await run(corpus, "try:\n    data[10**30]\nexcept IndexError as e:\n    done(str(e))")
    assert result.status == "done" and "data index 10" in result.answer


async def test_named_datasets_are_a_read_only_mapping_of_the_same_views(tmp_path):
    named = write_store(tmp_path / "m.store", {"logs": CHUNKS[:5], "empty": [], "tickets": ["t0", "t1"]})
    program = """
    out = [sorted(data), len(data['logs']), data['logs'][-1], list(data['tickets'][::-1]),
           len(data['empty']), list(data['empty']), 'logs' in data, data.get('nope', 'absent')]
    try:
        data['new'] = ()
    except TypeError as e:
        out.append('refused')
    done(out)
    """
    for data in (named, {name: list(chunks) for name, chunks in named.items()}):
        result = await run(data, program)
        assert result.status == "done", result.error
        assert result.answer == [
            ["empty", "logs", "tickets"], 5, CHUNKS[4], ["t1", "t0"], 0, [], True, "absent", "refused",
        ]


async def test_unicode_and_empty_chunks_cross_exactly(tmp_path):
    chunks = ["", "é", "東京", "🚀" * 1000, "", "\u2028\x00ok\r\n", "a" * 100_000]
    for data in (write_store(tmp_path / "u.store", chunks), chunks):
        result = await run(data, "done([list(data), [len(c) for c in data], data[6] == 'a' * 100_000])")
        assert result.status == "done", result.error
        assert result.answer == [chunks, [len(c) for c in chunks], True]


async def test_a_corpus_larger_than_one_frame_streams_in_order(tmp_path):
    # 12 MiB: three frames or more; each chunk says where it is.
    chunks = [f"{i:06d}" + "x" * 6_000 for i in range(2_000)]
    store = write_store(tmp_path / "big.store", chunks)
    program = """
    seen = [int(c[:6]) for c in data]
    again = [int(c[:6]) for c in data[1999:0:-400]]
    picked = [int(data[i][:6]) for i in (1500, 3, 1999, 0, 1000)]
    done([seen == list(range(2000)), again, picked, sum(len(c) for c in data)])
    """
    result = await run(store, program)
    assert result.status == "done", result.error
    assert result.answer == [True, [1999, 1599, 1199, 799, 399], [1500, 3, 1999, 0, 1000], 2_000 * 6_006]


async def test_pmap_items_read_the_same_chunks_at_once(corpus):
    program = """
    n = len(data)
    by_index = pmap(lambda i: data[i], range(n), concurrency=8)
    over_data = pmap(lambda c: c, data, concurrency=8)
    over_slice = pmap(len, data[5:30:2], concurrency=8)
    scattered = pmap(lambda i: data[(i * 17) % n], range(n), concurrency=8)
    done([by_index, over_data, over_slice, scattered])
    """
    result = await run(corpus, program)
    assert result.status == "done", result.error
    n = len(CHUNKS)
    assert result.answer == [CHUNKS, CHUNKS, [len(c) for c in CHUNKS[5:30:2]], [CHUNKS[(i * 17) % n] for i in range(n)]]


def child_peak_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_the_child_holds_no_copy_of_the_corpus(tmp_path):
    # The child's peak memory after reading every chunk twice, and some at random, is the same
    # for a corpus of 2 MB and one of 200 MB: it holds a batch and a bounded cache, never the
    # corpus. Chunks of varying sizes, as in a real log, make batches of varying sizes too.
    peaks = {}
    program = """
    n = 0
    for chunk in data:
        n += len(chunk)
    for chunk in data:
        n += chunk.count('y')
    for i in range(0, len(data), 7):
        n += len(data[i])
    print(n, repr(data))
    """
    for megabytes in (2, 200):
        count = megabytes * 100
        sizes = (5_000 + (i * 7_919) % 10_000 for i in range(count))  # 5 to 15 KB, 10 KB on average
        store = write_store(tmp_path / f"{megabytes}.store", ("y" * size for size in sizes))
        async with Sandbox(data=store, limits=limits()) as sandbox:
            result = await sandbox.execute(textwrap.dedent(program))
            assert result.status == "ok", result.error
            assert f"<data: {count:,} chunks, read on demand" in result.output
            peaks[megabytes] = child_peak_bytes(sandbox.pid)
    assert peaks[200] - peaks[2] < 40 << 20, peaks


# -- attacks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("data[0] = 'x'", "cannot assign to an item"),
        ("del data[0]", "cannot delete an item"),
        ("data.extra = 1", "cannot set attribute 'extra'"),
        ("x = data._dataset", "'_dataset' is not allowed"),
        ("x = getattr(data, '_positions')", "'_positions' is not allowed"),
        ("x = data.__dict__", "not allowed"),
        ("x = data[1:3]._dataset", "'_dataset' is not allowed"),
        ("x = [m for m in (data.count, data.index)][0].__self__", "not allowed"),
    ],
)
async def test_a_program_cannot_write_data_or_reach_what_is_behind_it(corpus, statement, message):
    result = await run(corpus, statement)
    assert result.status == "error"
    assert message in result.error.message


async def test_a_program_cannot_open_the_store_file(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS)
    # Without the language layer the program has open(); the OS layers still refuse the file.
    forge = f"print(open({str(store.path)!r}, 'rb').read(16))"
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        result = await sandbox.execute(forge)
        landlock = bool(sandbox.layers and sandbox.layers.get("landlock_abi"))
    assert landlock, "these tests expect Landlock, as the rest of the confinement tests do"
    assert result.status == "error" and result.error.kind == "PermissionError", result


@pytest.mark.parametrize(
    ("name", "start", "stop"),
    [(None, -1, 2), (None, 0, 41), (None, 5, 5), (None, 2**62, 2**63), ("logs", 0, 1)],
)
async def test_the_host_refuses_a_read_outside_the_corpus(name, start, stop):
    server = CorpusServer(CHUNKS)
    with pytest.raises(_protocol.ProtocolError):
        await server.answer(_protocol.ChunksQuery(1, name, start, stop))
    named = CorpusServer({"logs": CHUNKS})
    with pytest.raises(_protocol.ProtocolError, match="dataset the run does not have: None"):
        await named.answer(_protocol.ChunksQuery(1, None, 0, 1))


async def test_a_forged_read_outside_the_corpus_replaces_the_child(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS)
    forge = """
    from ptcrun.sandbox import _protocol
    link = data._dataset.link
    link.send(_protocol.ChunksQuery(-99, None, -1, 10**12))
    import time
    time.sleep(5)
    """
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(textwrap.dedent(forge))
            after = await sandbox.execute("print(data[39])")
    assert result.error.kind == "SandboxError"
    assert "broke the protocol" in result.error.message and "outside the dataset" in result.error.message
    assert after.output == CHUNKS[39] + "\n"


async def test_a_flood_of_reads_is_answered_one_at_a_time(tmp_path, monkeypatch):
    # The program asks for the whole corpus 300 times without waiting; the host must answer
    # each before it reads the next, so it never holds more than one answer.
    chunks = ["z" * 10_000] * 200
    store = write_store(tmp_path / "c.store", chunks)
    queued: list[int] = []
    send_flushed = _channel.Channel.send_flushed

    async def watched(self, frame):
        queued.append(len(self._outbox))
        await send_flushed(self, frame)

    monkeypatch.setattr(_channel.Channel, "send_flushed", watched)
    flood = """
    from ptcrun.sandbox import _protocol
    link = data._dataset.link
    for i in range(300):
        link.send(_protocol.ChunksQuery(-1000 - i, None, 0, 200))
    print('sent')
    """
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        with trio.fail_after(60):
            result = await sandbox.execute(textwrap.dedent(flood))
            after = await sandbox.execute("print(len(data[199]))")
    assert result.status == "ok", result.error
    assert after.output == "10000\n"
    assert queued and max(queued) == 0, max(queued)


async def test_a_chunk_too_big_for_one_frame_is_an_error_the_program_sees(monkeypatch):
    monkeypatch.setattr(_corpus.SharedText, "create", classmethod(lambda cls: None))
    monkeypatch.setattr(_corpus, "_MAX_CHUNK_BYTES", 1_000)
    monkeypatch.setattr(_protocol, "CHUNKS_FRAME_BYTES", 1_000)
    result = await run(["small", "b" * 5_000], "x = data[0]\ntry:\n    data[1]\nexcept Exception as e:\n    done([x, str(e)])")
    assert result.status == "done", result.error
    assert result.answer[0] == "small"
    assert "chunk 1 is 5,000 bytes, more than the sandbox can receive at once" in result.answer[1]


async def test_a_chunk_too_big_names_the_chunk_size_with_the_byte_ceiling(monkeypatch):
    # Not a Limits field: it used to come out as "Limits.chunk_tokens" with no value (NaN).
    monkeypatch.setattr(_corpus.SharedText, "create", classmethod(lambda cls: None))
    monkeypatch.setattr(_corpus, "_MAX_CHUNK_BYTES", 1_000)
    monkeypatch.setattr(_protocol, "CHUNKS_FRAME_BYTES", 1_000)
    result = await run(["small", "b" * 5_000], "x = data[1]")
    assert result.status == "error" and result.error.kind == "SandboxLimitExceeded"
    assert result.error.fields == {"setting": "chunk_tokens", "limit": 1_000, "observed": 5_000, "restarted": False}
    assert isinstance(result.limit, errors.SandboxLimitExceeded)
    assert (result.limit.setting, result.limit.limit) == ("chunk_tokens", 1_000)
    assert result.error.message.startswith("chunk 1 is 5,000 bytes, more than the sandbox can receive")


def damage_byte(path: str, at: int) -> None:
    """Make the byte at ``at`` one that no UTF-8 text holds."""
    with open(path, "r+b") as file:
        file.seek(at)
        file.write(b"\xff")


def file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def access_modes(pid: int, path: str) -> list[int]:
    """The access mode of every descriptor process pid holds to the file at path."""
    modes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if os.path.realpath(f"/proc/{pid}/fd/{fd}") == os.path.realpath(path):
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = info.read().split("flags:")[1].split()[0]
            modes.append(int(flags, 8) & os.O_ACCMODE)
    return modes


def damage_first_record(path: str, index_at: int) -> None:
    """Make the first chunk's length (after its offset) point far past the text."""
    with open(path, "r+b") as file:
        file.seek(index_at + 8)
        file.write((10**6).to_bytes(8, "little"))


@pytest.mark.parametrize("reader", ["child", "host"])
@pytest.mark.parametrize("read", ["print(data[0])", "for c in data:\n    pass"])
async def test_a_store_damaged_during_a_run_ends_it_naming_the_file(tmp_path, monkeypatch, reader, read):
    # The child that reads the file itself asks the host for what does not add up, and the host
    # ends the run naming the file, as when it reads every chunk.
    if reader == "host":
        through_the_host(monkeypatch)
    store = write_store(tmp_path / "c.store", CHUNKS)
    async with Sandbox(data=store, limits=limits()) as sandbox:
        damage_first_record(store.path, store._dataset.index)
        with pytest.raises(errors.SandboxError, match=r"corpus could not be read: corpus store '.*c\.store' is damaged"):
            await sandbox.execute(read)


@pytest.mark.parametrize("reader", ["child", "host"])
async def test_a_store_cut_short_during_a_run_ends_it_naming_the_file(tmp_path, monkeypatch, reader):
    # A file cut short under a reader that mapped it would kill the child (SIGBUS); read, it is
    # a short read, and the host names the file.
    if reader == "host":
        through_the_host(monkeypatch)
    store = write_store(tmp_path / "c.store", CHUNKS * 200)
    async with Sandbox(data=store, limits=limits()) as sandbox:
        assert (await sandbox.execute("print(len(data[0]))")).status == "ok"
        os.truncate(store.path, store._dataset.text_start + 100)
        with pytest.raises(errors.SandboxError, match=r"corpus could not be read: corpus store '.*c\.store' is damaged"):
            await sandbox.execute("for c in data[4000:]:\n    pass")


@pytest.mark.parametrize("reader", ["child", "host"])
async def test_text_that_is_not_utf8_is_an_error_naming_the_fix(tmp_path, monkeypatch, reader):
    if reader == "host":
        through_the_host(monkeypatch)
    store = write_store(tmp_path / "c.store", ["abc", "def" * 10, "ghi"])
    damage_byte(store.path, store._dataset.text_start + 4)
    program = """
    out = [data[2]]
    for read in (lambda: data[1], lambda: list(data)):
        try:
            read()
        except Exception as e:
            out.append(str(e))
    done(out)
    """
    result = await run(store, program)
    assert result.status == "done", result.error
    assert result.answer[0] == "ghi"
    assert len(result.answer) == 3
    for message in result.answer[1:]:
        assert message.startswith("chunk 1 of data is not UTF-8 text: the corpus store is damaged"), message


async def test_tool_replies_and_reads_of_data_interleave_without_mixing(tmp_path, monkeypatch):
    through_the_host(monkeypatch)
    # Replies to tool calls are queued while megabytes of text go down the same pipe: no reply
    # may fall between a frame of text and its bytes.
    chunks = [f"{i:04d}" + "t" * 30_000 for i in range(300)]
    store = write_store(tmp_path / "t.store", chunks)

    async def echo(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x

    program = """
    def item(i):
        return [tool.echo(i), int(data[i][:4]), int(data[299 - i][:4]), tool.echo(-i)]
    rows = pmap(item, range(300), concurrency=16)
    streamed = [int(c[:4]) for c in data]
    done([rows == [[i, i, 299 - i, -i] for i in range(300)], streamed == list(range(300))])
    """
    async with Sandbox(data=store, tools=[echo], limits=limits(max_concurrency=16)) as sandbox:
        with trio.fail_after(60):
            result = await sandbox.execute(textwrap.dedent(program))
    assert result.status == "done", result.error
    assert result.answer == [True, True]


async def test_the_shared_memory_is_read_only_to_the_child(tmp_path, monkeypatch):
    through_the_host(monkeypatch)
    store = write_store(tmp_path / "c.store", CHUNKS)
    probe = """
    import os
    link = data._dataset.link
    shared = link._shared
    first = data[0]
    try:
        shared[0:1] = b"x"
        wrote = "wrote"
    except TypeError:
        wrote = "refused"
    modes = []  # the access mode of every descriptor the child holds to the shared memory
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "ptcrun-corpus" in os.readlink("/proc/self/fd/" + fd):
                flags = open("/proc/self/fdinfo/" + fd).read().split("flags:")[1].split()[0]
                modes.append(int(flags, 8) & os.O_ACCMODE)
        except OSError:
            pass
    print(shared.readonly, wrote, first == data[0], modes == [os.O_RDONLY] * len(modes))
    """
    async with Sandbox(data=store, limits=limits(), _language_layer=False, _os_layers=False) as sandbox:
        result = await sandbox.execute(textwrap.dedent(probe))
    assert result.status == "ok", result.error
    assert result.output == "True refused True True\n", result.output


async def test_a_forged_release_of_shared_memory_replaces_the_child(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS)
    forge = """
    from ptcrun.sandbox import _protocol
    link = data._dataset.link
    link.send(_protocol.ChunksQuery(-99, None, 0, 1, release=[0, 1, 2, 3]))
    import time
    time.sleep(5)
    """
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        with trio.fail_after(10):
            result = await sandbox.execute(textwrap.dedent(forge))
            after = await sandbox.execute("print(data[1])")
    assert result.error.kind == "SandboxError"
    assert "release of slot" in result.error.message and "does not hold" in result.error.message
    assert after.output == CHUNKS[1] + "\n"


async def test_the_host_writes_a_slot_only_once_the_child_has_read_it(tmp_path, monkeypatch):
    through_the_host(monkeypatch)
    # More reads in flight than slots: the rest go down the pipe, and every chunk arrives whole.
    chunks = [f"{i:04d}" + "s" * 100_000 for i in range(64)]
    store = write_store(tmp_path / "s.store", chunks)
    program = """
    got = pmap(lambda i: data[i][:4] + str(len(data[i])), range(64), concurrency=16)
    streams = pmap(lambda k: [c[:4] for c in data[k::4]], range(4), concurrency=4)
    done([got, streams])
    """
    async with Sandbox(data=store, limits=limits(max_concurrency=16)) as sandbox:
        result = await sandbox.execute(textwrap.dedent(program))
    assert result.status == "done", result.error
    assert result.answer == [
        [f"{i:04d}100004" for i in range(64)],
        [[f"{i:04d}" for i in range(k, 64, 4)] for k in range(4)],
    ]


# -- the store file the child reads itself ---------------------------------------------------------


async def test_the_child_reads_a_whole_store_without_asking_the_host(tmp_path, monkeypatch):
    chunks = [f"{i}:" + "y" * (i % 300) for i in range(3_000)]
    store = write_store(tmp_path / "c.store", chunks)
    asked: list[_protocol.ChunksQuery] = []
    answer = CorpusServer.answer

    async def counted(self, query):
        asked.append(query)
        return await answer(self, query)

    monkeypatch.setattr(CorpusServer, "answer", counted)
    program = """
    streamed = [c for c in data]
    picked = [data[5], data[-1], data[1234]]
    mapped = pmap(lambda c: c[:4], data[::7], concurrency=8)
    done([len(streamed), sum(map(len, streamed)), picked, mapped[:3], len(mapped)])
    """
    expected = [
        len(chunks), sum(map(len, chunks)), [chunks[5], chunks[-1], chunks[1234]],
        [c[:4] for c in chunks[::7][:3]], len(chunks[::7]),
    ]
    result = await run(store, program, limits={"max_concurrency": 8})
    assert result.status == "done", result.error
    assert result.answer == expected
    assert asked == []
    through_the_host(monkeypatch)  # the same program, each read a query to the host
    result = await run(store, program, limits={"max_concurrency": 8})
    assert result.answer == expected
    assert asked


def test_the_child_is_given_the_file_only_when_it_holds_nothing_else(tmp_path):
    both = write_store(tmp_path / "n.store", {"a": ["a0", "a1"], "b": ["b0"]})
    twin = write_store(tmp_path / "twin.store", {"a": ["a0", "a1"], "b": ["b0"]})

    def granted(data):
        grant = CorpusServer(data).grant_store()
        if grant is not None:
            os.close(grant.child_fd)
        return grant

    whole = granted(both)
    assert whole is not None and set(whole.layouts) == {"a", "b"}
    renamed = granted({"x": both["b"], "y": both["a"]})
    assert renamed is not None and renamed.layouts == {"x": whole.layouts["b"], "y": whole.layouts["a"]}
    assert granted({"a": both["a"]}) is None  # b would be readable, and the run was not given it
    assert granted({"a": both["a"], "b": twin["b"]}) is None  # two files
    assert granted({"a": both["a"], "b": both["b"], "c": ["c0"]}) is None
    assert granted(["a0", "a1"]) is None
    assert granted(write_store(tmp_path / "one.store", ["x"])) is not None


async def test_the_childs_store_descriptor_is_read_only_and_its_own(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS)
    before = file_bytes(store.path)
    # Without the language layer the program reaches the descriptor; the OS layers still hold.
    attack = """
    import os
    fd = data._dataset.stored._file._fd
    out = {}
    attempts = {
        "write": lambda: os.write(fd, b"x"),
        "truncate": lambda: os.ftruncate(fd, 0),
        "reopen for writing": lambda: open("/proc/self/fd/" + str(fd), "r+b"),
        "map for writing": lambda: __import__("mmap").mmap(fd, 4096),
        "unblock": lambda: os.set_blocking(fd, False),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            out[name] = "done"
        except Exception as e:
            out[name] = type(e).__name__
    print(out)
    """
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        modes = access_modes(sandbox.pid, store.path)
        result = await sandbox.execute(textwrap.dedent(attack))
        after = await sandbox.execute("print(data[39])\nprint(sum(len(c) for c in data))")
    assert modes == [os.O_RDONLY], modes
    assert result.status == "ok", result.error
    tried = eval(result.output)  # a dict of names to outcomes, printed by the program
    assert tried.pop("unblock") == "done"  # a flag of the child's own open file, not the host's
    assert all(outcome != "done" for outcome in tried.values()), tried
    assert os.get_blocking(store.file_descriptor())
    assert file_bytes(store.path) == before
    assert after.output == f"{CHUNKS[39]}\n{sum(map(len, CHUNKS))}\n"
