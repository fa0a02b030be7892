"""The corpus of a command: the chunk flags, and the store its chunks are read from.

Every command that takes a corpus (``run CORPUS``, ``exec --data FILE``, ``exec --turn``) reads
it through :func:`open_corpus`, so a program sees the same ``data`` whichever command runs it.
The chunks are always read from a corpus store on disk, never held as a list, so a corpus larger
than memory runs. The store is one of three:

- a store file named as the corpus (``ptcrun run app.store``, found by its first bytes): read as
  it is, never cut again;
- ``--store FILE``: made from the corpus when missing, and reused when it was cut from the same
  bytes with the same chunk options, which are checked each time;
- otherwise a scratch store, cut for this command in a hidden folder beside the run folders
  (:class:`~._scratch.Scratch`) and removed when the command ends.

A corpus read from standard input, or from a pipe (``<(zcat app.log.gz)``), which can be read
only once, is copied as it is read; ``run`` keeps the copy in the run folder as ``corpus.txt``
(:mod:`._record`, which also writes ``corpus.json``, so ``exec TRANSCRIPT --turn N`` reads the
same chunks again).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shlex
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

import attrs

from ..corpus._load import DEFAULT_CHUNK_TOKENS
from ..corpus._store import StoredChunks, is_store, open_store
from ..corpus._writer import StoreWriteError, build_store
from ..errors import ConfigError
from ..transcript._events import os_error_reason
from ._scratch import Scratch, discard, remove_leftovers
from ._settings import SETTINGS
from ._stops import stop_on_signals

__all__ = [
    "STDIN",
    "STDIN_COPY",
    "ChunkOptions",
    "Corpus",
    "chunk_options",
    "cut_words",
    "given_cut",
    "one_corpus_store",
    "open_corpus",
    "store_about",
]

#: The chunk options' settings, in the order messages name them.
#: The corpus path that means standard input.
STDIN = "-"
#: The copy of a corpus read from standard input, in the run folder.
STDIN_COPY = "corpus.txt"

_CUT = ("chunk_tokens", "chunk_lines", "overlap")


class ChunkOptions(TypedDict):
    """How to cut a corpus, as ``load_corpus`` takes it: exactly one of the two sizes is set."""

    chunk_tokens: int | None
    chunk_lines: int | None
    overlap: int


@attrs.frozen
class Corpus:
    """A corpus as a command opened it.

    Attributes:
        path: the text file the chunks were cut from (a copy of standard input for ``-``), or
            the store file when it does not say.
        chunks: the chunks, read from ``store`` or from a scratch store.
        options: how they were cut; ``None`` sizes when a store does not say.
        store: the store file kept across runs (named as the corpus, or ``--store``), else None.
        stdin: the copy of standard input (``-``) or of a pipe the chunks were cut from.
        warnings: what the command should print before it goes on.
    """

    path: str
    chunks: StoredChunks
    options: ChunkOptions
    store: Path | None = None
    stdin: Path | None = None
    warnings: tuple[str, ...] = ()


def chunk_options(args: argparse.Namespace, recorded: Mapping[str, Any] | None = None) -> ChunkOptions:
    """The chunk options the flags give; those not given come from ``recorded``, else defaults.

    ``recorded`` is a run's ``corpus.json``: when neither size flag is given, its unit and size
    are used, and its overlap unless ``--overlap`` is given (a recorded overlap is in the
    recorded unit, so a size flag drops it). The one check that spans flags, overlap against
    size, is made here so that its message names the flags.

    Raises:
        ConfigError: the overlap is not smaller than the chunk size.
    """
    tokens: int | None = args.chunk_tokens
    lines: int | None = args.chunk_lines
    overlap: int | None = args.overlap
    if recorded and tokens is None and lines is None:
        tokens, lines = recorded.get("chunk_tokens"), recorded.get("chunk_lines")
        if overlap is None:
            overlap = int(recorded.get("overlap") or 0)
    if overlap is None:
        overlap = 0
    defaulted = tokens is None and lines is None
    if defaulted:
        tokens = DEFAULT_CHUNK_TOKENS
    flag, size = ("--chunk-lines", lines) if lines is not None else ("--chunk-tokens", tokens)
    assert size is not None
    if overlap >= size:
        given = f"{flag} {size}" + (" (the default)" if defaulted else _origin(args, flag))
        raise ConfigError(
            f"--overlap {overlap}{_origin(args, '--overlap')} is not smaller than {given}, so "
            f"chunks could never move forward; lower --overlap below {size} or raise {flag}."
        )
    if lines is not None:
        tokens = None
    return ChunkOptions(chunk_tokens=tokens, chunk_lines=lines, overlap=overlap)


def _origin(args: argparse.Namespace, flag: str) -> str:
    """Where a chunk setting came from when not from its flag: `` (from PTCRUN_OVERLAP or the
    config file's [corpus] overlap)``, `` (the run's)`` for a run's ``corpus.json``, else ``""``."""
    setting = next(s for s in SETTINGS if s.flag == flag)
    if setting.dest in getattr(args, "from_flags", frozenset()) or not hasattr(args, "from_flags"):
        return ""
    if getattr(args, setting.dest) is None:
        return " (the run's, in its corpus.json)"
    return f" (from {setting.env} or the config file's {setting.where})"


