"""Every command that takes a corpus reads it one way: ``run CORPUS``, ``exec --data``, and
``exec TRANSCRIPT --turn N --data``. Each case runs all three and expects the same outcome."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptcrun.cli import EXIT_CODES
from ptcrun.corpus._load import DEFAULT_CHUNK_TOKENS

from ..clirun import run_cli
from .test_cli import block

# 300 short lines, about 2,400 tokens: one chunk by the default token size, three by 100 lines.
TEXT = "".join(f"line {i} ok\n" for i in range(300))
COUNT = "done([len(data), data[0].count(chr(10))])"
COMMANDS = ["run", "exec", "exec --turn"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus_flags")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT)
    planner = folder / "planner.json"
    planner.write_text(json.dumps([block(COUNT)]))
    program = folder / "count.py"
    program.write_text(COUNT)
    code, out, _ = run_cli(["run", str(corpus), "--goal", "Count.", "--planner", f"scripted:{planner}",
                            "--out", str(folder / "runs"), "--quiet", "--chunk-lines", "100"])
    assert code == 0, out
    transcript = Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))
    return {"folder": folder, "corpus": corpus, "planner": planner, "program": program, "transcript": transcript}


def argv(setup, command: str, corpus: Path | str, *flags: str) -> list[str]:
    if command == "run":
        return ["run", str(corpus), "--goal", "Count.", "--planner", f"scripted:{setup['planner']}",
                "--out", str(setup["folder"] / "runs"), "--quiet", *flags]
    if command == "exec":
        return ["exec", str(setup["program"]), "--data", str(corpus), *flags]
    return ["exec", str(setup["transcript"]), "--turn", "1", "--data", str(corpus), *flags]


@pytest.mark.parametrize("command", COMMANDS)
def test_both_chunk_sizes_are_a_usage_error_naming_the_flags(setup, command):
    code, _, err = run_cli(argv(setup, command, setup["corpus"], "--chunk-tokens", "500", "--chunk-lines", "10"))
    assert code == EXIT_CODES["config"] == 2
    assert "argument --chunk-lines: not allowed with argument --chunk-tokens" in err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["--chunk-tokens", "--chunk-lines"])
def test_a_chunk_size_of_zero_is_refused_not_taken_for_the_default(setup, command, flag):
    code, _, err = run_cli(argv(setup, command, setup["corpus"], flag, "0"))
    assert code == EXIT_CODES["config"]
    assert f"argument {flag}: must be a whole number of at least 1; got '0'" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_overlap_not_smaller_than_the_size_names_both_flags(setup, command):
    code, _, err = run_cli(argv(setup, command, setup["corpus"], "--chunk-lines", "4", "--overlap", "4"))
    assert code == EXIT_CODES["config"]
    assert err == (
        "ptcrun: --overlap 4 is not smaller than --chunk-lines 4, so chunks could never move forward; "
        "lower --overlap below 4 or raise --chunk-lines.\n"
    )


def test_overlap_against_the_default_size_says_it_is_the_default(setup):
    code, _, err = run_cli(argv(setup, "exec", setup["corpus"], "--overlap", str(DEFAULT_CHUNK_TOKENS)))
    assert code == EXIT_CODES["config"]
    assert f"--overlap {DEFAULT_CHUNK_TOKENS} is not smaller than --chunk-tokens {DEFAULT_CHUNK_TOKENS} (the default)" in err


def test_run_and_exec_cut_by_the_same_default(setup):
    code, out, _ = run_cli(argv(setup, "run", setup["corpus"]))
    assert (code, out.split("\n\n")[0]) == (0, "answer:\n[\n  1,\n  300\n]")
    code, out, _ = run_cli(argv(setup, "exec", setup["corpus"]))
    assert (code, out) == (0, "done: [\n  1,\n  300\n]\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_corpus_file(setup, command):
    missing = setup["folder"] / "missing.txt"
    code, _, err = run_cli(argv(setup, command, missing))
    assert code == EXIT_CODES["config"]
    assert err.startswith(f"ptcrun: corpus file {str(missing)!r} does not exist; check the path")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_as_corpus(setup, command):
    code, _, err = run_cli(argv(setup, command, setup["folder"]))
    assert code == EXIT_CODES["config"]
    assert err == (
        f"ptcrun: corpus path {str(setup['folder'])!r} is a directory, not a file; join the files in "
        f"it into one text file and pass that.\n"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_corpus_that_is_not_utf8(setup, command):
    latin = setup["folder"] / "latin1.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    code, _, err = run_cli(argv(setup, command, latin))
    assert code == EXIT_CODES["config"]
    assert "is not UTF-8 text: byte 0xe9 at byte offset 3" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_empty_corpus_file(setup, command):
    empty = setup["folder"] / "empty.txt"
    empty.write_text("")
    code, _, err = run_cli(argv(setup, command, empty))
    assert code == EXIT_CODES["config"]
    assert err == f"ptcrun: corpus file {str(empty)!r} is empty, so there is nothing to cut into chunks; pass a file that holds text.\n"


@pytest.mark.parametrize("flag", ["--chunk-lines", "--chunk-tokens", "--overlap"])
def test_exec_refuses_chunk_flags_without_data(setup, flag):
    code, _, err = run_cli(["exec", str(setup["program"]), flag, "1"])
    assert code == EXIT_CODES["config"]
    assert err == f"ptcrun: {flag} says how to cut --data, but no --data FILE was given; give both.\n"


def test_exec_turn_data_takes_the_runs_chunk_options_when_none_are_given(setup):
    moved = setup["folder"] / "moved.txt"
    moved.write_text(TEXT)
    code, out, err = run_cli(["exec", str(setup["transcript"]), "--turn", "1", "--data", str(moved)])
    assert (code, out) == (0, "done: [\n  3,\n  100\n]\n")  # cut by 100 lines, as the run was
    assert "the same output and outcome as the recorded run" in err


def test_exec_turn_reports_a_corpus_that_moved_away(setup, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    code, out, _ = run_cli(argv(setup, "run", corpus, "--chunk-lines", "100"))
    transcript = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    corpus.unlink()
    code, _, err = run_cli(["exec", transcript, "--turn", "1"])
    assert code == EXIT_CODES["config"]
    assert f"the run's corpus {str(corpus)!r}" in err and "pass the corpus with --data FILE" in err


def test_fresh_without_turn_is_refused(setup):
    code, _, err = run_cli(["exec", str(setup["program"]), "--fresh"])
    assert code == EXIT_CODES["config"]
    assert "--fresh skips the turns before --turn N; give --turn N too." in err


def test_a_program_path_that_is_a_directory(setup):
    code, _, err = run_cli(["exec", str(setup["folder"])])
    assert code == EXIT_CODES["config"]
    assert "is a directory; pass the path of a .py file." in err


def test_a_program_that_is_not_utf8(setup):
    program = setup["folder"] / "latin1.py"
    program.write_bytes("print('café')\n".encode("latin-1"))
    code, _, err = run_cli(["exec", str(program)])
    assert code == EXIT_CODES["config"]
    assert "is not UTF-8 text (byte offset 10); save it as UTF-8." in err


def test_exec_turn_data_with_a_size_flag_does_not_take_the_runs_overlap(setup, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    code, out, _ = run_cli(argv(setup, "run", corpus, "--chunk-tokens", "1000", "--overlap", "200"))
    transcript = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    # The run's overlap of 200 tokens is not carried over to --chunk-lines 100, where it would
    # read as 200 lines, more than a chunk: the only complaint is that the chunks differ.
    code, _, err = run_cli(["exec", transcript, "--turn", "1", "--data", str(corpus), "--chunk-lines", "100"])
    assert code == EXIT_CODES["config"]
    assert "gives 3 chunks but the run had" in err
