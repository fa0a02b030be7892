"""The result cache: a worker request asked twice is answered once.

A request's key is the SHA-256 of what decides its answer: the provider (its name, which holds
the model, and its ``base_url``), the system prompt, every message (the worker's prompt holds
the instruction, the text and the schema), the output limit and the temperature. What only
changes the price (``cache_system``) or the bookkeeping (spans, the call's number) is left out.

Within a run, identical requests share one answer: the first sends it, and those that arrive
while it is in flight wait for it rather than send their own; but a live request never waits for
a batched one, answered in minutes to hours, past its own clock of seconds: it is sent. Across
runs, the answers are kept in a SQLite file (:class:`DiskCache`), opt-in. Only replies are kept,
never errors: a provider that failed may answer next time, and a worker's schema check and repair
run again on every cached reply, so a cached reply means what a live one would. Replies replayed
from a resumed run come through the same door (:class:`ReplyCache`), marked as such. A batched
fan-out claims all its requests at once (:meth:`ReplyCache.claim_batch`) and reads and writes the
file in a few queries, not one per request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs
import trio

from .. import errors
from .providers._base import Provider, Reply, Request

__all__ = ["MEMORY_CHARS", "BatchClaim", "Claim", "DiskCache", "ReplyCache", "Source", "request_key"]

#: Where a reply that cost nothing came from (``llm.end``'s ``cached``).
Source = Literal["run", "disk", "resume"]

#: Changes when what a key covers changes, so old entries are never read as new ones.
_KEY_VERSION = 1
#: The file's format; a file of another format is refused, not misread.
_FORMAT = "ptcrun-reply-cache-1"
#: What a run keeps in memory of its own replies, to answer identical requests later in the
#: run: about this many characters (reply text plus a fixed share per entry for its key and
#: object), the oldest dropped first. A fan-out of 100,000 calls must not grow the host without
#: bound; a dropped reply is read from the cache file, when there is one, or sent again.
MEMORY_CHARS = 64 * 2**20
_ENTRY_CHARS = 256
#: Keys looked up in one SQLite query (its default limit on parameters is 32,766).
_KEYS_PER_QUERY = 500


def request_key(provider: Provider, request: Request, *, mask: Callable[[str], str] | None = None) -> str:
    """The key of ``request`` sent to ``provider``: equal keys get the same answer.

    ``mask`` rewrites each message before it is keyed (a resume leaves out the budget figures
    of the planner's messages, which a resumed run cannot reproduce). Each part is hashed with
    its length before it, so no two different requests read the same: it costs a few
    microseconds per kilobyte, where a JSON rendering of a chunk would cost ten times that.
    """
    digest = hashlib.sha256()

    def part(value: str | None) -> None:
        if value is None:
            digest.update(b"n")
            return
        data = value.encode("utf-8", "surrogatepass")
        digest.update(b"s" + len(data).to_bytes(8, "big"))
        digest.update(data)

    base_url = getattr(provider, "base_url", None)
    part(str(_KEY_VERSION))
    part(provider.name)
    part(base_url if isinstance(base_url, str) else None)
    part(request.system)
    part(str(request.max_tokens))
    part(None if request.temperature is None else repr(float(request.temperature)))
    part(str(len(request.messages)))
    for message in request.messages:
        part(message.role)
        part(message.content if mask is None else mask(message.content))
    return digest.hexdigest()


class DiskCache:
    """Worker replies in a SQLite file that runs share (``Runtime(cache=PATH)``).

    One connection, used from worker threads one at a time (``trio.to_thread`` with a limiter of
    one), so the event loop never waits on the disk. WAL mode lets several processes share the
    file; a write that finds it locked waits up to five seconds.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> DiskCache:
        """Open or create the cache file at ``path``.

        Raises:
            ConfigError: the file cannot be opened or created, or it is not a ptcrun reply
                cache (another database, a damaged file, a file of another kind).
        """
        file = Path(path)
        fix = "delete it (a cache only saves tokens) or pass cache= another path"
        if file.is_dir():
            raise errors.ConfigError(f"cache={str(file)!r} is a directory; pass cache= a file path.")
        try:
            db = sqlite3.connect(file, check_same_thread=False, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            raise errors.ConfigError(
                f"cache={str(file)!r} cannot be opened ({exc}); pass cache= a file you can write."
            ) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, provider TEXT NOT NULL, "
                "reply TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (_FORMAT,))
            row = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
            problem = None
            if row[0] != _FORMAT:
                problem = f"it holds another format ({str(row[0])[:40]!r})"
            else:
                check = db.execute("PRAGMA quick_check").fetchone()
                if check[0] != "ok":
                    problem = f"SQLite finds it damaged ({str(check[0])[:80]})"
        except sqlite3.Error as exc:
            db.close()
            reason = "it is not a SQLite database" if isinstance(exc, sqlite3.DatabaseError) else str(exc)
            raise errors.ConfigError(
                f"cache={str(file)!r} is not a ptcrun reply cache: {reason} ({exc}); {fix}."
            ) from None
        if problem:
            db.close()
            raise errors.ConfigError(f"cache={str(file)!r} is not a ptcrun reply cache: {problem}; {fix}.")
        return cls(file, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, key: str) -> Reply | None:
        """The reply kept under ``key``, or None.

        Raises:
            sqlite3.Error: the file failed under the run (a disk error, damage).
            ValueError: the entry is not a reply this module wrote.
        """
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else _reply_from_json(row[0])

    def put(self, key: str, provider: str, reply: Reply) -> None:
        """Keep ``reply`` under ``key``.

        Raises:
            sqlite3.Error: the file cannot be written (a full disk, a lock held too long).
        """
        text = json.dumps(attrs.asdict(reply), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)", (key, provider, text, time.time())
            )

    def get_many(self, keys: Sequence[str]) -> dict[str, Reply]:
        """The replies kept under any of ``keys``, by key (a batch's lookups in a few queries).

        Raises:
            sqlite3.Error, ValueError: as :meth:`get`.
        """
        found: dict[str, Reply] = {}
        with self._lock:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                part = keys[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT key, reply FROM replies WHERE key IN ({marks})", part)
                for key, reply in rows:
                    found[key] = _reply_from_json(reply)
        return found

    def put_many(self, provider: str, replies: Mapping[str, Reply]) -> None:
        """Keep each of ``replies`` under its key, in one transaction.

        Raises:
            sqlite3.Error: as :meth:`put`.
        """
        now = time.time()
        rows = (
            (key, provider, json.dumps(attrs.asdict(reply), ensure_ascii=False), now)
            for key, reply in replies.items()
        )
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    async def aget(self, key: str) -> Reply | None:
        return await trio.to_thread.run_sync(self.get, key, limiter=self._limiter)

    async def aput(self, key: str, provider: str, reply: Reply) -> None:
        await trio.to_thread.run_sync(self.put, key, provider, reply, limiter=self._limiter)

    async def aget_many(self, keys: Sequence[str]) -> dict[str, Reply]:
        return await trio.to_thread.run_sync(self.get_many, keys, limiter=self._limiter)

    async def aput_many(self, provider: str, replies: Mapping[str, Reply]) -> None:
        await trio.to_thread.run_sync(self.put_many, provider, replies, limiter=self._limiter)


def _reply_from_json(entry: str) -> Reply:
    """A kept reply, read back; its usage is not (a cached reply costs nothing).

    Raises:
        ValueError: the entry is not a reply as :meth:`DiskCache.put` writes one.
    """
    data = json.loads(entry)
    if not isinstance(data, dict):
        raise ValueError("the entry is not a reply")
    text, model, stop_reason = data.get("text"), data.get("model"), data.get("stop_reason")
    if not (isinstance(text, str) and isinstance(model, str) and isinstance(stop_reason, (str, type(None)))):
        raise ValueError("the entry is not a reply")
    return Reply(text=text, input_tokens=0, output_tokens=0, model=model, stop_reason=stop_reason)


@attrs.define
class Claim:
    """One request's turn at the cache: ``hit`` when an answer was found, else the caller
    sends the request and gives the reply to :meth:`keep`."""

    key: str
    hit: Reply | None = None
    source: Source | None = None
    reply: Reply | None = None

    def keep(self, reply: Reply) -> None:
        self.reply = reply


@attrs.define
class BatchClaim:
    """A batch's turn at the cache (:meth:`ReplyCache.claim_batch`): of its distinct keys, those
    answered (``hits``), those the caller sends (``owned``), and those another request of the
    run has in flight (``waiting``: try them again once it ends)."""

    hits: dict[str, tuple[Reply, Source]] = attrs.field(factory=dict)
    owned: list[str] = attrs.field(factory=list)
    waiting: dict[str, trio.Event] = attrs.field(factory=dict)
    replies: dict[str, Reply] = attrs.field(factory=dict)

    def keep(self, key: str, reply: Reply) -> None:
        """The reply an owned request got."""
        self.replies[key] = reply


class ReplyCache:
    """The answers one run may reuse: its own, the cache file's, and a resumed run's.

    Args:
        key: how a request is keyed (:func:`request_key`, or the planner's form for a resume).
        replayed: replies a resumed run recorded, by key; each may answer any number of
            identical requests.
        disk: the cache file, or None.
        share: whether live replies answer identical requests later in the run (workers), or
            only ``replayed`` ones are used (the planner: its requests never repeat).
        warn: called once, with a sentence, when the cache file fails under the run; the run
            then goes on without it.
    """

    def __init__(
        self,
        *,
        key: Callable[[Provider, Request], str] = request_key,
        replayed: Mapping[str, Reply] | None = None,
        disk: DiskCache | None = None,
        share: bool = True,
        warn: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._key = key
        self._replayed = dict(replayed or {})
        self._disk = disk
        self._share = share
        self._warn = warn
        self._done: dict[str, Reply] = {}  # oldest first
        self._done_chars = 0
        self._flying: dict[str, trio.Event] = {}  # live requests in flight
        self._in_batch: dict[str, trio.Event] = {}  # batched requests in flight
        #: Requests answered at no cost, by where the answer came from.
        self.hits: dict[Source, int] = {"run": 0, "disk": 0, "resume": 0}

    @contextlib.asynccontextmanager
    async def claim(self, provider: Provider, request: Request) -> AsyncIterator[Claim]:
        """Find an answer to ``request``, or the right to send it.

        While one task holds the right to send a request, identical ones wait here; if it
        fails or is cancelled, the next of them sends it instead (errors are never shared). A
        request a batch has in flight is sent all the same: the batch may take hours.
        """
        key = self._key(provider, request)
        while True:
            done = self._done.get(key)
            if done is not None:
                self.hits["run"] += 1
                yield Claim(key, done, "run")
                return
            flying = self._flying.get(key)
            if flying is None:
                break
            await flying.wait()
        flying = self._flying[key] = trio.Event()
        try:
            claim = Claim(key)
            replayed = self._replayed.get(key)
            if replayed is not None:
                claim.hit, claim.source = replayed, "resume"
            elif self._disk is not None:
                found = await self._disk_get(key)
                if found is not None:
                    claim.hit, claim.source = found, "disk"
            if claim.source is not None:
                self.hits[claim.source] += 1
            yield claim
            answer = claim.hit or claim.reply
            if answer is not None and self._share:
                self._remember(key, answer)
        finally:
            del self._flying[key]
            flying.set()
        if claim.reply is not None and self._disk is not None:
            await self._disk_put(key, provider.name, claim.reply)

    @contextlib.asynccontextmanager
    async def claim_batch(self, provider: Provider, keys: Iterable[str]) -> AsyncIterator[BatchClaim]:
        """:meth:`claim` for the distinct requests of a batch at once, by their keys.

        The owned keys are in flight until the block ends: identical batched requests of the
        run wait for them (live ones are sent, see :meth:`claim`); answers found are shared at
        once. The caller waits for
        ``waiting`` after the block (so that two batches that wait on each other's keys cannot
        deadlock) and claims what is still unanswered again.
        """
        claim = BatchClaim()
        fresh: list[str] = []
        for key in dict.fromkeys(keys):
            self._sort(key, claim, fresh)
        # Looked up before any is marked in flight: an answer found here is shared at once,
        # not held back until the batch ends.
        found: dict[str, Reply] = {}
        if self._disk is not None:
            unknown = [key for key in fresh if key not in self._replayed]
            found = await self._disk_get_many(unknown) if unknown else {}
        flying = trio.Event()
        for key in fresh:
            replayed = self._replayed.get(key)
            if replayed is not None:
                claim.hits[key] = (replayed, "resume")
            elif key in found:
                claim.hits[key] = (found[key], "disk")
            elif self._sort(key, claim):  # another request may have taken it during the lookup
                self._in_batch[key] = flying
                claim.owned.append(key)
        for key, (reply, source) in claim.hits.items():
            self.hits[source] += 1
            if self._share and source != "run":
                self._remember(key, reply)
        try:
            yield claim
            if self._share:
                for key, reply in claim.replies.items():
                    self._remember(key, reply)
        finally:
            for key in claim.owned:
                del self._in_batch[key]
            flying.set()
        if claim.replies and self._disk is not None:
            await self._disk_put_many(provider.name, claim.replies)

    def _sort(self, key: str, claim: BatchClaim, fresh: list[str] | None = None) -> bool:
        """Put ``key`` among ``claim``'s hits (answered in this run) or waiting (in flight);
        else add it to ``fresh`` and return True."""
        done = self._done.get(key)
        if done is not None:
            claim.hits[key] = (done, "run")
        elif key in self._flying or key in self._in_batch:
            claim.waiting[key] = self._flying.get(key) or self._in_batch[key]
        else:
            if fresh is not None:
                fresh.append(key)
            return True
        return False

    def count_hit(self, source: Source) -> None:
        """Count a request answered at no cost outside :meth:`claim` (a batch's copy of one of
        its own requests)."""
        self.hits[source] += 1

    def _remember(self, key: str, reply: Reply) -> None:
        self._done[key] = reply
        self._done_chars += len(reply.text) + _ENTRY_CHARS
        while self._done_chars > MEMORY_CHARS and self._done:
            oldest = next(iter(self._done))
            self._done_chars -= len(self._done.pop(oldest).text) + _ENTRY_CHARS

    async def _disk_get(self, key: str) -> Reply | None:
        assert self._disk is not None
        try:
            return await self._disk.aget(key)
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self._fail(exc)
            return None

    async def _disk_put(self, key: str, provider: str, reply: Reply) -> None:
        assert self._disk is not None
        try:
            await self._disk.aput(key, provider, reply)
        except sqlite3.Error as exc:
            self._fail(exc)

    async def _disk_get_many(self, keys: Sequence[str]) -> dict[str, Reply]:
        assert self._disk is not None
        try:
            return await self._disk.aget_many(keys)
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self._fail(exc)
            return {}

    async def _disk_put_many(self, provider: str, replies: Mapping[str, Reply]) -> None:
        assert self._disk is not None
        try:
            await self._disk.aput_many(provider, replies)
        except sqlite3.Error as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Stop using a cache file that failed: a wrong answer must never come from it."""
        disk, self._disk = self._disk, None
        if disk is not None:
            self._warn(
                f"the cache file {str(disk.path)!r} failed under the run ({type(exc).__name__}: {exc}); "
                "the rest of the run went on without it"
            )
