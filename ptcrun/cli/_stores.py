"""``ptcrun store build`` and ``ptcrun store info``: a corpus cut once, for every run after.

Cutting a 10 GB corpus takes minutes; a store built once is read by ``ptcrun run STORE`` and
``ptcrun exec --data STORE`` as it is. The store records its cut and the size, time and SHA-256
of the file it was cut from, so a command can tell whether it still stands for that file;
``store info --verify`` reads every chunk to check the store's own fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

from ..corpus._store import StoredChunks, is_store
from ..errors import ConfigError
from ._corpus import STDIN, chunk_options, cut_words, one_corpus_store, open_corpus
from ._parser import EXIT_CODES
from ._scratch import Scratch

__all__ = ["cmd_store"]


def cmd_store(args: argparse.Namespace) -> int:
    """Run ``ptcrun store ACTION``; return the exit code."""
    if args.store_command == "build":
        return _build(args)
    return _info(args)


def _build(args: argparse.Namespace) -> int:
    options = chunk_options(args)
    target = Path(args.path)
    if args.corpus != STDIN and is_store(args.corpus):
        raise ConfigError(
            f"CORPUS {args.corpus!r} is already a corpus store; pass the text file it was cut from."
        )
    started = time.monotonic()
    # The new store is written under another name first: a store it replaces stays whole and
    # readable by running commands until the new one is complete.
    with Scratch(target.parent.resolve(), where=f"STORE {args.path!r}") as scratch:
        corpus = open_corpus(args.corpus, options, flag="CORPUS", scratch=scratch, keep=args.path,
                             keep_flag="STORE", replace=True)
    seconds = time.monotonic() - started
    facts = _facts(StoredChunks(target))
    facts["seconds"] = round(seconds, 3)
    if args.json:
        print(json.dumps(facts, ensure_ascii=False))
    else:
        source = "standard input" if args.corpus == STDIN else args.corpus
        print(f"store {target}: {facts['chunks']:,} chunks cut from {source} with "
              f"{cut_words(corpus.options)} in {seconds:.1f} s")
        print(f"run on it with: ptcrun run {shlex.quote(str(target))} --goal ...")
    return 0


def _facts(store: StoredChunks) -> dict[str, Any]:
    """What ``store info`` says of a store, as one JSON object."""
    about: dict[str, Any] = store.about or {}
    source: dict[str, Any] | None = about["corpus"] if isinstance(about.get("corpus"), dict) else None
    changed: bool | None = None
    if source is not None and isinstance(source.get("path"), str):
        try:
            info = os.stat(source["path"])
            changed = (info.st_size, info.st_mtime_ns) != (source.get("bytes"), source.get("mtime_ns"))
        except OSError:
            changed = None  # gone: the store is all there is of it
    return {
        "store": str(Path(store.path).resolve()),
        "bytes": os.path.getsize(store.path),
        "chunks": len(store),
        "chars": store.chars,
        "tokens": store.token_total(),
        "sha256": store.sha256,
        "cut": about.get("cut"),
        "corpus": source,
        "corpus_changed": changed,
    }


def _info(args: argparse.Namespace) -> int:
    store = one_corpus_store(args.path, "STORE") if is_store(args.path) else None
    if store is None:
        if not os.path.exists(args.path):
            raise ConfigError(f"STORE {args.path!r} does not exist; check the path.")
        if os.path.isdir(args.path):
            raise ConfigError(f"STORE {args.path!r} is a directory; pass the path of a store file.")
        raise ConfigError(
            f"STORE {args.path!r} is not a corpus store (it does not start with the store's marker); "
            f"build one with `ptcrun store build CORPUS STORE`."
        )
    facts = _facts(store)
    if args.verify:
        facts["verified"] = _digest(store) == store.sha256
    if args.json:
        print(json.dumps(facts, ensure_ascii=False))
        return 0 if facts.get("verified", True) else EXIT_CODES["config"]
    tokens = "unknown" if facts["tokens"] is None else f"{facts['tokens']:,}"
    lines = [
        f"store      {facts['store']} ({facts['bytes']:,} bytes)",
        f"chunks     {facts['chunks']:,}: {facts['chars']:,} characters, {tokens} tokens",
        f"cut        {cut_words(facts['cut']) if facts['cut'] else 'not recorded'}",
    ]
    source = facts["corpus"]
    if source is None:
        lines.append("corpus     not recorded (written from Python)")
    else:
        where = source.get("path") or "standard input or a pipe"
        lines.append(f"corpus     {where}: {source['bytes']:,} bytes, sha256 {source['sha256']}")
        if facts["corpus_changed"]:
            lines.append("           changed since the store was cut (its size or time differ)")
        elif facts["corpus_changed"] is None and source.get("path"):
            lines.append("           no longer there")
    lines.append(f"sha256     {facts['sha256']} (of the chunks, as run.start records it)")
    if args.verify:
        lines.append("verified   the chunks' text gives this fingerprint" if facts["verified"] else
                     "verified   NO: the chunks' text gives another fingerprint; the store is damaged: "
                     "build it again")
    print("\n".join(lines))
    return 0 if facts.get("verified", True) else EXIT_CODES["config"]


def _digest(store: StoredChunks) -> str:
    """``corpus_digest`` of the store's chunks, from their bytes read a range at a time: one
    pass over the file, holding a few MiB, whatever the corpus."""
    whole = hashlib.sha256()
    start = 0
    while start < len(store):
        sizes, data = store.read_utf8(start, len(store), 4 << 20)
        view = memoryview(data)
        at = 0
        for size in sizes:
            whole.update(hashlib.sha256(view[at:at + size]).digest())
            at += size
        start += len(sizes)
    return whole.hexdigest()
