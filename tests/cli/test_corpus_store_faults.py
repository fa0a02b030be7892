"""The corpus store from the command line when things go wrong by accident: ``--store`` given a
path that is not a store file to keep, a disk that is full or read-only, two commands making the
same store at once, a store shared with other users. The store a run reads is always the one its
flags ask for, and a failure names the flag or argument to change and leaves no file behind."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ptcrun.cli import EXIT_CODES
from ptcrun.cli import _corpus as cli_corpus
from ptcrun.corpus import _writer
from ptcrun.corpus._store import StoredChunks

from ..clirun import run_cli
from .test_cli import LOG
from .test_corpus_store import ANSWER, answer, files, run

__all__ = ["files"]  # the fixture, used by name


def leftovers(folder: Path) -> list[str]:
    """Files a command may leave behind by mistake: partial stores and scratch folders."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


# -- --store given a path that is not a store to keep ----------------------------------------


def test_store_naming_the_corpus_itself_is_refused_naming_store_and_the_corpus_survives(files):
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(files / "app.log")))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(files / 'app.log')!r} exists and is not a corpus store" in err
    assert "Pass --store a new path" in err
    assert (files / "app.log").read_text() == LOG


def test_store_naming_a_folder_is_refused_naming_store(files):
    (files / "stores").mkdir()
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(files / "stores")))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(files / 'stores')!r} is a directory" in err
    assert "--store the path of a store file" in err
    assert list((files / "stores").iterdir()) == []


def test_store_in_a_folder_that_does_not_exist_is_refused_naming_store(files):
    store = files / "nowhere" / "app.store"
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(store)!r} cannot be written" in err
    assert "pass --store" in err


# -- full and read-only disks ----------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """A disk that fills up while a store's text is written."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_writer, "_write_text", full)


def test_a_full_disk_under_store_names_store_and_leaves_no_file(files, full_disk):
    store = files / "app.store"
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(store)!r} cannot be written: the disk is full" in err
    assert ".part" not in err and ".ptcrun-store-" not in err
    assert not store.exists() and leftovers(files) == []


def test_a_full_disk_under_store_build_names_store_not_a_temporary_file(files, full_disk):
    store = files / "app.store"
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(store)])
    assert code == EXIT_CODES["config"]
    assert f"STORE {str(store)!r} cannot be written: the disk is full" in err
    assert ".part" not in err and ".ptcrun-store-" not in err
    assert not store.exists() and leftovers(files) == []


def test_a_full_disk_under_out_names_out(files, full_disk):
    code, _, err = run_cli(run(files, files / "app.log"))
    assert code == EXIT_CODES["config"]
    assert f"--out {str(files / 'runs')!r}" in err and "the disk is full" in err
    assert ".ptcrun-corpus-" not in err and ".ptcrun-store-" not in err
    assert leftovers(files / "runs") == []


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read only, as a read-only mount is (root writes anywhere else)."""
    folders: list[str] = []
    real_open, real_unlink = os.open, os.unlink

    def inside(path: object) -> bool:
        return any(os.path.abspath(os.fspath(path)).startswith(f + os.sep) for f in folders)  # type: ignore[arg-type]

    def opening(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and inside(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def unlinking(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "unlink", unlinking)
    return lambda folder: folders.append(os.path.abspath(folder))


def test_store_build_on_a_read_only_disk_says_so_naming_store(files, read_only):
    (files / "ro").mkdir()
    read_only(files / "ro")
    store = files / "ro" / "app.store"
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(store)])
    assert code == EXIT_CODES["config"], err
    assert f"STORE {str(store)!r} cannot be written: it is on a read-only file system" in err
    assert "Traceback" not in err


def test_run_store_on_a_read_only_disk_says_so_naming_store(files, read_only):
    (files / "ro").mkdir()
    read_only(files / "ro")
    store = files / "ro" / "app.store"
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"], err
    assert f"--store {str(store)!r} cannot be written: it is on a read-only file system" in err


# -- two commands at once ---------------------------------------------------------------------


def race_with_another_cut(files, store, chunk_lines, monkeypatch):
    """Make another command's store, cut by ``chunk_lines``, land at ``store`` just as this
    command opens the store it made."""
    real_open = _writer.open_store
    raced: list[str] = []

    def racing(path):
        if not raced:
            raced.append(os.fspath(path))
            cut = {"chunk_tokens": None, "chunk_lines": chunk_lines, "overlap": 0}
            about = cli_corpus.store_about(files / "app.log", cut)  # type: ignore[arg-type]
            _writer.build_store(files / "app.log", files / "other.store", **cut, about=about)
            os.replace(files / "other.store", store)
        return real_open(path)

    monkeypatch.setattr(_writer, "open_store", racing)


def test_two_runs_making_the_same_store_at_once_each_read_the_cut_they_asked_for(files, monkeypatch):
    """Two `run --store X` at once on a missing X, with other chunk flags: whichever finishes
    cutting second must not run on the first one's chunks while it says its own cut."""
    store = files / "app.store"
    # The other command finishes its cut (by lines of 12) just as this one finishes its own.
    race_with_another_cut(files, store, 12, monkeypatch)
    code, printed, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    if code == 0:
        result = json.loads(printed)
        assert result["answer"] == ANSWER  # the 6 chunks of 4 lines it asked for
        record = json.loads((Path(result["transcript"]).parent / "corpus.json").read_text())
        assert record["chunk_lines"] == 4 and record["chunks"] == 6
    else:
        assert code == EXIT_CODES["config"]
        assert "was cut with --chunk-lines 12 --overlap 0, but --chunk-lines 4 was given" in err
    assert len(StoredChunks(store)) == 2  # the store made first stands
    assert leftovers(files) == []


