"""Disks that fill, turn read-only or fail: the run goes on, and what was written stays readable.

Two ways in. Where the machine allows it (root, and ``mount`` works), a real 128 KiB tmpfs fills
up under a real ``ptcrun run``, and a tmpfs mounted read-only stands for a read-only disk. Every
machine runs the rest: the transcript file is swapped (``ptcrun.transcript._events.FileIO``)
for one whose writes fail with ``OSError(ENOSPC | EROFS | EIO)`` after a number of bytes, cutting
the last write short as a full disk does. A read-only disk cannot be made to appear under a file
that is open for writing (Linux refuses to remount such a mount read-only), so a mid-run EROFS is
simulated only.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ptcrun import Limits, Runtime, ScriptedProvider, Transcript
from ptcrun.cli import EXIT_CODES
from ptcrun.errors import ConfigError
from ptcrun.transcript import _events

from ..clirun import run_cli
from .conftest import assert_ends, block, events_of, transcript_of

PROGRAMS = [
    block("counts = pmap(lambda c: tool.worker(c, 'Count ERROR.'), data)\nprint(counts)"),
    block("done(sum(int(c) for c in counts))"),
]
CHUNKS = [f"line {i} ERROR" for i in range(12)]


class FailingFile:
    """A transcript file on a disk that fails: after ``room`` bytes every write raises
    ``OSError(code)``, the write that crosses the line being cut short first."""

    def __init__(self, path: Any, mode: str, room: float, code: int) -> None:
        self.real = io.FileIO(path, mode)
        self.room = room
        self.code = code

    def write(self, data: Any) -> int:
        if self.room <= 0:
            raise OSError(self.code, os.strerror(self.code))
        data = bytes(data)[: int(min(len(data), self.room))]
        written = self.real.write(data)
        self.room -= written
        return written

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


class Disk:
    """The failing disk transcripts are written to: its room and its error, and the files."""

    def __init__(self) -> None:
        self.room: float = 3_000
        self.code = errno.ENOSPC
        self.files: list[FailingFile] = []

    def open(self, path: Any, mode: str) -> FailingFile:
        self.files.append(FailingFile(path, mode, self.room, self.code))
        return self.files[-1]


@pytest.fixture
def failing_disk(monkeypatch) -> Disk:
    """Transcripts opened meanwhile fail after 3,000 bytes with ENOSPC, unless told otherwise."""
    disk = Disk()
    monkeypatch.setattr(_events, "FileIO", disk.open)
    return disk


def run(tmp_path: Path, observers=()) -> Any:
    rt = Runtime(
        planner=ScriptedProvider(PROGRAMS),
        worker=ScriptedProvider(["1"]),
        limits=Limits(max_concurrency=4),
        transcript_dir=tmp_path,
        observers=observers,
    )
    return rt.run("How many ERROR lines?", CHUNKS)


def test_a_full_disk_mid_run_keeps_the_run_and_a_readable_transcript(tmp_path, failing_disk):
    seen: list[dict] = []
    result = run(tmp_path, observers=[seen.append])
    assert result.status == "done" and result.answer == 12
    (warning,) = result.warnings
    written = events_of(transcript_of(tmp_path))  # whole lines only: the torn write was cut off
    assert warning.startswith(f"transcript incomplete: writing {result.transcript} failed after "
                              f"{len(written):,} events (the disk is full: No space left on device)")
    assert "free space on that disk" in warning
    assert written == seen[: len(written)]  # a prefix of the run, nothing out of order
    assert seen[-1]["type"] == "run.end" and seen[-1]["status"] == "done"  # observers got it all
    assert Transcript.load(result.transcript).status == "incomplete"


def test_space_that_comes_back_lets_the_transcript_catch_up(tmp_path, failing_disk):
    seen: list[dict] = []

    def free_space_later(event: dict) -> None:
        seen.append(event)
        if len(seen) == 60:
            failing_disk.files[0].room = float("inf")

    result = run(tmp_path, observers=[free_space_later])
    assert result.status == "done" and result.warnings == ()
    written = events_of(transcript_of(tmp_path))
    assert written == seen  # every event, in order: the ones that waited were written late
    assert_ends(written, "done")


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.EROFS, "it is on a read-only file system"), (errno.EIO, "the disk reported an I/O error")],
    ids=["EROFS", "EIO"],
)
def test_a_read_only_or_failing_disk_stops_the_transcript_not_the_run(tmp_path, failing_disk, code, reason):
    failing_disk.code = code
    result = run(tmp_path)
    assert result.status == "done" and result.answer == 12
    (warning,) = result.warnings
    assert f"({reason}: " in warning and "check that disk" in warning
    events_of(transcript_of(tmp_path))  # readable, whole lines


def test_a_backlog_past_its_bound_stops_the_transcript(tmp_path, failing_disk, monkeypatch):
    monkeypatch.setattr(_events, "MAX_BACKLOG_BYTES", 2_000)
    result = run(tmp_path)
    assert result.status == "done"
    assert "the disk is full" in result.warnings[0]
    events_of(transcript_of(tmp_path))


# -- real file systems -------------------------------------------------------------------------


def _mount_tmpfs(target: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def small_tmpfs(tmp_path) -> Iterator[Path]:
    """A real 128 KiB file system (skipped where mount is not allowed)."""
    target = tmp_path / "small"
    if not _mount_tmpfs(target, "size=128k"):
        pytest.skip("mounting a tmpfs needs root and a system that allows mount")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch) -> Path:
    """A read-only folder: a read-only tmpfs where mount works, otherwise a simulated one."""
    target = tmp_path / "ro"
    if _mount_tmpfs(target, "size=64k,ro"):
        yield target
        subprocess.run(["umount", "-l", str(target)], check=False)
        return
    real_mkdir = Path.mkdir

    def read_only_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == target or target in self.parents:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    yield target


def test_cli_run_on_a_disk_that_fills_up_exits_with_its_status_and_says_so(tmp_path, small_tmpfs):
    (tmp_path / "big.log").write_text("".join(f"line {i} ERROR {'x' * 200}\n" for i in range(300)))
    (tmp_path / "planner.json").write_text(json.dumps(PROGRAMS))
    (tmp_path / "worker.py").write_text("def respond(request):\n    return '1'\n")
    argv = [
        "run", str(tmp_path / "big.log"), "--goal", "Count.", "--chunk-lines", "1", "--quiet",
        "--planner", f"scripted:{tmp_path / 'planner.json'}", "--worker", f"scripted:{tmp_path / 'worker.py'}",
        "--out", str(small_tmpfs / "runs"),
    ]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == EXIT_CODES["done"], done.stderr
    assert "answer:\n300" in done.stdout
    assert "(incomplete)" in done.stdout
    assert "ptcrun: warning: transcript incomplete: " in done.stderr
    assert "(the disk is full: No space left on device)" in done.stderr
    assert "Traceback" not in done.stderr
    path = transcript_of(small_tmpfs / "runs")
    events_of(path)  # every line whole
    # Written when the run started, before the disk filled up: whole, never half-written.
    assert json.loads((path.parent / "corpus.json").read_text())["chunks"] == 300
    code, out, _ = run_cli(["show", str(path)])
    assert code == EXIT_CODES["done"] and "turn 1" in out


def test_cli_out_on_a_read_only_disk_is_a_config_error(tmp_path, read_only_dir):
    (tmp_path / "c.log").write_text("ERROR\n")
    code, _, err = run_cli(["run", str(tmp_path / "c.log"), "--goal", "g", "--out", str(read_only_dir / "runs")])
    assert code == EXIT_CODES["config"]
    assert err.startswith(f"ptcrun: --out {str(read_only_dir / 'runs')!r} cannot hold run folders: it is on "
                          f"a read-only file system")
    assert err.rstrip().endswith("pass --out a folder you can write to.")


def test_transcript_dir_on_a_read_only_disk_is_a_config_error(read_only_dir):
    rt = Runtime(planner=ScriptedProvider([block("done(1)")]), transcript_dir=read_only_dir / "runs")
    with pytest.raises(ConfigError, match=r"transcript_dir=.* cannot hold transcripts: it is on a read-only "
                                          r"file system .*Pass transcript_dir= a folder you can write to, or None"):
        rt.run("Anything.", ["a chunk"])


def test_out_naming_a_regular_file_is_a_config_error(tmp_path):
    (tmp_path / "c.log").write_text("ERROR\n")
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["run", str(tmp_path / "c.log"), "--goal", "g", "--out", str(tmp_path / "afile")])
    assert code == EXIT_CODES["config"]
    assert "--out" in err and "a file is in the way" in err and "pass --out a folder" in err
    rt = Runtime(planner=ScriptedProvider([block("done(1)")]), transcript_dir=tmp_path / "afile")
    with pytest.raises(ConfigError, match=r"transcript_dir=.*afile' cannot hold transcripts: a file is in the way"):
        rt.run("Anything.", ["a chunk"])


def test_out_without_permission_is_a_config_error(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root ignores modes: refuse the way a locked folder would
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

        monkeypatch.setattr(_events.Path, "mkdir", refuse)
        monkeypatch.setattr("ptcrun.cli._run.tempfile.TemporaryFile", refuse)
    else:
        locked.chmod(0o500)
    (tmp_path / "c.log").write_text("ERROR\n")
    code, _, err = run_cli(["run", str(tmp_path / "c.log"), "--goal", "g", "--out", str(locked)])
    assert code == EXIT_CODES["config"]
    assert "--out" in err and "permission denied" in err
    rt = Runtime(planner=ScriptedProvider([block("done(1)")]), transcript_dir=locked)
    with pytest.raises(ConfigError, match=r"transcript_dir=.* cannot hold transcripts: permission denied"):
        rt.run("Anything.", ["a chunk"])


def test_a_torn_line_that_cannot_be_cut_off_stays_the_last(tmp_path, failing_disk, monkeypatch):
    def cannot_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_events.os, "ftruncate", cannot_truncate)
    seen: list[dict] = []

    def free_space_later(event: dict) -> None:
        seen.append(event)
        if len(seen) == 60:
            failing_disk.files[0].room = float("inf")

    result = run(tmp_path, observers=[free_space_later])
    assert result.status == "done"
    assert "the disk is full" in result.warnings[0]
    transcript = Transcript.load(result.transcript)  # the torn last line is dropped, no error
    assert transcript.damaged_tail
    assert list(transcript.events) == seen[: len(transcript.events)]
