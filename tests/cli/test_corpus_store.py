"""The corpus store from the command line: where a command cuts a corpus (beside the run folders,
never in memory nor the system's temporary folder), ``ptcrun store build`` and reuse of a store
by ``run`` and ``exec``, and the refusals that keep a reused store from ever giving a wrong
corpus. Runs on a store answer exactly as runs on the text do."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.cli import EXIT_CODES
from ptcrun.cli import _corpus as cli_corpus
from ptcrun.corpus._store import StoredChunks

from ..clirun import run_cli
from .test_cli import LOG, WORKER, block

# A program that reads every chunk and fans out over them, so any difference in the chunks (their
# number, their text, their order) shows in the answer.
PROGRAM = """
sizes = [len(c) for c in data]
counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data)
print(len(data), "chunks", sum(sizes), "chars")
done({"chunks": len(data), "chars": sum(sizes), "first": data[0][:30], "last": data[-1][-30:],
      "errors": sum(counts)})
"""
ANSWER = {"chunks": 6, "chars": len(LOG), "first": LOG[:30], "last": LOG[-30:], "errors": LOG.count("ERROR")}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "app.log").write_text(LOG)
    (tmp_path / "planner.json").write_text(json.dumps([block(PROGRAM)]))
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "count.py").write_text("print(len(data), sum(len(c) for c in data), data[1][:12])\ndone(len(data))")
    return tmp_path


def run(folder: Path, corpus: str | Path, *extra: str) -> list[str]:
    return ["run", str(corpus), "--goal", "Count the errors.", "--planner", f"scripted:{folder / 'planner.json'}",
            "--worker", f"scripted:{folder / 'worker.py'}", "--out", str(folder / "runs"), "--quiet", "--json",
            *extra]


def answer(called: tuple[int, str, str]) -> dict:
    """The --json result of a run that must have ended done."""
    code, out, err = called
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done", result
    return result


@pytest.fixture
def cuts(monkeypatch):
    """The stores the command line cuts a corpus into, in order (a reused store is not cut)."""
    made: list[Path] = []
    real = cli_corpus.build_store

    def spy(corpus, path, **options):
        # A kept store is cut under another name first (.NAME.PID.part): record the store's.
        part = re.fullmatch(rf"\.(.+)\.{os.getpid()}\.part", Path(path).name)
        made.append(Path(path).with_name(part[1]) if part else Path(path))
        return real(corpus, path, **options)

    monkeypatch.setattr(cli_corpus, "build_store", spy)
    return made


def scratch_folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".ptcrun-corpus-")) if out.exists() else []


@pytest.fixture
def no_system_temp(monkeypatch, tmp_path):
    """A system temporary folder that does not exist: a command that put anything there fails."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-system-temp"))


# -- where a corpus is cut ---------------------------------------------------------------------


def test_a_dry_run_cuts_beside_out_not_in_the_system_temp_folder_and_leaves_nothing(
    files, cuts, no_system_temp
):
    out = files / "runs"
    code, printed, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--dry-run"))
    assert code == 0, err
    assert json.loads(printed)["chunks"] == 6
    [store] = cuts
    assert store.parent.parent == out and store.parent.name.startswith(f".ptcrun-corpus-{os.getpid()}-")
    assert not out.exists()  # the --out folder it made to cut beside is removed on the way out


def test_a_dry_run_removes_the_stores_killed_commands_left_and_keeps_live_ones(files, cuts):
    out = files / "runs"
    dead = out / ".ptcrun-corpus-999999999-x"  # above any pid the system hands out
    live = out / f".ptcrun-corpus-{os.getppid()}-y"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "corpus.store").write_bytes(b"left")
    code, _, err = run_cli(run(files, files / "app.log", "--dry-run"))
    assert code == 0, err
    assert scratch_folders(out) == [live.name]


def test_a_dry_run_on_a_store_writes_nothing_at_all(files, cuts):
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(files / "app.store"), "--chunk-lines", "4"])
    assert code == 0, err
    code, printed, err = run_cli(run(files, files / "app.store", "--dry-run"))
    assert code == 0, err
    assert json.loads(printed)["chunks"] == 6
    assert not (files / "runs").exists()
    assert len(cuts) == 1  # the build's