def test_a_second_run_making_the_same_store_reuses_the_first_ones_when_it_matches(files, monkeypatch):
    store = files / "app.store"
    race_with_another_cut(files, store, 4, monkeypatch)
    assert answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))["answer"] == ANSWER
    assert leftovers(files) == []


# -- a store kept for others ------------------------------------------------------------------


def test_a_store_is_readable_as_the_umask_allows_like_any_file_the_user_writes(files):
    old = os.umask(0o022)
    try:
        run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
        answer(run_cli(run(files, files / "app.log", "--store", str(files / "kept.store"))))
    finally:
        os.umask(old)
    assert (files / "app.store").stat().st_mode & 0o777 == 0o644
    assert (files / "kept.store").stat().st_mode & 0o777 == 0o644


# -- resuming a run ---------------------------------------------------------------------------


def test_a_resume_cuts_the_corpus_as_the_run_did_whatever_the_environment_says(files, monkeypatch):
    first = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4")))
    folder = str(Path(first["transcript"]).parent)
    monkeypatch.setenv("PTCRUN_CHUNK_LINES", "12")  # a default for new runs, not for this one
    resumed = answer(run_cli(run(files, files / "app.log", "--resume", folder)))
    assert resumed["answer"] == ANSWER and resumed["replayed"]
    record = json.loads((Path(resumed["transcript"]).parent / "corpus.json").read_text())
    assert record["chunk_lines"] == 4


def test_a_resume_with_chunk_flags_of_another_cut_is_refused(files):
    first = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4")))
    folder = str(Path(first["transcript"]).parent)
    code, _, err = run_cli(run(files, files / "app.log", "--chunk-lines", "12", "--resume", folder))
    assert code == EXIT_CODES["config"]
    assert "gives 2 chunks cut with --chunk-lines 12 --overlap 0, but the run --resume" in err
    assert "read 6 chunks cut with --chunk-lines 4 --overlap 0" in err and "drop the chunk flags" in err
    (files / "app.log").write_text(LOG.replace("ERROR", "error", 1))  # same size, other text
    code, _, err = run_cli(run(files, files / "app.log", "--resume", folder))
    assert code == EXIT_CODES["config"]
    assert "gives 6 chunks cut with --chunk-lines 4 --overlap 0 of other text" in err
    assert f"pass the text the run read ({files / 'app.log'})" in err


# -- stopped while cutting ------------------------------------------------------------------------


class ReachedDefault(BaseException):
    """SIGTERM reached the handler the command found: without one of its own, it would kill
    the process there and then, leaving the half-written store on disk."""


