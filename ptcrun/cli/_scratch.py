"""Where a command cuts a scratch store, and the clean-up of what killed commands left behind.

A store is as large as its corpus. A command's scratch store lives in a hidden folder beside the
run folders (:class:`Scratch`), not in the system's temporary folder, which is often held in
memory, and goes when the command ends. A command killed before its clean-up (``kill -9``, the
out-of-memory killer) leaves its folder, or a half-written ``--store`` file, behind: their names
hold the process id, so the next command removes those whose process is gone and leaves those
of commands still running.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from ..corpus._writer import PARTIAL_PREFIX
from ..errors import ConfigError
from ..transcript._events import os_error_reason

__all__ = ["SCRATCH_PREFIX", "Scratch", "discard", "remove_leftovers"]

#: The start of a scratch folder's name; the process id that follows tells a live one.
SCRATCH_PREFIX = ".ptcrun-corpus-"


class Scratch:
    """A hidden folder beside the run folders for a command's scratch store and its copy of
    standard input, made on first use and removed, with all it holds, when the command ends.

    Not the system's temporary folder: that is often held in memory, and a store is as large as
    its corpus. Its name holds the process id, so the next command removes the folders of
    commands that were killed (their clean-up never ran) and leaves those of running ones.
    """

    def __init__(self, beside: Path, *, where: str) -> None:
        self._beside = beside
        self._where = where
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._made: list[Path] = []  # folders above it this made, deepest first

    def __enter__(self) -> Scratch:
        _remove_stale(self._beside)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        # A dry run leaves nothing behind, not even the --out folder it made to cut beside.
        for made in self._made:
            try:
                made.rmdir()
            except OSError:
                break  # something else is in it now
        self._made = []

    def folder(self) -> Path:
        """The folder, made now if it was not yet.

        Raises:
            ConfigError: it cannot be made, naming where and the fix.
        """
        if self._folder is None:
            try:
                missing = self._beside
                while not missing.exists() and missing.parent != missing:
                    self._made.append(missing)
                    missing = missing.parent
                self._beside.mkdir(parents=True, exist_ok=True)
                prefix = f"{SCRATCH_PREFIX}{os.getpid()}-"
                self._folder = tempfile.TemporaryDirectory(prefix=prefix, dir=self._beside)
            except OSError as exc:
                raise self.cannot(exc) from None
        return Path(self._folder.name)

    def cannot(self, exc: OSError) -> ConfigError:
        """The error of a scratch store that cannot be made or written: where, why, the fix."""
        return ConfigError(
            f"the corpus cannot be cut into a scratch store beside {self._where}: "
            f"{os_error_reason(exc)}; use a folder you can write to, with room for the corpus, or "
            f"cut the corpus once with `ptcrun store build CORPUS STORE` and pass the store."
        )


def _remove_stale(beside: Path) -> None:
    """Remove the scratch folders that killed commands left in beside: a store is as large as
    its corpus, and one whose command is gone is read by nobody."""
    try:
        folders = [p for p in beside.iterdir() if p.name.startswith(SCRATCH_PREFIX) and p.is_dir()]
    except OSError:
        return  # no folder yet, or not readable: whoever needs it says so
    for folder in folders:
        pid = folder.name.removeprefix(SCRATCH_PREFIX).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive, and not ours to judge
    return True


def remove_leftovers(target: Path) -> None:
    """Remove the partial stores that killed commands (``kill -9``, the OOM killer) left beside
    target: each is as large as its corpus, and no command reads it. Those of commands still
    running, and of other stores, are left alone."""
    ours = re.compile(
        rf"{re.escape(PARTIAL_PREFIX)}(\d+)-[0-9a-f]+|\.{re.escape(target.name)}\.(\d+)\.part"
    )
    try:
        names = [p.name for p in target.parent.iterdir()]
    except OSError:
        return  # writing there says what is wrong
    for name in names:
        found = ours.fullmatch(name)
        if found is not None and not _alive(int(found[1] or found[2])):
            discard(target.parent / name)


def discard(path: Path) -> None:
    """Remove a partial store, if it is there and can be."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only disk holds no part file; whatever failed to write says so