def test_a_dry_run_says_when_out_cannot_hold_the_scratch_store(files):
    (files / "blocker").write_text("a file, not a folder")
    argv = run(files, files / "app.log", "--dry-run")
    argv[argv.index("--out") + 1] = str(files / "blocker" / "runs")
    code, _, err = run_cli(argv)
    assert code == EXIT_CODES["config"]
    assert "the corpus cannot be cut into a scratch store beside --out" in err
    assert "ptcrun store build CORPUS STORE" in err


def test_exec_data_is_cut_beside_out_and_read_from_the_store(files, cuts, no_system_temp, monkeypatch):
    from ptcrun import sandbox

    given = []
    real = sandbox.execute

    def spy(source, *, data, **kwargs):
        given.append(data)
        return real(source, data=data, **kwargs)

    monkeypatch.setattr(sandbox, "execute", spy)
    code, out, err = run_cli(["exec", str(files / "count.py"), "--data", str(files / "app.log"),
                              "--chunk-lines", "4", "--out", str(files / "runs")])
    assert (code, out) == (0, f"6 {len(LOG)} {LOG.splitlines(keepends=True)[4][:12]}\ndone: 6\n"), err
    assert isinstance(given[0], StoredChunks)  # not a list in memory
    assert cuts[0].parent.parent == files / "runs"
    assert scratch_folders(files / "runs") == []


# -- ptcrun store build / info -----------------------------------------------------------------


def test_store_build_records_the_cut_and_the_corpus_and_run_on_it_answers_as_on_the_text(files, cuts):
    store = files / "app.store"
    code, out, err = run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    assert code == 0, err
    assert out.startswith(f"store {store}: 6 chunks cut from {files / 'app.log'} with --chunk-lines 4 --overlap 0 in ")
    about = StoredChunks(store).about
    assert about["cut"] == {"chunk_tokens": None, "chunk_lines": 4, "overlap": 0}
    assert about["corpus"]["path"] == str((files / "app.log").resolve())
    assert about["corpus"]["bytes"] == len(LOG.encode())

    on_text = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4")))
    cuts.clear()
    on_store = answer(run_cli(run(files, store)))
    assert cuts == []  # read as it was cut
    assert on_store["answer"] == on_text["answer"] == ANSWER
    assert on_store["usage"] == on_text["usage"]
    text_run, store_run = (Transcript.load(r["transcript"]) for r in (on_text, on_store))
    assert store_run.run["data"] == text_run.run["data"]  # the same chunks, by their fingerprint
    assert [t.output for t in store_run.turns] == [t.output for t in text_run.turns]
    record = json.loads((Path(on_store["transcript"]).parent / "corpus.json").read_text())
    assert record["store"] == str(store.resolve())
    assert record["path"] == str((files / "app.log").resolve())
    assert (record["chunk_lines"], record["overlap"]) == (4, 0)


def test_store_build_json_and_store_info(files):
    store = files / "app.store"
    code, out, err = run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4", "--json"])
    assert code == 0, err
    built = json.loads(out)
    assert (built["chunks"], built["chars"], built["corpus_changed"]) == (6, len(LOG), False)
    code, out, err = run_cli(["store", "info", str(store), "--json"])
    info = json.loads(out)
    assert info["sha256"] == StoredChunks(store).sha256 and info["cut"]["chunk_lines"] == 4
    (files / "app.log").write_text(LOG + "one more line\n")
    code, out, err = run_cli(["store", "info", str(store)])
    assert code == 0, err
    assert "cut        --chunk-lines 4 --overlap 0" in out
    assert "changed since the store was cut" in out


def test_store_build_takes_the_chunk_settings_of_the_environment(files, monkeypatch):
    monkeypatch.setenv("PTCRUN_CHUNK_LINES", "8")
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
    assert code == 0, err
    assert len(StoredChunks(files / "app.store")) == 3


def test_store_build_never_overwrites_a_file_that_is_not_a_store(files):
    # The two paths the wrong way round: the corpus must survive.
    code, _, err = run_cli(["store", "build", str(files / "worker.py"), str(files / "app.log")])
    assert code == EXIT_CODES["config"]
    assert "exists and is not a corpus store; nothing was written" in err
    assert (files / "app.log").read_text() == LOG
    run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
    code, _, err = run_cli(["store", "build", str(files / "app.store"), str(files / "other.store")])
    assert code == EXIT_CODES["config"] and "is already a corpus store" in err