def given_cut(args: argparse.Namespace) -> dict[str, int]:
    """The chunk options given as flags on this command line (not the environment's or the
    config file's, which are defaults for cutting a corpus, not a claim about a store)."""
    flags: frozenset[str] = getattr(args, "from_flags", frozenset())
    return {name: getattr(args, name) for name in _CUT if name in flags}


def cut_words(options: Mapping[str, Any]) -> str:
    """Chunk options as the flags that give them: ``--chunk-lines 100 --overlap 0``."""
    size = ("--chunk-lines", options.get("chunk_lines")) if options.get("chunk_lines") is not None \
        else ("--chunk-tokens", options.get("chunk_tokens"))
    return f"{size[0]} {size[1]} --overlap {options.get('overlap') or 0}"


# -- opening a corpus --------------------------------------------------------------------------


def open_corpus(
    path: str,
    options: ChunkOptions | Callable[[], ChunkOptions],
    *,
    flag: str,
    scratch: Scratch,
    given: Mapping[str, int] | None = None,
    keep: str | None = None,
    keep_flag: str = "--store",
    replace: bool = False,
) -> Corpus:
    """Open the corpus ``path`` names: a store file as it is; a text file (``-``: standard input)
    cut into ``keep`` (``--store``) or a scratch store.

    Args:
        path: the corpus: a UTF-8 text file, ``-``, or a store file.
        options: the cut for a text corpus, or what gives it, called only when the corpus is cut
            (the environment's settings may not even make a valid cut, and a store needs none).
        flag: how the command line names ``path`` (``CORPUS``, ``--data``), for messages.
        scratch: where a scratch store and a copy of standard input go.
        given: the chunk options given as flags; a store cut otherwise is refused.
        keep: ``--store``: the store to reuse, or to make when missing.
        keep_flag: how the command line names ``keep``, for messages.
        replace: cut the corpus into ``keep`` even when it is a store already (``store build``).

    Raises:
        ConfigError: as ``load_corpus`` does; a store that is damaged or was cut with other
            options than ``given``; a ``keep`` that was cut from other bytes, or does not say, or
            cannot be written; a corpus that changed while it was cut into ``keep``.
        Stopped: a SIGTERM or SIGHUP arrived meanwhile; what was being written is gone.
    """
    with stop_on_signals():
        return _open(path, options, flag=flag, scratch=scratch, given=dict(given or {}), keep=keep,
                     keep_flag=keep_flag, replace=replace)


