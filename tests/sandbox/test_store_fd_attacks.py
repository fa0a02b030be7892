"""Attacks on the store file the sandbox child reads itself (``child/_stored.py``).

When a run's corpus is one whole store, the child holds a read-only descriptor of the file.
These tests try to reach it or its reader from a program, to make the child read outside the
run's corpus or return one chunk's text for another, to use the descriptor for more than reading,
to carry it into other children, and to turn a failing read or an oversized chunk into an error
that lies about its cause. Each attack that the sandbox stops is kept here as a test that tries
it; the control runs show that the same attempts succeed where the layer under test is off.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import textwrap
import threading

import pytest

from ptcrun import errors, write_store
from ptcrun.corpus._store import StoredChunks
from ptcrun.sandbox import Sandbox, _protocol
from ptcrun.sandbox.child._stored import Damaged, StoredText, StoreFile, TooLarge
from ptcrun.sandbox.host import _corpus
from ptcrun.sandbox.host._corpus import CorpusServer

from .conftest import limits

CHUNKS = [f"<{i}>" + "abcdefgh"[i % 8] * (i * 37 % 1_500) + f"</{i}>" for i in range(600)]


def through_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CorpusServer, "grant_store", lambda self: None)


async def run(data, program, **options):
    async with Sandbox(data=data, limits=limits(**options.pop("limits", {})), **options) as sandbox:
        return await sandbox.execute(textwrap.dedent(program))


def digest(texts: list[str]) -> str:
    return hashlib.sha256("|".join(texts).encode("utf-8")).hexdigest()


def descriptors_to(pid: int | str, path: str) -> list[str]:
    """The descriptors process pid holds to the file at path."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.path.realpath(f"/proc/{pid}/fd/{fd}") == os.path.realpath(path):
                found.append(fd)
        except OSError:
            pass  # closed while listed
    return found


# -- a program walking to the descriptor ----------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("x = iter(data).__reduce__()", "not allowed"),
        ("x = reversed(data).__reduce__()", "not allowed"),
        ("x = iter(data[::2]).__setstate__", "not allowed"),
        ("import copy\nx = copy.copy(iter(data))", "copy.copy() copies numbers"),
        ("import copy\nx = copy.deepcopy(reversed(data))", "copy.deepcopy() copies numbers"),
        ("import copy\nx = copy.copy(data)", "copy.copy() copies numbers"),
        ("import operator\nx = operator.methodcaller('__reduce__')(iter(data))", "not allowed"),
        ("import operator\nx = operator.attrgetter('_dataset')(data)", "not allowed"),
        ("x = type(data)(1, range(3))", "cannot be made in the sandbox"),
        ("class S(type(data)):\n    pass", "cannot derive from"),
        ("x = vars(data)", "not allowed"),
        ("x = data.__class__.__mro__", "not allowed"),
        ("x = data.count.__func__", "not allowed"),
        ("def g():\n    yield from data\nx = g()\nnext(x)\ny = x.gi_frame", "not allowed"),
        ("try:\n    data[10**6]\nexcept IndexError as e:\n    x = e.__traceback__", "not allowed"),
        ("x = pmap(lambda c: c.__class__.__mro__, data[:2])", "not allowed"),
    ],
)
async def test_no_walk_from_data_reaches_the_reader(tmp_path, program, message):
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    result = await run(store, program)
    assert result.status == "error", result
    assert message in result.error.message, result.error


# -- reads that race ------------------------------------------------------------------------------