def test_store_build_replaces_a_store_whole(files):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "12"])
    assert code == 0, err
    assert len(StoredChunks(store)) == 2
    assert [p.name for p in files.iterdir() if p.name.endswith(".part")] == []


def test_store_info_of_a_missing_file_and_of_text(files):
    code, _, err = run_cli(["store", "info", str(files / "missing.store")])
    assert code == EXIT_CODES["config"] and "does not exist" in err
    code, _, err = run_cli(["store", "info", str(files / "app.log")])
    assert code == EXIT_CODES["config"] and "is not a corpus store" in err


# -- run --store FILE --------------------------------------------------------------------------


def test_run_store_is_made_once_and_reused_without_cutting(files, cuts):
    store = files / "app.store"
    first = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))
    assert cuts == [store] and store.is_file()
    second = answer(run_cli(run(files, files / "app.log", "--store", str(store))))  # its cut stands
    assert cuts == [store]  # not cut again
    assert second["answer"] == first["answer"] == ANSWER
    record = json.loads((Path(second["transcript"]).parent / "corpus.json").read_text())
    assert record["store"] == str(store.resolve())
    again = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store))))
    assert again["answer"] == ANSWER  # the same flags again: accepted


def test_run_store_refuses_a_corpus_changed_since_it_was_cut(files):
    store = files / "app.store"
    run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    # Same size, other bytes: only the SHA-256 tells them apart.
    (files / "app.log").write_text(LOG.replace("ERROR", "error", 1))
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store)))
    assert code == EXIT_CODES["config"]
    assert f"is not the one --store {str(store)!r} was cut from" in err
    assert "Delete the store to cut the corpus again" in err
    assert StoredChunks(store).about["corpus"]["bytes"] == len(LOG.encode())  # left as it was


def test_a_store_refuses_chunk_flags_that_say_another_cut(files):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    code, _, err = run_cli(run(files, store, "--chunk-tokens", "500"))
    assert code == EXIT_CODES["config"]
    assert err == (
        f"ptcrun: corpus store {str(store)!r} was cut with --chunk-lines 4 --overlap 0, but --chunk-tokens "
        f"500 was given; drop the chunk flags to use the store as it was cut, or cut the corpus again "
        f"with them (`ptcrun store build CORPUS NEW_STORE --chunk-tokens 500`).\n"
    )
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(store), "--overlap", "1"))
    assert code == EXIT_CODES["config"]
    assert f"--store {str(store)!r} was cut with --chunk-lines 4 --overlap 0, but --overlap 1 was given" in err
    code, _, err = run_cli(["exec", str(files / "count.py"), "--data", str(store), "--chunk-lines", "5"])
    assert code == EXIT_CODES["config"] and "was cut with --chunk-lines 4" in err


def test_the_environments_chunk_settings_do_not_apply_to_a_store(files, monkeypatch):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    monkeypatch.setenv("PTCRUN_CHUNK_TOKENS", "50")
    assert answer(run_cli(run(files, store)))["answer"] == ANSWER


@pytest.mark.parametrize("how", ["corpus", "--store"])
def test_a_damaged_store_is_refused_with_the_command_that_rebuilds_it(files, how):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    store.write_bytes(store.read_bytes()[:-40])
    argv = run(files, store) if how == "corpus" else run(files, files / "app.log", "--store", str(store))
    code, _, err = run_cli(argv)
    assert code == EXIT_CODES["config"]
    assert f"corpus store {str(store)!r} is damaged" in err
    assert f"`ptcrun store build CORPUS {str(store)!r}`" in err and "build_store" not in err


def test_run_store_refuses_a_store_that_does_not_record_its_corpus(files):
    from ptcrun import write_store

    write_store(files / "py.store", ["a chunk", "another"])
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(files / "py.store")))
    assert code == EXIT_CODES["config"]
    assert "does not record the corpus it was cut from" in err
    code, _, err = run_cli(run(files, files / "py.store", "--chunk-lines", "4"))
    assert code == EXIT_CODES["config"] and "does not record how its chunks were cut" in err
    code, out, err = run_cli(["exec", str(files / "count.py"), "--data", str(files / "py.store")])
    assert (code, out) == (0, "2 14 another\ndone: 2\n"), err