def _open(
    path: str, options: ChunkOptions | Callable[[], ChunkOptions], *, flag: str, scratch: Scratch,
    given: dict[str, int], keep: str | None, keep_flag: str, replace: bool,
) -> Corpus:
    if path != STDIN and is_store(path):
        if keep is not None:
            raise ConfigError(
                f"{flag} {path!r} is already a corpus store, and --store FILE keeps the store a text "
                f"corpus is cut into; drop --store and run on {path!r} as it is."
            )
        return _on_store(path, given)
    if keep is not None:
        _check_keep(keep, keep_flag)
    cuts = keep is None or replace or not os.path.lexists(keep)
    cut = (options if isinstance(options, dict) else options()) if cuts else None
    source: Path
    stdin: Path | None = None
    digest: str | None = None
    copy_of: tuple[str, str] | None = None  # how messages name a corpus read into a copy
    if path == STDIN:
        stdin, digest = _copy_stdin(flag, scratch.folder())
        source, copy_of = stdin, ("the corpus on standard input", "standard input")
    elif _is_pipe(path):
        # A pipe (`<(zcat app.log.gz)`) can be read once: kept on disk as standard input is.
        stdin, digest = _copy_stream(path, scratch.folder())
        source, copy_of = stdin, (f"corpus file {path!r}", repr(path))
    else:
        source = Path(path)
    shown = copy_of[1] if copy_of is not None else repr(path)
    if keep is None:
        assert cut is not None
        target = scratch.folder() / "corpus.store"
        chunks = _cut(source, target, cut, None, copy_of=copy_of, cannot=scratch.cannot)
        return Corpus(path=str(source), chunks=chunks, options=cut, stdin=stdin)
    if cut is not None:
        about = store_about(source, cut, stdin=stdin is not None, digest=digest)
        made = _publish(source, keep, keep_flag, cut, about, copy_of=copy_of, replace=replace)
        if made is not None and _same_file(kept := StoredChunks(keep), made):
            return Corpus(path=str(source), chunks=kept, options=cut, store=Path(keep), stdin=stdin)
        # Another command made the store while this one cut the corpus (or replaced it since):
        # the store there is checked as any that exists, so no run reads a cut it did not ask for.
    store = _reuse(keep, source, shown, digest, given)
    return Corpus(path=str(source), chunks=store, options=_cut_of(store), store=Path(keep), stdin=stdin)


def _check_keep(keep: str, keep_flag: str) -> None:
    """Refuse a ``--store`` path that cannot be a store file, before anything is cut."""
    if not keep or keep.endswith(("/", os.sep)):
        what = "is empty" if not keep else "ends in a slash, so it names a folder"
        raise ConfigError(f"{keep_flag} {keep!r} {what}; pass {keep_flag} the path of a store file.")
    if os.path.isdir(keep):
        raise ConfigError(f"{keep_flag} {keep!r} is a directory; pass {keep_flag} the path of a store file.")
    if os.path.lexists(keep) and not is_store(keep):
        # The corpus given as its own store, or two paths the wrong way round: never overwritten.
        raise ConfigError(
            f"{keep_flag} {keep!r} exists and is not a corpus store; nothing was written. Pass "
            f"{keep_flag} a new path, or delete the file first if it is yours to replace."
        )
    folder = Path(keep).parent
    if not folder.is_dir():
        raise ConfigError(
            f"{keep_flag} {keep!r} cannot be written: the folder {str(folder)!r} does not exist; make "
            f"it first, or pass {keep_flag} a path in a folder that exists."
        )


def _publish(
    source: Path, keep: str, keep_flag: str, options: ChunkOptions, about: dict[str, Any], *,
    copy_of: tuple[str, str] | None, replace: bool,
) -> StoredChunks | None:
    """Cut source into the store keep, under another name first, and give it its name only once
    it is whole and the corpus did not change meanwhile; return it, opened. Unless ``replace``, a
    store another command made in the meantime is left as it is: then ``None``.

    Raises:
        ConfigError: as ``_cut``; keep cannot be written, naming ``keep_flag`` and the fix.
    """
    target = Path(keep)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")

    def cannot(exc: OSError) -> ConfigError:
        return ConfigError(
            f"{keep_flag} {keep!r} cannot be written: {os_error_reason(exc)}; nothing was kept. Pass "
            f"{keep_flag} a path on a disk you can write to with room for the store (about the "
            f"corpus's size)."
        )

    try:
        remove_leftovers(target)
        discard(part)  # left by a killed command of the same id: never reused
        made = _cut(source, part, options, about, copy_of=copy_of, cannot=cannot)
        if replace:
            os.replace(part, target)
            return made
        try:
            os.link(part, target)  # unlike a rename, never replaces what another command made
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if os.path.lexists(target):
                return None
            os.replace(part, target)
        return made
    except OSError as exc:
        raise cannot(exc) from None
    finally:
        discard(part)


def _same_file(one: StoredChunks, other: StoredChunks) -> bool:
    """Whether two opened stores are the one file (not one replaced by another since)."""
    a, b = os.fstat(one.file_descriptor()), os.fstat(other.file_descriptor())
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