def test_threads_sharing_the_file_never_get_each_others_bytes(tmp_path):
    # The child has no pread: a read is a seek and a read, and one file offset is shared by every
    # thread. Each thread reads its own chunks over and over, and must always get them.
    store = write_store(tmp_path / "r.store", CHUNKS)
    fd = os.open(store.path, os.O_RDONLY)
    stored = StoredText(StoreFile(fd), list(store.layout()))
    wrong: list[tuple[int, str]] = []

    def reader(first: int) -> None:
        for _ in range(150):
            for index in range(first, len(CHUNKS), 8):
                (text,), _ = stored.read(index, index + 1, 1 << 20)
                if text != CHUNKS[index]:
                    wrong.append((index, text[:20]))

    threads = [threading.Thread(target=reader, args=(first,)) for first in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.close(fd)
    assert wrong == []


async def test_pmap_items_reading_at_once_each_get_their_own_chunks(tmp_path):
    # Many items at once, two datasets sharing the one file, random access and streams mixed:
    # every chunk the program sees must be the one it asked for.
    store = write_store(tmp_path / "m.store", {"a": CHUNKS, "b": CHUNKS[::-1]})
    program = """
    import hashlib
    n = len(data['a'])
    def digest(texts):
        return hashlib.sha256('|'.join(texts).encode('utf-8')).hexdigest()
    def item(k):
        picked = [data['a'][(k * 7919 + j * 31) % n] for j in range(40)]
        picked += [data['b'][(k * 104729 + j * 17) % n] for j in range(40)]
        streamed = list(data['a' if k % 2 else 'b'][k % 50:])
        return [digest(picked), digest(streamed)]
    done(pmap(item, range(64), concurrency=32))
    """
    result = await run(store, program, limits={"max_concurrency": 32})
    assert result.status == "done", result.error
    n = len(CHUNKS)
    b = CHUNKS[::-1]
    expected = [
        [
            digest([CHUNKS[(k * 7919 + j * 31) % n] for j in range(40)] + [b[(k * 104729 + j * 17) % n] for j in range(40)]),
            digest((CHUNKS if k % 2 else b)[k % 50:]),
        ]
        for k in range(64)
    ]
    assert result.answer == expected


# -- the descriptor used for more than reading ----------------------------------------------------

# With the language layer off, and the tripwire told that no program is on the stack, the
# program runs every call inside a trusted section: only seccomp and Landlock are left.
ESCAPED_ATTEMPTS = """
import fcntl, os
from ptcrun.sandbox.child import _tripwire
_tripwire._program_code_inside_section = lambda: False
fd = data._dataset.stored._file._fd
attempts = {
    "learn its path": lambda: os.readlink("/proc/self/fd/" + str(fd)),
    "open beside it": lambda: os.close(os.open("x", os.O_RDONLY, dir_fd=fd)),
    "open its parent": lambda: os.close(os.open("..", os.O_RDONLY, dir_fd=fd)),
    "reopen it": lambda: os.close(os.open("/proc/self/fd/" + str(fd), os.O_RDONLY)),
    "copy it out": lambda: os.sendfile(2, fd, 0, 10),
    "change its mode": lambda: os.fchmod(fd, 0o666),
    "change its group": lambda: os.fchown(fd, -1, os.getgid()),
    "change its times": lambda: os.utime(fd, (0, 0)),
    "tag it": lambda: os.setxattr(fd, "user.ptcrun", b"1"),
    "lock it": lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
    "lock a range": lambda: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB),
    "take a lease": lambda: fcntl.fcntl(fd, 1024, fcntl.F_RDLCK),  # F_SETLEASE
    "drop its cache": lambda: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED),
}
out = {}
for name, attempt in attempts.items():
    try:
        with _tripwire.trusted():
            attempt()
        out[name] = "done"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
print(out)
"""


def file_facts(path: str) -> tuple[int, int, int, int, list[str]]:
    info = os.stat(path)
    return info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, os.listxattr(path)


@pytest.mark.parametrize("os_layers", [True, False], ids=["confined", "control without the OS layers"])
async def test_the_descriptor_reads_the_file_and_does_nothing_else(tmp_path, os_layers):
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    os.chmod(store.path, 0o600)
    before = file_facts(store.path)
    program = "import errno\n" + ESCAPED_ATTEMPTS
    async with Sandbox(data=store, limits=limits(), _language_layer=False, _os_layers=os_layers) as sandbox:
        result = await sandbox.execute(program)
        after_program = await sandbox.execute("print(data[39])")
        children = descriptors_to(sandbox.pid, store.path)
    assert result.status == "ok", result.error
    tried = eval(result.output)  # a dict of attempts to outcomes, printed by the program
    after = file_facts(store.path)
    if os_layers:
        assert all(outcome == "EPERM" for outcome in tried.values()), tried
        assert after == before
    else:  # the same attempts do reach the file when the kernel layers are off
        assert tried["change its mode"] == tried["change its times"] == tried["learn its path"] == "done"
        assert stat.S_IMODE(after[0]) == 0o666 and after[3] == 0
    assert after_program.output == CHUNKS[39] + "\n"
    assert len(children) == 1


# -- a read the child cannot make -----------------------------------------------------------------


def test_a_descriptor_that_cannot_be_read_is_damage_the_host_reads_past(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS[:10])
    folder = os.open(tmp_path, os.O_RDONLY)  # read() of a directory fails: EISDIR
    try:
        with pytest.raises(Damaged):
            StoredText(StoreFile(folder), list(store.layout())).read(0, 3, 1 << 20)
    finally:
        os.close(folder)


async def test_reads_the_childs_descriptor_refuses_are_served_by_the_host(tmp_path):
    # A program that escaped the language layer closes the child's descriptor (as an I/O error
    # or a stale file would break it): it must not leave data unreadable, nor turn a read into
    # an OSError naming a descriptor the program never saw.
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        broken = await sandbox.execute("import os\nos.close(data._dataset.stored._file._fd)")
        after = await sandbox.execute("print(data[9])\nprint(sum(len(c) for c in data[5:]))")
    assert broken.status == "ok", broken.error
    assert after.status == "ok", after.error
    assert after.output == f"{CHUNKS[9]}\n{sum(map(len, CHUNKS[5:40]))}\n"


@pytest.mark.parametrize("reader", ["child", "host"])
async def test_a_store_the_host_cannot_read_ends_the_run_naming_it(tmp_path, monkeypatch, reader):
    # An I/O error on the host's own read (a failing disk, a stale network file) is the store's
    # fault, not the program's: the run ends saying which file and what the system said.
    if reader == "host":
        through_the_host(monkeypatch)
    store = write_store(tmp_path / "c.store", CHUNKS[:40])

    def failing(self, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(StoredChunks, "read_utf8", failing)
    async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
        if reader == "child":  # the child's own reads fail too, so it asks the host
            await sandbox.execute("import os\nos.close(data._dataset.stored._file._fd)")
        with pytest.raises(errors.SandboxError, match=r"corpus could not be read: corpus store '.*c\.store'.*Input/output error"):
            await sandbox.execute("print(data[3])")


# -- a chunk too large for the sandbox -------------------------------------------------------------


def test_the_childs_reader_leaves_a_chunk_too_large_to_the_host(tmp_path, monkeypatch):
    store = write_store(tmp_path / "c.store", ["small", "h" * 5_000, "tail"])
    monkeypatch.setattr(_protocol, "MAX_CHUNK_BYTES", 1_000)
    fd = os.open(store.path, os.O_RDONLY)
    stored = StoredText(StoreFile(fd), list(store.layout()))
    try:
        assert stored.read(0, 3, 10)[0] == ["small"]  # the batch stops before it
        assert stored.read(2, 3, 10)[0] == ["tail"]
        with pytest.raises(TooLarge):
            stored.read(1, 3, 1 << 20)
    finally:
        os.close(fd)


@pytest.mark.parametrize("reader", ["child", "host"])
async def test_a_chunk_too_large_for_the_sandbox_is_refused_however_the_child_reads(tmp_path, monkeypatch, reader):
    # Through the host a chunk larger than a frame is refused, naming the fix; a child that
    # reads the file itself must refuse it the same way, not read hundreds of megabytes that a
    # run on the same chunks as a list (or a sub-run given some of them) could never read.
    if reader == "host":
        through_the_host(monkeypatch)
    huge = _protocol.MAX_CHUNK_BYTES + 1
    store = write_store(tmp_path / "huge.store", ["small", "h" * huge, "tail"])
    program = """
    out = [data[0], data[2]]
    for read in (lambda: data[1], lambda: list(data)):
        try:
            read()
            out.append('read')
        except Exception as e:
            out.append([type(e).__name__, str(e)])
    lengths = pmap(len, data)  # an item that cannot read its chunk fails alone
    out.append([lengths[0], lengths[2], lengths[1] if type(lengths[1]) is int else [lengths[1].kind, lengths[1].message]])
    done(out)
    """
    try:
        result = await run(store, program)
    finally:
        os.remove(store.path)  # 255 MiB: not left for the shared machine's disk
    assert result.status == "done", result.error
    refused = ["SandboxLimitExceeded", (
        f"chunk 1 is {huge:,} bytes, more than the sandbox can receive at once "
        f"({_protocol.MAX_CHUNK_BYTES:,}); cut the corpus into smaller chunks (a smaller "
        "chunk_tokens= or chunk_lines= of ptcrun.build_store, or --chunk-tokens or "
        "--chunk-lines of the ptcrun command)."
    )]
    assert result.answer == ["small", "tail", refused, refused, [5, 4, refused]]


async def test_the_host_refuses_a_huge_stored_chunk_without_reading_it(tmp_path, monkeypatch):
    store = write_store(tmp_path / "c.store", ["small", "h" * 5_000])
    monkeypatch.setattr(_corpus, "_MAX_CHUNK_BYTES", 1_000)
    monkeypatch.setattr(_corpus.SharedText, "create", classmethod(lambda cls: None))
    read: list[tuple[int, int]] = []
    read_utf8 = StoredChunks.read_utf8

    def counted(self, start, stop, *args):
        read.append((start, stop))
        return read_utf8(self, start, stop, *args)

    monkeypatch.setattr(StoredChunks, "read_utf8", counted)
    answer = await CorpusServer(store).answer(_protocol.ChunksQuery(1, None, 1, 2))
    assert isinstance(answer, _protocol.Reply) and not answer.ok
    assert "chunk 1 is 5,000 bytes" in answer.error["message"]
    assert read == []


# -- the descriptor stays with its child ---------------------------------------------------------


async def test_the_descriptor_reaches_no_other_process_and_outlives_no_child(tmp_path):
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    own = descriptors_to("self", store.path)  # the store's own, held by StoredChunks
    grant = CorpusServer(store).grant_store()
    assert grant is not None
    try:
        assert not os.get_inheritable(grant.child_fd)  # no process the host starts inherits it
        assert os.fstat(grant.child_fd).st_ino == os.stat(store.path).st_ino
    finally:
        os.close(grant.child_fd)
    async with Sandbox(data=store, limits=limits()) as sandbox, Sandbox(data=CHUNKS, limits=limits()) as other:
        first = sandbox.pid
        assert (await sandbox.execute("print(data[1])")).output == CHUNKS[1] + "\n"
        assert (await other.execute("print(data[1])")).output == CHUNKS[1] + "\n"
        assert descriptors_to(other.pid, store.path) == []
        stopped = await sandbox.execute("while True:\n    pass", timeout=0.5)
        assert stopped.restarted
        assert (await sandbox.execute("print(data[2])")).output == CHUNKS[2] + "\n"  # a new child
        assert sandbox.pid != first and len(descriptors_to(sandbox.pid, store.path)) == 1
        assert descriptors_to("self", store.path) == own
    assert descriptors_to("self", store.path) == own


async def test_an_exec_turn_style_rerun_gets_a_fresh_descriptor_at_offset_zero(tmp_path):
    # The child moves its descriptor's offset with every read; a later sandbox on the same store
    # (a re-run, a sub-run) must not start where the last one left off, nor share its offset.
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    seen = []
    for _ in range(2):
        async with Sandbox(data=store, limits=limits(), _language_layer=False) as sandbox:
            result = await sandbox.execute(
                "import os\nfd = data._dataset.stored._file._fd\n"
                "print(os.lseek(fd, 0, os.SEEK_CUR))\nx = data[39]\nprint(os.lseek(fd, 0, os.SEEK_CUR) > 0)"
            )
            assert result.status == "ok", result.error
            seen.append(result.output)
    assert seen == ["0\nTrue\n", "0\nTrue\n"]
    assert os.lseek(store.file_descriptor(), 0, os.SEEK_CUR) == 0


def real_path(path: str) -> str:
    return os.path.realpath(path)


def child_descriptors(pid: int) -> list[tuple[str, int]]:
    """What each descriptor of process pid leads to, and its access mode."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with open(f"/proc/{pid}/fdinfo/{fd}") as info:
            flags = info.read().split("flags:")[1].split()[0]
        found.append((os.readlink(f"/proc/{pid}/fd/{fd}"), int(flags, 8) & os.O_ACCMODE))
    return found


@pytest.mark.parametrize("kind", ["store", "list"])
async def test_the_store_is_the_only_file_the_child_holds(tmp_path, kind):
    # Landlock refuses every open in the child; a descriptor it inherits is read past that. The
    # only file among them may be the run's store, read-only, and only when the run is given it.
    store = write_store(tmp_path / "c.store", CHUNKS[:40])
    data = store if kind == "store" else list(CHUNKS[:40])
    async with Sandbox(data=data, limits=limits()) as sandbox:
        result = await sandbox.execute("x = pmap(lambda i: data[i], range(40), concurrency=8)")
        held = child_descriptors(sandbox.pid)
    assert result.status == "ok", result.error
    files = [(target, mode) for target, mode in held if target.startswith("/") and target != "/dev/null"]
    others = [target for target, _ in held if not target.startswith(("/", "pipe:"))]
    assert others == []
    memory = [(target, mode) for target, mode in files if target.startswith("/memfd:ptcrun-corpus")]
    assert memory == [("/memfd:ptcrun-corpus (deleted)", os.O_RDONLY)]
    rest = [item for item in files if item not in memory]
    assert rest == ([(real_path(store.path), os.O_RDONLY)] if kind == "store" else [])


@pytest.mark.parametrize("reader", ["child", "host"])
async def test_a_store_written_again_under_the_run_leaves_the_run_on_the_file_it_opened(tmp_path, monkeypatch, reader):
    # Writing a store replaces the file whole (a new file renamed over the old): the run, and
    # its child, go on reading the corpus they were given, never a mix of the two.
    if reader == "host":
        through_the_host(monkeypatch)
    path = tmp_path / "c.store"
    store = write_store(path, CHUNKS[:40])
    async with Sandbox(data=store, limits=limits()) as sandbox:
        assert (await sandbox.execute("print(data[0])")).output == CHUNKS[0] + "\n"
        write_store(path, [chunk.upper() for chunk in CHUNKS[:40]])  # the same layout, other text
        same_child = await sandbox.execute("done([data[39], list(data)])")
        assert (await sandbox.execute("while True:\n    pass", timeout=0.5)).restarted
        new_child = await sandbox.execute("done([data[39], list(data)])")  # its file opened anew
    for result in (same_child, new_child):
        assert result.status == "done", result.error
        assert result.answer == [CHUNKS[39], CHUNKS[:40]]


# -- one iterator of data shared by many threads --------------------------------------------------


@pytest.mark.parametrize("reader", ["child", "host", "list"])
async def test_an_iterator_of_data_shared_by_pmap_items_gives_each_chunk_once(tmp_path, monkeypatch, reader):
    # iter(data) is a C chain over batches that are read while other threads run. Shared by
    # pmap items, two of them would ask it for a batch at once: the chain dropped its source
    # while the other was still running it, and the child crashed (SIGSEGV). As with a list,
    # every chunk must come out exactly once, in order, to whichever item asks.
    chunks = [f"{i:05d}" + "x" * (i % 3_000) for i in range(6_000)]
    if reader == "host":
        through_the_host(monkeypatch)
    data = chunks if reader == "list" else write_store(tmp_path / "s.store", chunks)
    program = """
    def drain(it):
        got = []
        for _ in range(100):
            try:
                got.append(int(next(it)[:5]))
            except StopIteration:
                break
        return got
    def both(it):
        got = drain(it)
        for chunk in it:  # a loop in the item, over the same iterator
            got.append(int(chunk[:5]))
            if len(got) > 150:
                break
        return got
    shared = iter(data)
    parts = pmap(lambda k: both(shared), range(60), concurrency=30)
    rest = [int(c[:5]) for c in shared]
    failed = [str(p) for p in parts if type(p) is not list]
    seen = sorted([n for p in parts if type(p) is list for n in p] + rest)
    done([failed, seen == list(range(len(data))), all(p == sorted(p) for p in parts if type(p) is list)])
    """
    async with Sandbox(data=data, limits=limits(max_concurrency=30)) as sandbox:
        for _ in range(3):
            result = await sandbox.execute(textwrap.dedent(program))
            assert result.status == "done", result.error
            assert result.answer == [[], True, True]