@pytest.fixture
def terminated_while_cutting(monkeypatch):
    """A SIGTERM (timeout, docker stop, systemd) that arrives while a store's text is written."""
    def found(signum, frame):
        raise ReachedDefault()

    previous = signal.signal(signal.SIGTERM, found)
    real = _writer._write_text

    def write(out, index, name, chunks):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(out, index, name, chunks)

    monkeypatch.setattr(_writer, "_write_text", write)
    yield found
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("command", ["store build", "run --store", "run"])
def test_a_sigterm_while_cutting_stops_as_ctrl_c_does_and_leaves_no_file(files, terminated_while_cutting, command):
    store = files / "app.store"
    argv = {
        "store build": ["store", "build", str(files / "app.log"), str(store)],
        "run --store": run(files, files / "app.log", "--store", str(store)),
        "run": run(files, files / "app.log"),
    }[command]
    code, _, err = run_cli(argv)
    assert code == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    assert not store.exists() and leftovers(files) == []
    assert not (files / "runs").exists() or leftovers(files / "runs") == []
    assert signal.getsignal(signal.SIGTERM) is terminated_while_cutting  # the one it found, back


# -- the environment's chunk settings ---------------------------------------------------------


def test_an_environment_cut_that_could_not_cut_does_not_stop_a_run_on_a_store(files, monkeypatch):
    store = files / "app.store"
    answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))
    monkeypatch.setenv("PTCRUN_OVERLAP", "5000")  # larger than any chunk: a cut would be refused
    assert answer(run_cli(run(files, store)))["answer"] == ANSWER
    assert answer(run_cli(run(files, files / "app.log", "--store", str(store))))["answer"] == ANSWER
    code, _, err = run_cli(run(files, files / "app.log"))  # this one cuts: refused
    assert code == EXIT_CODES["config"] and "is not smaller than" in err


# -- a folder where a file is expected ------------------------------------------------------------


def test_a_folder_given_as_the_corpus_of_a_store_or_as_a_store_is_called_a_folder(files):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store)])
    (files / "logs").mkdir()
    code, _, err = run_cli(run(files, files / "logs", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert "is a directory" in err and "does not exist" not in err
    code, _, err = run_cli(["store", "info", str(files / "logs")])
    assert code == EXIT_CODES["config"]
    assert f"STORE {str(files / 'logs')!r} is a directory" in err


def test_a_store_is_made_on_a_disk_that_makes_no_hard_links(files, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = files / "app.store"
    assert answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))["answer"] == ANSWER
    assert len(StoredChunks(store)) == 6 and leftovers(files) == []


def test_a_cut_the_environment_makes_impossible_names_the_variable(files, monkeypatch):
    monkeypatch.setenv("PTCRUN_OVERLAP", "5000")
    code, _, err = run_cli(run(files, files / "app.log"))
    assert code == EXIT_CODES["config"]
    assert "--overlap 5000 (from PTCRUN_OVERLAP or the config file's [corpus] overlap) is not smaller" in err
    code, _, err = run_cli(run(files, files / "app.log", "--overlap", "5000"))
    assert "--overlap 5000 is not smaller than --chunk-tokens 4000 (the default)" in err


def test_store_info_of_a_store_of_named_datasets_says_what_it_holds(files):
    from ptcrun import write_store

    write_store(files / "named.store", {"errors": ["a", "b"], "warnings": ["c"]})
    code, _, err = run_cli(["store", "info", str(files / "named.store")])
    assert code == EXIT_CODES["config"]
    assert "holds named datasets ('errors', 'warnings')" in err and "None" not in err


# -- a pipe as the corpus ---------------------------------------------------------------------


@pytest.fixture
def pipe(files):
    """A named pipe a writer feeds the log into, as `<(zcat app.log.gz)` does; a reader that
    opens it again after the writer is done gets an end of file, never a hang."""
    path = files / "app.pipe"
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "wb") as out:
            out.write(LOG.encode())
        for _ in range(100):  # let a second reader see the end rather than wait for ever
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            time.sleep(0.05)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return path


@pytest.mark.parametrize("keep", [False, True])
def test_a_pipe_as_the_corpus_is_read_whole_once(files, pipe, keep):
    extra = ["--store", str(files / "app.store")] if keep else []
    result = answer(run_cli(run(files, pipe, "--chunk-lines", "4", *extra)))
    assert result["answer"] == ANSWER
    folder = Path(result["transcript"]).parent
    assert (folder / "corpus.txt").read_text() == LOG  # kept, as the pipe cannot be read again
    assert json.loads((folder / "corpus.json").read_text())["path"] == str(folder / "corpus.txt")