def test_store_given_twice_is_refused(files):
    run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
    code, _, err = run_cli(run(files, files / "app.store", "--store", str(files / "other.store")))
    assert code == EXIT_CODES["config"] and "is already a corpus store" in err
    assert not (files / "other.store").exists()


def test_a_run_on_a_store_warns_when_its_corpus_file_changed(files):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    (files / "app.log").write_text(LOG + "more\n")
    result = answer(run_cli(run(files, store)))
    assert result["answer"] == ANSWER  # the chunks as they were cut
    assert any("which has changed since" in w for w in result["warnings"])


def test_run_store_from_standard_input(files, monkeypatch):
    store = files / "stdin.store"

    def piped(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))

    piped(LOG)
    first = answer(run_cli(run(files, "-", "--chunk-lines", "4", "--store", str(store))))
    assert StoredChunks(store).about["corpus"]["path"] is None
    assert (Path(first["transcript"]).parent / "corpus.txt").read_text() == LOG
    piped(LOG)
    assert answer(run_cli(run(files, "-", "--store", str(store))))["answer"] == first["answer"] == ANSWER
    piped(LOG + "x\n")
    code, _, err = run_cli(run(files, "-", "--store", str(store)))
    assert code == EXIT_CODES["config"] and "the corpus on standard input is not the one" in err


# -- exec and resume on a store ----------------------------------------------------------------


def transcript_of(out: str) -> str:
    return json.loads(out)["transcript"]


def test_exec_turn_reads_the_store_the_run_used_even_with_the_corpus_gone(files, cuts):
    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    code, out, err = run_cli(run(files, store))
    transcript = transcript_of(out)
    (files / "app.log").unlink()
    cuts.clear()
    code, out, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == 0, err
    assert out.startswith(f"6 chunks {len(LOG)} chars\n")
    assert "the same output and outcome as the recorded run" in err
    assert cuts == []


def test_exec_turn_cuts_the_corpus_again_when_the_store_is_gone_and_checks_it(files, cuts, no_system_temp):
    store = files / "app.store"
    code, out, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    transcript = transcript_of(out)
    store.unlink()
    cuts.clear()
    code, out, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == 0, err
    assert "the same output and outcome as the recorded run" in err
    assert cuts[0].parent.parent == files / "runs"  # beside the run, as run cuts
    (files / "app.log").write_text(LOG.replace("ERROR", "error"))
    code, _, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == EXIT_CODES["config"] and "changed since the run" in err
    (files / "app.log").unlink()
    code, _, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == EXIT_CODES["config"]
    assert f"and its store {str(store.resolve())!r} is not either" in err


def test_exec_turn_ignores_a_store_rebuilt_with_other_chunks(files):
    store = files / "app.store"
    code, out, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    transcript = transcript_of(out)
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "12"])
    code, out, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == 0, err
    assert out.startswith("6 chunks")  # cut again from the corpus, as the run cut it


def test_exec_turn_data_store_must_match_the_runs_fingerprint(files):
    code, out, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4"))
    transcript = transcript_of(out)
    run_cli(["store", "build", str(files / "app.log"), str(files / "same.store"), "--chunk-lines", "4"])
    code, out, err = run_cli(["exec", transcript, "--turn", "1", "--data", str(files / "same.store")])
    assert code == 0, err
    (files / "other.log").write_text(LOG.replace("INFO", "WARN"))
    run_cli(["store", "build", str(files / "other.log"), str(files / "other.store"), "--chunk-lines", "4"])
    code, _, err = run_cli(["exec", transcript, "--turn", "1", "--data", str(files / "other.store")])
    assert code == EXIT_CODES["config"] and "differ from the run's" in err


def test_a_run_on_the_text_resumes_on_its_store(files):
    first = answer(run_cli(run(files, files / "app.log", "--chunk-lines", "4")))
    run_cli(["store", "build", str(files / "app.log"), str(files / "app.store"), "--chunk-lines", "4"])
    folder = str(Path(first["transcript"]).parent)
    resumed = answer(run_cli(run(files, files / "app.store", "--resume", folder)))
    assert resumed["answer"] == ANSWER
    assert resumed["resumed_from"] is not None and resumed["replayed"]
    assert re.search(r"planner", json.dumps(resumed["replayed"]))