#: The errors of a file system that makes no hard links.
_NO_LINKS = frozenset(
    code for code in (getattr(errno, n, None) for n in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK"))
    if code is not None
)


def _cut(
    source: Path, target: Path, options: ChunkOptions, about: dict[str, Any] | None, *,
    copy_of: tuple[str, str] | None, cannot: Callable[[OSError], ConfigError],
) -> StoredChunks:
    """Cut source into a store at target; a source that changes while it is cut is refused.
    ``copy_of`` names what source is a copy of (the words for ``corpus file 'PATH'`` and for
    ``'PATH'``); ``cannot`` words a failure to write the store for the command line."""
    try:
        store = build_store(source, target, **options, about=about)
    except ConfigError as exc:
        if isinstance(exc, StoreWriteError) and isinstance(exc.__cause__, OSError):
            raise cannot(exc.__cause__) from None
        if copy_of is None:
            raise
        message = str(exc).replace(f"corpus file {str(source)!r}", copy_of[0])
        raise ConfigError(message.replace(repr(str(source)), copy_of[1])) from None
    if about is not None and _stat(source) != (about["corpus"]["bytes"], about["corpus"]["mtime_ns"]):
        target.unlink(missing_ok=True)
        raise ConfigError(
            f"corpus file {str(source)!r} changed while it was cut into a store, so the store "
            f"would hold neither the old text nor the new, and none was kept; cut it again when "
            f"nothing writes to it (or cut a copy)."
        )
    return store


def store_about(
    source: Path, options: ChunkOptions, *, stdin: bool = False, digest: str | None = None
) -> dict[str, Any]:
    """What a kept store records of its source: the file, its size, time and SHA-256, the cut."""
    size, mtime = _stat(source)
    return {
        "corpus": {
            "path": None if stdin else str(source.resolve()),
            "bytes": size,
            "mtime_ns": mtime,
            "sha256": digest if digest is not None else _file_sha256(source),
        },
        "cut": dict(options),
    }


def _stat(source: Path) -> tuple[int, int]:
    try:
        info = source.stat()
    except OSError:
        return (-1, -1)  # build_store names what is wrong with the file
    return (info.st_size, info.st_mtime_ns)


def _file_sha256(source: Path) -> str:
    try:
        with open(source, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return ""  # build_store names what is wrong with the file


def _copy_stdin(flag: str, folder: Path) -> tuple[Path, str]:
    """Standard input, copied to a file in folder a block at a time; the copy and its SHA-256."""
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError(
            f"{flag} - reads the corpus from standard input, but standard input is a terminal; "
            f"pipe the text in (cat app.log | ptcrun ...) or pass a file."
        )
    return _copied(sys.stdin.buffer, "standard input", folder)


def _is_pipe(path: str) -> bool:
    """Whether path is a pipe or another file that is read once (not a regular file)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing or unreadable: cutting it says which
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _copy_stream(path: str, folder: Path) -> tuple[Path, str]:
    """The pipe at path, copied to a file in folder; the copy and its SHA-256."""
    try:
        with open(path, "rb") as stream:
            return _copied(stream, repr(path), folder)
    except OSError as exc:
        raise ConfigError(
            f"corpus file {path!r} cannot be read: {os_error_reason(exc)}; check the command that "
            f"writes it, or pass a file."
        ) from None


def _copied(stream: BinaryIO, what: str, folder: Path) -> tuple[Path, str]:
    copy = folder / STDIN_COPY
    digest = hashlib.sha256()
    try:
        with open(copy, "wb") as out:
            while block := stream.read(1 << 20):
                digest.update(block)
                out.write(block)
    except OSError as exc:
        raise ConfigError(
            f"{what} cannot be kept in {folder.parent}: {os_error_reason(exc)}; use a folder "
            f"with room for the corpus."
        ) from None
    return copy, digest.hexdigest()


def one_corpus_store(path: str, flag: str) -> StoredChunks:
    """The store at path, of one corpus (a store of named datasets is for Python)."""
    store = open_store(path)
    if not isinstance(store, StoredChunks):
        raise ConfigError(
            f"{flag} {path!r} holds named datasets ({', '.join(map(repr, store))}), and the command "
            f"line runs one corpus; run it from Python (Runtime.run(goal, ptcrun.open_store(path))) "
            f"or build a store of one corpus with `ptcrun store build`."
        )
    return store


def _cut_of(store: StoredChunks) -> ChunkOptions:
    """The chunk options a store records, or ``None`` sizes when it does not say."""
    cut = (store.about or {}).get("cut")
    if isinstance(cut, dict) and all(cut.get(k) is None or type(cut.get(k)) is int for k in _CUT):
        return ChunkOptions(chunk_tokens=cut.get("chunk_tokens"), chunk_lines=cut.get("chunk_lines"),
                            overlap=int(cut.get("overlap") or 0))
    return ChunkOptions(chunk_tokens=None, chunk_lines=None, overlap=0)


def _source_of(store: StoredChunks) -> dict[str, Any] | None:
    source = (store.about or {}).get("corpus")
    if (isinstance(source, dict) and type(source.get("bytes")) is int
            and isinstance(source.get("sha256"), str)):
        return source
    return None


def _check_cut(store: StoredChunks, given: Mapping[str, int], flag: str) -> None:
    """Refuse chunk flags that say another cut than the one the store holds."""
    if not given:
        return
    cut = _cut_of(store)
    shown = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in given.items())
    if cut["chunk_tokens"] is None and cut["chunk_lines"] is None:
        raise ConfigError(
            f"{flag} {store.path!r} does not record how its chunks were cut (it was not written by "
            f"`ptcrun store build`), so {shown} cannot be checked against it; drop the chunk flags."
        )
    if any(cut.get(k) != v for k, v in given.items()):
        raise ConfigError(
            f"{flag} {store.path!r} was cut with {cut_words(cut)}, but {shown} was given; drop the "
            f"chunk flags to use the store as it was cut, or cut the corpus again with them "
            f"(`ptcrun store build CORPUS NEW_STORE {shown}`)."
        )


def _on_store(path: str, given: Mapping[str, int]) -> Corpus:
    """A store file named as the corpus: its chunks as they were cut, the file it came from."""
    flag = "corpus store"
    store = one_corpus_store(path, flag)
    _check_cut(store, given, flag)
    source = _source_of(store)
    warnings = []
    recorded = source.get("path") if source is not None else None
    origin = recorded if isinstance(recorded, str) else path
    if source is not None and isinstance(recorded, str) and os.path.isfile(recorded) \
            and _stat(Path(recorded)) != (source["bytes"], source.get("mtime_ns")):
        warnings.append(
            f"corpus store {path!r} was cut from {recorded!r}, which has changed since (its size or "
            f"time differ); this command reads the chunks as they were cut then. Cut the file again "
            f"(`ptcrun store build {shlex.quote(recorded)} {shlex.quote(path)}`) to read it as it is "
            f"now."
        )
    return Corpus(path=origin, chunks=store, options=_cut_of(store), store=Path(path).resolve(),
                  warnings=tuple(warnings))


def _reuse(
    keep: str, source: Path, shown: str, digest: str | None, given: Mapping[str, int]
) -> StoredChunks:
    """``--store FILE`` that exists: its chunks, once it is proven cut from these bytes this way."""
    alone = f"ptcrun run {shlex.quote(keep)} ..."
    store = one_corpus_store(keep, "--store")
    recorded = _source_of(store)
    if recorded is None:
        raise ConfigError(
            f"--store {keep!r} does not record the corpus it was cut from (it was not written by "
            f"`ptcrun store build` or `ptcrun run --store`), so it cannot be checked against "
            f"{shown}; run on the store itself ({alone}) or pass --store a new path."
        )
    # Only flags are checked: the environment's and the config file's chunk options are
    # defaults for new cuts, and the store's own cut stands.
    _check_cut(store, given, "--store")
    if source.is_dir():
        raise ConfigError(
            f"corpus path {str(source)!r} is a directory, not a file; pass the corpus file --store "
            f"{keep!r} was cut from, or run on the store alone ({alone})."
        )
    if not source.is_file():
        raise ConfigError(
            f"corpus file {str(source)!r} does not exist; check the path, or run on the store "
            f"alone ({alone})."
        )
    size, _ = _stat(source)
    if size == recorded["bytes"] and digest is None:
        try:
            with open(source, "rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError as exc:
            raise ConfigError(
                f"corpus file {str(source)!r} cannot be read to check it against --store {keep!r}: "
                f"{os_error_reason(exc)}; check the file, or run on the store alone ({alone})."
            ) from None
    if size != recorded["bytes"] or digest != recorded["sha256"]:
        was = recorded.get("path") or "standard input or a pipe"
        raise ConfigError(
            f"the corpus on {shown} is not the one --store {keep!r} was cut from ({was!s}, "
            f"{recorded['bytes']:,} bytes): its bytes differ. Delete the store to cut the corpus "
            f"again, pass --store a new path, or run on the store alone ({alone}) "
            f"for the corpus as it was."
        )
    return store


# -- corpus.json -------------------------------------------------------------------------------
