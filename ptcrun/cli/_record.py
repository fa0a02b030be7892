"""``corpus.json``: what a run folder records of its corpus, so ``exec --turn`` reads it again.

``run`` writes it as soon as the run folder is made, before the first event, saying where the
chunks came from, how they were cut and which store holds them; a corpus read from standard
input or a pipe is kept beside it as ``corpus.txt``, the file it then names.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._corpus import STDIN_COPY, Corpus

__all__ = ["CORPUS_FILE", "read_record", "write_record"]

#: The file in a run folder that records the run's corpus.
CORPUS_FILE = "corpus.json"


def write_record(folder: Path, corpus: Corpus) -> None:
    """Write ``corpus.json`` into a run folder: where the chunks came from, their cut, their
    fingerprint and the store they are kept in (when it outlives the command).

    A corpus from standard input is kept beside it first, as ``corpus.txt`` (a hard link to the
    command's copy when the disk allows, so a large one is not written twice). Each file is
    written whole or not at all (a temporary file, renamed), so a kill or a full disk never
    leaves half a record.

    Raises:
        OSError: a file could not be written.
    """
    path = Path(corpus.path).resolve()
    if corpus.stdin is not None:
        path = folder.resolve() / STDIN_COPY
        _copy_whole(corpus.stdin, path)
    record = {
        "path": str(path),
        **corpus.options,
        "chunks": len(corpus.chunks),
        # A store's fingerprint was taken as it was written: no second pass over the corpus.
        "sha256": corpus.chunks.sha256,
    }
    if corpus.store is not None:
        record["store"] = str(corpus.store.resolve())
    _write_whole(folder / CORPUS_FILE, (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _copy_whole(source: Path, path: Path) -> None:
    part = path.with_name(path.name + ".part")
    try:
        try:
            os.link(source, part)
        except OSError:
            shutil.copyfile(source, part)
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


def _write_whole(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(data)
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


def read_record(folder: Path) -> dict[str, Any] | None:
    """The ``corpus.json`` of a run folder, or ``None`` when the run did not write one.

    Raises:
        ConfigError: the file is there but is not a JSON object.
    """
    path = folder / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); pass the corpus with --data FILE.") from None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise ConfigError(f"{path} does not say where the corpus is; pass the corpus with --data FILE.")
    return record