def test_store_build_refuses_a_corpus_that_changes_while_it_is_cut(files, monkeypatch):
    real = cli_corpus.build_store

    def growing(corpus, path, **options):
        store = real(corpus, path, **options)
        with open(corpus, "a") as log:  # a writer appends while the store is cut
            log.write("late line\n")
        return store

    monkeypatch.setattr(cli_corpus, "build_store", growing)
    code, _, err = run_cli(["store", "build", str(files / "app.log"), str(files / "app.store")])
    assert code == EXIT_CODES["config"]
    assert "changed while it was cut into a store" in err
    assert not (files / "app.store").exists()
    code, _, err = run_cli(run(files, files / "app.log", "--store", str(files / "kept.store")))
    assert code == EXIT_CODES["config"] and "changed while it was cut" in err
    assert not (files / "kept.store").exists()


@pytest.mark.parametrize("corpus", ["missing.log", "empty.log", "."])
def test_store_build_refuses_what_run_refuses_and_writes_nothing(files, corpus):
    (files / "empty.log").write_text("")
    code, _, err = run_cli(["store", "build", str(files / corpus), str(files / "app.store")])
    assert code == EXIT_CODES["config"]
    assert re.search(r"does not exist|is empty|is a directory", err), err
    assert not (files / "app.store").exists()
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []


def test_store_build_from_standard_input(files, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(LOG.encode())))
    code, out, err = run_cli(["store", "build", "-", str(files / "app.store"), "--chunk-lines", "4"])
    assert code == 0, err
    assert "6 chunks cut from standard input" in out
    assert answer(run_cli(run(files, files / "app.store")))["answer"] == ANSWER
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []  # its copy is gone


def test_a_dry_run_makes_a_missing_store_so_the_run_after_it_does_not_cut(files, cuts):
    store = files / "app.store"
    code, printed, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store), "--dry-run"))
    assert code == 0, err
    assert json.loads(printed)["chunks"] == 6 and cuts == [store]
    assert answer(run_cli(run(files, files / "app.log", "--store", str(store))))["answer"] == ANSWER
    assert cuts == [store]


def test_store_info_verify_reads_every_chunk_and_finds_damaged_text(files):
    from ptcrun.corpus._chunking import corpus_digest

    store = files / "app.store"
    run_cli(["store", "build", str(files / "app.log"), str(store), "--chunk-lines", "4"])
    code, out, err = run_cli(["store", "info", str(store), "--verify", "--json"])
    assert code == 0, err
    assert json.loads(out)["verified"] is True
    assert json.loads(out)["sha256"] == corpus_digest(list(StoredChunks(store)))
    raw = bytearray(store.read_bytes())
    at = raw.index(b"ERROR disk")
    raw[at:at + 5] = b"ERR0R"  # rot in the text: the table of contents still reads whole
    store.write_bytes(bytes(raw))
    code, out, _ = run_cli(["store", "info", str(store), "--verify"])
    assert code == EXIT_CODES["config"]
    assert "NO: the chunks' text gives another fingerprint" in out


def test_exec_turn_falls_back_to_the_corpus_when_the_kept_store_was_damaged(files):
    store = files / "app.store"
    code, out, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4", "--store", str(store)))
    transcript = transcript_of(out)
    store.write_bytes(store.read_bytes()[:-40])
    code, out, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == 0, err
    assert "the same output and outcome as the recorded run" in err
    (files / "app.log").unlink()
    code, _, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == EXIT_CODES["config"] and "is damaged" in err


def test_exec_turn_gives_the_sandbox_a_store_not_a_list(files, monkeypatch):
    from ptcrun.sandbox.host import _driver

    given = []

    class Spy(_driver.Sandbox):
        def __init__(self, *args, data, **kwargs):
            given.append(data)
            super().__init__(*args, data=data, **kwargs)

    code, out, err = run_cli(run(files, files / "app.log", "--chunk-lines", "4"))
    monkeypatch.setattr(_driver, "Sandbox", Spy)
    code, out, err = run_cli(["exec", transcript_of(out), "--turn", "1"])
    assert code == 0, err
    assert [type(d) for d in given] == [StoredChunks]
