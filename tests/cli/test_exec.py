"""``exec`` runs a program as ``run`` would: the same corpus cut, limits, ``--worker``; it refuses
a program that reads ``data`` when none was given; ``--replay RUN`` answers an edited program's
calls from a run; and a killed run can still be replayed, as ``corpus.json`` is written first."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptcrun.cli import EXIT_CODES

from ..clirun import run_cli
from .test_cli import FAN_OUT, block, run_args, write_files


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A run whose second turn made 6 worker calls and 3 lookups (one failed)."""
    folder = tmp_path_factory.mktemp("exec")
    files = write_files(folder, [block("print(len(data))"), block(FAN_OUT)])
    code, out, err = run_cli(run_args(files, folder / "runs", "--quiet"))
    assert code == 0, err
    transcript = Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))
    return {"files": files, "transcript": transcript, "out": folder / "runs", "folder": folder}


def _program(folder: Path, text: str, name: str = "p.py") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_exec_worker_makes_tool_worker_work(recorded, tmp_path):
    program = _program(tmp_path, 'done(tool.worker("ERROR ERROR", "Count the ERROR lines."))')
    code, out, err = run_cli(["exec", str(program), "--worker", f"scripted:{recorded['files']['worker']}"])
    assert (code, out) == (0, 'done: "2"\n'), err


def test_exec_worker_from_the_environment(recorded, tmp_path, monkeypatch):
    monkeypatch.setenv("PTCRUN_WORKER", f"scripted:{recorded['files']['worker']}")
    program = _program(tmp_path, 'done(tool.worker("ERROR", "Count."))')
    code, out, _ = run_cli(["exec", str(program)])
    assert (code, out) == (0, 'done: "1"\n')


def test_exec_without_a_worker_says_how_to_give_one(tmp_path):
    program = _program(tmp_path, 'done(tool.worker("text", "Count."))')
    code, _, err = run_cli(["exec", str(program)])
    assert code == EXIT_CODES["error"]
    assert ("ToolError: tool.worker needs a model under exec: pass --worker PROVIDER (or set PTCRUN_WORKER), "
            "or --replay RUN to answer its calls from a run.") in err
    assert "there is no tool named" not in err


def test_exec_says_why_tool_agent_cannot_run_and_what_can(recorded, tmp_path):
    program = _program(tmp_path, 'done(tool.agent("Count the errors.", data=[0], max_tokens=5_000))')
    code, _, err = run_cli(["exec", str(program)])
    assert code == EXIT_CODES["error"]
    assert ("ToolError: tool.agent starts a sub-run, which needs a planner, and exec runs none: run the goal "
            "with `ptcrun run`, or answer the program's agent calls from a run that made them with "
            "--replay RUN.") in err
    assert "there is no tool named" not in err
    # Replayed against a run that made no such call: refused, without pointing at --tools.
    code, _, err = run_cli(["exec", str(program), "--replay", str(recorded["transcript"])])
    assert code == EXIT_CODES["error"]
    assert "tool.agent starts a sub-run, which needs a planner, and exec runs none." in err
    assert "--tools" not in err


def test_a_program_that_reads_data_without_data_is_refused(tmp_path):
    program = _program(tmp_path, "done(len(data))")
    code, out, err = run_cli(["exec", str(program)])
    assert (code, out) == (EXIT_CODES["config"], "")
    assert err == (f"ptcrun: program {str(program)!r} reads `data`, but no --data FILE was given, so it would "
                   f"run on no chunks; pass the corpus with --data FILE (- for standard input), or --replay RUN "
                   f"to use a run's corpus.\n")


def test_a_program_that_sets_its_own_data_runs_without_data(tmp_path):
    program = _program(tmp_path, "data = [1, 2]\ndone(len(data))")
    code, out, _ = run_cli(["exec", str(program)])
    assert (code, out) == (0, "done: 2\n")


def test_exec_limit_flags_reach_the_sandbox_and_its_errors_name_them(tmp_path):
    program = _program(tmp_path, "print('x' * 5000)")
    code, _, err = run_cli(["exec", str(program), "--sandbox-output-bytes", "1000"])
    assert code == EXIT_CODES["limit"]
    assert "the program printed more than 1,000 bytes (--sandbox-output-bytes)" in err


EDITED = """
counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data)
extra = tool.lookup("WARN")
print("errors per chunk:", counts, extra)
done({"errors": sum(counts)})
"""


def test_replay_runs_an_edited_program_on_the_runs_calls_and_says_which(recorded, tmp_path):
    program = _program(tmp_path, EDITED)
    code, out, err = run_cli(["exec", str(program), "--replay", str(recorded["transcript"]), "--tools",
                              str(recorded["files"]["tools"])])
    assert code == 0, err
    assert out.endswith('done: {\n  "errors": 8\n}\n')
    assert f"calls: 6 replayed from {recorded['transcript']}, 1 live, 0 refused" in err
    assert '  live     tool.lookup [["WARN"], {}]' in err