def test_store_build_from_a_pipe(files, pipe):
    code, out, err = run_cli(["store", "build", str(pipe), str(files / "app.store"), "--chunk-lines", "4"])
    assert code == 0, err
    assert f"6 chunks cut from {pipe}" in out
    assert len(StoredChunks(files / "app.store")) == 6
    assert answer(run_cli(run(files, files / "app.store")))["answer"] == ANSWER


@pytest.mark.parametrize("store", ["", "new.store/"])
def test_a_store_path_that_names_no_file_is_refused_naming_the_flag(files, store):
    code, _, err = run_cli(run(files, files / "app.log", "--store", store))
    assert code == EXIT_CODES["config"], err
    assert f"--store {store!r}" in err and "pass --store the path of a store file" in err
    code, _, err = run_cli(["store", "build", str(files / "app.log"), store])
    assert code == EXIT_CODES["config"], err
    assert f"STORE {store!r}" in err and "pass STORE the path of a store file" in err
    assert sorted(p.name for p in files.iterdir() if "store" in p.name) == []


def test_a_resume_on_a_store_rebuilt_since_names_both_cuts(files):
    store = files / "app.store"
    first = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))
    folder = str(Path(first["transcript"]).parent)
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "12"])
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store), "--resume", folder))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(store)!r} gives 2 chunks cut with --chunk-lines 12 --overlap 0" in err
    assert "read 6 chunks cut with --chunk-lines 4 --overlap 0" in err
    assert "--store NEW_PATH" in err
    # As the fix says: a new store is cut as the run was, and the run goes on.
    resumed = answer(run_cli(run(files, files / "app.log", "--store", str(files / "new.store"), "--resume", folder)))
    assert resumed["answer"] == ANSWER and resumed["replayed"]


# -- what kill -9 leaves ----------------------------------------------------------------------


def test_the_partial_stores_of_killed_commands_are_removed_and_those_of_live_ones_kept(files):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its id is now free: a command with it was killed (kill -9, the OOM killer)
    live = os.getppid()
    for pid in (gone.pid, live):
        (files / f".ptcrun-store-{pid}-0123456789abcdef").write_bytes(b"half a store")
        (files / f".app.store.{pid}.part").write_bytes(b"half a store")
    (files / ".other.store.12.part").write_bytes(b"another store's: not this command's to judge")
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
    assert code == 0, err
    assert leftovers(files) == sorted(
        [f".ptcrun-store-{live}-0123456789abcdef", f".app.store.{live}.part", ".other.store.12.part"]
    )


def test_the_commands_messages_suggest_run_as_typed_for_paths_with_spaces(files):
    store = files / "my app.store"
    code, out, err = run_cli(["store", "build", str(files / "app.log"), str(store)])
    assert code == 0, err
    assert f"ptcrun run '{store}' --goal" in out
    (files / "app.log").write_text(LOG.replace("ERROR", "error", 1))
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"] and f"(ptcrun run '{store}' ...)" in err


def test_a_corpus_that_cannot_be_read_is_not_called_another_corpus(files, monkeypatch):
    store = files / "app.store"
    answer(run_cli(run(files, files / "app.log", "--store", str(store))))

    def failing(file, digest):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(hashlib, "file_digest", failing)  # the disk fails as the corpus is read
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert f"corpus file {str(files / 'app.log')!r} cannot be read to check it against --store" in err
    assert "the disk reported an I/O error" in err and "bytes differ" not in err


def test_a_store_replaced_just_after_it_was_made_is_checked_not_trusted(files, monkeypatch):
    store = files / "app.store"
    real_link = os.link

    def link_then_rebuilt(source, target, *args, **kwargs):
        real_link(source, target, *args, **kwargs)
        # `ptcrun store build app.log app.store --chunk-lines 12`, run at that very moment
        cut = {"chunk_tokens": None, "chunk_lines": 12, "overlap": 0}
        about = cli_corpus.store_about(files / "app.log", cut)  # type: ignore[arg-type]
        _writer.build_store(files / "app.log", files / "other.store", **cut, about=about)
        os.replace(files / "other.store", target)

    monkeypatch.setattr(os, "link", link_then_rebuilt)
    code, _, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert "was cut with --chunk-lines 12 --overlap 0, but --chunk-lines 4 was given" in err