def test_replay_only_refuses_a_call_the_run_never_made(recorded, tmp_path):
    program = _program(tmp_path, EDITED)
    code, _, err = run_cli(["exec", str(program), "--replay", str(recorded["transcript"]), "--tools",
                            str(recorded["files"]["tools"]), "--replay-only"])
    assert code == EXIT_CODES["error"]
    assert ("tool 'lookup' was called with arguments the recorded run never used ([[\"WARN\"], {}]); only the "
            "run's own calls can be answered from its transcript: --replay-only refuses calls the run did not "
            "make; drop it to make them live.") in err
    assert "calls: 6 replayed" in err and "1 refused" in err


def test_replay_without_a_live_tool_says_what_would_make_it_live(recorded, tmp_path):
    program = _program(tmp_path, 'done(tool.worker("new text", "Count."))')
    code, _, err = run_cli(["exec", str(program), "--replay", str(recorded["transcript"])])
    assert code == EXIT_CODES["error"]
    assert "pass --worker PROVIDER to make it live." in err


def test_replay_latest_uses_the_runs_own_corpus(recorded, tmp_path, monkeypatch):
    monkeypatch.setenv("PTCRUN_OUT", str(recorded["out"]))
    program = _program(tmp_path, "print(len(data))\n" + EDITED.replace('tool.lookup("WARN")', '"none"'))
    code, out, err = run_cli(["exec", str(program), "--replay", "latest"])
    assert code == 0, err
    assert out.startswith("6\n")
    assert "calls: 6 replayed" in err and "0 live, 0 refused" in err


def test_replay_and_turn_exclude_each_other(recorded):
    code, _, err = run_cli(["exec", str(recorded["transcript"]), "--turn", "2", "--replay", "latest"])
    assert code == EXIT_CODES["config"] and "Give one of them." in err


SLOW_WORKER = '''
import time

def respond(request):
    time.sleep(30)
    return "1"
'''


def test_corpus_json_is_written_when_the_run_starts_so_a_killed_run_replays(tmp_path):
    files = write_files(tmp_path, [block("n = len(data)\nprint('chunks:', n)"),
                                   block("done(sum(pmap(lambda c: int(tool.worker(c, 'n')), data)))")])
    (tmp_path / "slow.py").write_text(SLOW_WORKER)
    argv = ["run", str(files["corpus"]), "--goal", "Count.", "--chunk-lines", "4", "--quiet",
            "--planner", f"scripted:{files['planner']}", "--worker", f"scripted:{tmp_path / 'slow.py'}",
            "--out", str(tmp_path / "runs")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTCRUN_")}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        transcript = None
        while time.monotonic() < deadline:
            found = list((tmp_path / "runs").glob("*/transcript.jsonl"))
            if found and '"call.start"' in found[0].read_text():
                transcript = found[0]
                break
            time.sleep(0.05)
        assert transcript is not None, "the run never reached its worker calls"
        code, out, _ = run_cli(["runs", "--out", str(tmp_path / "runs"), "--json"])
        assert json.loads(out)["status"] == "running"  # its process holds the transcript's lock
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the command and its sandbox child, at once
        process.wait()
    assert "run.end" not in transcript.read_text()
    code, out, err = run_cli(["exec", str(transcript.parent), "--turn", "1"])
    assert (code, out) == (0, "chunks: 6\n"), err
    code, out, _ = run_cli(["runs", "--out", str(tmp_path / "runs"), "--json"])
    assert json.loads(out)["status"] == "interrupted"


def test_exec_turn_cuts_the_data_as_the_run_did_whatever_the_environment_says(recorded, monkeypatch):
    # The environment's chunk size is a default for new runs; a recorded run keeps its own cut.
    monkeypatch.setenv("PTCRUN_CHUNK_LINES", "3")
    code, out, err = run_cli(["exec", str(recorded["transcript"]), "--turn", "1"])
    assert (code, out) == (0, "6\n"), err
    code, _, err = run_cli(["exec", str(recorded["transcript"]), "--turn", "1", "--chunk-lines", "3",
                            "--data", str(recorded["files"]["corpus"])])
    assert code == EXIT_CODES["config"] and "gives 8 chunks but the run had 6" in err


def test_chunk_flags_without_data_are_refused_but_not_the_environments(tmp_path, monkeypatch):
    program = _program(tmp_path, "done(1)")
    code, _, err = run_cli(["exec", str(program), "--chunk-lines", "4"])
    assert code == EXIT_CODES["config"]
    assert "--chunk-lines says how to cut --data, but no --data FILE was given; give both." in err
    monkeypatch.setenv("PTCRUN_CHUNK_LINES", "4")
    code, out, _ = run_cli(["exec", str(program)])
    assert (code, out) == (0, "done: 1\n")
