"""The ``ptcrun`` command: run, show, tree, export, view and exec --turn, through ``main``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.cli import EXIT_CODES

from ..clirun import run_cli

ROOT = Path(__file__).resolve().parents[2]

LOG = "".join(f"2025-01-0{i % 9 + 1} {'ERROR disk full' if i % 3 == 0 else 'INFO ok'}\n" for i in range(24))

LOOK = 'print(len(data), "chunks")\nprint(data[0])'
FAN_OUT = """
counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data)
levels = pmap(lambda level: tool.lookup(level), ["ERROR", "INFO", "BAD"])
print("errors per chunk:", counts)
print("levels:", [str(x) for x in levels])
done({"errors": sum(counts)})
"""

WORKER = '''
def respond(request):
    text = request.messages[0].content.split("<text>", 1)[1]
    return str(text.count("ERROR"))
'''

TOOLS = '''
def lookup(level: str) -> str:
    """Describe a log level."""
    if level == "BAD":
        raise ValueError("unknown level BAD")
    return {"ERROR": "something failed", "INFO": "all fine"}.get(level, "?")
'''


def block(code: str) -> str:
    return f"Here is the program.\n```python\n{code.strip()}\n```"


def write_files(folder: Path, replies: list[str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "corpus": folder / "app.log",
        "planner": folder / "planner.json",
        "worker": folder / "worker.py",
        "tools": folder / "tools.py",
    }
    files["corpus"].write_text(LOG)
    files["planner"].write_text(json.dumps(replies))
    files["worker"].write_text(WORKER)
    files["tools"].write_text(TOOLS)
    return files




def run_args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "run", str(files["corpus"]), "--goal", "How many ERROR lines are in the log?",
        "--chunk-lines", "4", "--planner", f"scripted:{files['planner']}", "--worker",
        f"scripted:{files['worker']}", "--tools", str(files["tools"]), "--out", str(out),
        "--concurrency", "4", *extra,
    ]


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    files = write_files(folder, [block(LOOK), block(FAN_OUT)])
    code, out, err = run_cli(run_args(files, folder / "runs"))
    return code, out, err, files


@pytest.fixture(scope="module")
def transcript(done_run) -> Path:
    _, out, _, _ = done_run
    return Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))


def test_run_prints_the_answer_a_summary_and_the_transcript(done_run, transcript):
    code, out, _, _ = done_run
    assert code == EXIT_CODES["done"] == 0
    assert out.startswith('answer:\n{\n  "errors": 8\n}\n')
    for label in ("status     done", "turns      2", "tokens     ", "cost       ", "wall time  ", "calls      9, "):
        assert f"\n{label}" in out
    assert re.search(r"parallel speed-up \d+\.\dx \(sum of call times / time with a call running\)", out)
    assert transcript.is_file() and Transcript.load(transcript).status == "done"
    corpus = json.loads((transcript.parent / "corpus.json").read_text())
    assert corpus["chunk_lines"] == 4 and corpus["chunks"] == 6


def test_run_progress_is_plain_lines_when_not_a_terminal(done_run):
    _, _, err, _ = done_run
    assert "\x1b[" not in err
    lines = err.splitlines()
    assert lines[0].startswith("turn 1: planner replied (")
    assert "turn 2: pmap t2.m1 started: 6 items" in lines
    assert any(line.startswith("turn 2: pmap t2.m2 ended: 2 ok, 1 failed") for line in lines)
    # The lookup of "BAD" failed, and the answer was built all the same: the run says so.
    assert lines[-3].startswith("run done (partial: 1 of 9 calls failed) after 2 turns · tokens ")
    assert lines[-2] == "run: 1 of 9 calls failed: 1 ToolError"
    assert lines[-1].startswith("ptcrun: warning: 1 of 9 calls failed (1 ToolError); the answer was built while")


@pytest.mark.parametrize(
    ("replies", "extra", "status", "exit_name"),
    [
        ([block("fail('no dates in the log')")], [], "failed", "failed"),
        ([block("print(1)"), block("print(2)")], ["--token-limit", "2600"], "budget_exceeded", "limit"),
        ([block("print(1)")], ["--max-turns", "2"], "max_turns", "limit"),
    ],
)
def test_run_exit_code_follows_the_status(tmp_path, replies, extra, status, exit_name):
    files = write_files(tmp_path, replies)
    code, out, _ = run_cli(run_args(files, tmp_path / "runs", "--json", *extra))
    result = json.loads(out)
    assert (result["status"], code, result["exit_code"]) == (status, EXIT_CODES[exit_name], EXIT_CODES[exit_name])
    assert Path(result["transcript"]).is_file()


def test_quiet_run_prints_no_progress(tmp_path):
    files = write_files(tmp_path, [block("done(len(data))")])
    code, out, err = run_cli(run_args(files, tmp_path / "runs", "--quiet"))
    assert (code, err) == (0, "")
    assert out.startswith("answer:\n6\n")


def test_bad_provider_is_a_config_error(tmp_path):
    files = write_files(tmp_path, [block("done(1)")])
    argv = run_args(files, tmp_path / "runs")
    argv[argv.index("--planner") + 1] = "nonsense"
    code, _, err = run_cli(argv)
    assert code == EXIT_CODES["config"]
    assert err.startswith("ptcrun: provider 'nonsense' is not understood")


def test_show_prints_each_turn(transcript):
    code, out, _ = run_cli(["show", str(transcript)])
    assert code == 0
    assert "── turn 1 ── ok" in out and "── turn 2 ── done" in out
    assert '  1 │ counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data)' in out
    assert "    errors per chunk: [2, 1, 1, 2, 1, 1]" in out


def test_show_one_turn_with_its_calls(transcript):
    code, out, _ = run_cli(["show", str(transcript.parent), "--turn", "2", "--calls"])
    assert code == 0 and "── turn 1 ──" not in out
    assert "  pmap t2.m1: 6 items, 4 threads, 6 ok, 0 failed, ok, " in out
    assert re.search(r"^    2 +\d +c\d+ +worker +ok +\d\.\d{3} +\d+ +1$", out, flags=re.MULTILINE)
    assert "ToolError: tool 'lookup' failed: ValueError: unknown level BAD" in out


def test_show_of_a_missing_transcript_is_a_config_error(tmp_path):
    code, _, err = run_cli(["show", str(tmp_path / "nothing")])
    assert code == EXIT_CODES["config"]
    assert "does not exist" in err


def test_tree_prints_the_span_tree(transcript):
    code, out, _ = run_cli(["tree", str(transcript)])
    assert code == 0
    assert out.startswith("run: How many ERROR lines are in the log?  done  ")
    assert out.count("◀ slowest") == 3


def test_export_writes_chrome_trace_events(transcript):
    code, out, _ = run_cli(["export", str(transcript), "--format", "chrome"])
    assert code == 0
    path = Path(out.strip())
    assert path == transcript.parent / "trace.chrome.json"
    events = json.loads(path.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" and e["cat"] == "call" for e in events) == 9
    code, out, _ = run_cli(["export", str(transcript), "-o", "-"])
    assert json.loads(out)["traceEvents"] == events


def test_view_writes_one_html_file_and_prints_its_path(transcript):
    code, out, _ = run_cli(["view", str(transcript)])
    assert code == 0
    path = Path(out.strip())
    assert path == transcript.parent / "timeline.html"
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'data-pmap="t2.m1"' in text


def test_exec_turn_reruns_a_program_from_recorded_calls(transcript):
    code, out, err = run_cli(["exec", str(transcript), "--turn", "2"])
    assert code == 0
    recorded = Transcript.load(transcript).turn(2)
    assert out == recorded.output + 'done: {\n  "errors": 8\n}\n'
    assert "turn 2: the same output and outcome as the recorded run (9 tool calls replayed, 0 live)" in err


def test_exec_turn_checks_the_data_matches(transcript, tmp_path):
    other = tmp_path / "other.log"
    other.write_text("ERROR\n" * 3)
    code, _, err = run_cli(["exec", str(transcript), "--turn", "2", "--data", str(other), "--chunk-lines", "4"])
    assert code == EXIT_CODES["config"]
    assert "gives 1 chunks but the run had 6" in err


def test_exec_turn_without_a_program_says_which_turns_have_one(tmp_path):
    files = write_files(tmp_path, ["Let me think about it first.", block("done(len(data))")])
    code, out, _ = run_cli(run_args(files, tmp_path / "runs", "--quiet"))
    path = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    code, _, err = run_cli(["exec", path, "--turn", "1"])
    assert code == EXIT_CODES["config"]
    assert "turn 1 has no program (its reply held no code block); turns with one: 2." in err


async def test_replay_refuses_a_call_the_run_never_made(transcript):
    from ptcrun.cli._exec import _Replay
    from ptcrun.errors import ToolError

    replay = _Replay(Transcript.load(transcript).calls)
    worker = replay.tool("worker", None)
    assert await worker.call(["2025-01-01 ERROR disk full\n2025-01-02 INFO ok\n2025-01-03 INFO ok\n2025-01-04 ERROR disk full\n",
                              "Count the ERROR lines."], {"schema": {"type": "integer"}}) == 2
    with pytest.raises(ToolError, match="arguments the recorded run never used"):
        await worker.call(["some other text", "Count."], {})


def test_docs_list_every_exit_code():
    text = (ROOT / "docs" / "cli.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", text, flags=re.MULTILINE))
    assert {name: int(code) for name, code in table.items()} == EXIT_CODES


def test_exec_turn_runs_the_earlier_programs_first_unless_fresh(tmp_path):
    files = write_files(tmp_path, [block("n = len(data)\nprint('chunks:', n)"), block("done(n * 2)")])
    _, out, _ = run_cli(run_args(files, tmp_path / "runs", "--quiet"))
    path = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    code, out, _ = run_cli(["exec", path, "--turn", "2"])
    assert (code, out) == (0, "done: 12\n")  # turn 1 ran first, silently, and defined n
    code, out, err = run_cli(["exec", path, "--turn", "2", "--fresh"])
    assert code == EXIT_CODES["error"]
    assert "NameError" in err and "a different output or outcome" in err


def test_exec_turn_refuses_data_with_the_same_count_but_other_text(transcript, tmp_path):
    # The run had 6 chunks; give 6 different ones: only the recorded fingerprint can tell.
    other = tmp_path / "other.log"
    other.write_text("".join(f"INFO line {i}\n" for i in range(24)))
    code, _, err = run_cli(["exec", str(transcript), "--turn", "2", "--data", str(other), "--chunk-lines", "4"])
    assert code == EXIT_CODES["config"]
    assert "fingerprint" in err


def test_runs_started_from_python_record_a_fingerprint_of_their_data(tmp_path):
    from ptcrun import Runtime, ScriptedProvider
    from ptcrun.corpus._chunking import corpus_digest

    rt = Runtime(planner=ScriptedProvider([block("done(1)")]), transcript_dir=tmp_path)
    result = rt.run("Anything.", ["a", "b"])
    start = json.loads(result.transcript.read_text().splitlines()[0])
    assert start["data"] == {"chunks": 2, "chars": 2, "sha256": corpus_digest(["a", "b"])}


def test_the_exec_example_in_the_cli_doc_prints_what_it_shows(monkeypatch):
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "cli.md").read_text()
    shown = doc.split("$ ptcrun exec examples/hello/count_errors.py", 1)[1].split("```", 1)[0]
    command, expected = shown.split("\n", 1)
    monkeypatch.chdir(root)
    code, out, _ = run_cli(["exec", "examples/hello/count_errors.py", *command.split()])
    assert code == EXIT_CODES["done"]
    assert out == expected


def test_exit_codes_are_the_error_classes_own():
    from ptcrun import errors

    assert EXIT_CODES["config"] == errors.ConfigError.exit_code == errors.TranscriptError.exit_code
    assert EXIT_CODES["limit"] == errors.LimitExceeded.exit_code == errors.BudgetExceeded.exit_code
    assert EXIT_CODES["sandbox"] == errors.SandboxError.exit_code
    assert EXIT_CODES["error"] == errors.PtcrunError.exit_code == errors.ProviderError.exit_code
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type):
            assert cls.exit_code in EXIT_CODES.values(), name
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)  # no two endings share a code


def test_every_run_status_has_an_exit_code():
    import typing

    from ptcrun import errors
    from ptcrun._result import Status
    from ptcrun.cli._parser import status_exit_code

    codes = {status: status_exit_code(status, None) for status in typing.get_args(Status)}
    assert codes == {"done": 0, "failed": 1, "budget_exceeded": 3, "max_turns": 3, "timeout": 3,
                     "cancelled": 130, "error": 5}
    # A run that ended with an error exits with that error's code.
    assert status_exit_code("error", errors.SandboxError("child crashed")) == EXIT_CODES["sandbox"]
    assert status_exit_code("error", errors.ConfigError("bad")) == EXIT_CODES["config"]
    assert status_exit_code("error", errors.ProviderError("down", provider="p")) == EXIT_CODES["error"]


def test_exec_of_a_program_stopped_by_a_limit_exits_with_the_limit_code(tmp_path):
    program = tmp_path / "loud.py"
    program.write_text("print('x' * 3_000_000)")
    code, _, err = run_cli(["exec", str(program)])
    assert code == EXIT_CODES["limit"]
    assert "SandboxLimitExceeded" in err


def test_cli_words_name_the_flags_of_the_limits_run_sets():
    from ptcrun.cli._parser import in_cli_words

    message = ("planner turn 2 needs 5,400 tokens; 3,100 of Limits.max_tokens=200,000 remain. "
               "Raise max_tokens, or send less text.")
    assert in_cli_words(message) == ("planner turn 2 needs 5,400 tokens; 3,100 of --token-limit=200,000 remain. "
                                     "Raise --token-limit, or send less text.")
    assert in_cli_words("Limits.max_turns=8; Limits.max_concurrency=16") == "--max-turns=8; --concurrency=16"
    assert in_cli_words("call clock expired after 60 s (Limits.call_timeout). Raise call_timeout.") == (
        "call clock expired after 60 s (--call-timeout). Raise --call-timeout.")
    assert in_cli_words("pmap_timeout=300 is longer than turn_timeout=60; raise turn_timeout or lower "
                        "pmap_timeout.") == ("--pmap-timeout=300 is longer than --turn-timeout=60; raise "
                                             "--turn-timeout or lower --pmap-timeout.")
    # A provider's settings become the flags that set them for both providers.
    assert in_cli_words("failed after 2 attempts: no reply within 2 s (AnthropicProvider(timeout=2, "
                        "max_retries=1)). Check that the server is up, or raise "
                        "AnthropicProvider(timeout=...) for long replies.") == (
        "failed after 2 attempts: no reply within 2 s (--request-timeout=2, --max-retries=1). Check that "
        "the server is up, or raise --request-timeout for long replies.")
    assert in_cli_words("the server asked to wait 86400 s, more than max_retry_wait=60 s. Try again "
                        "later, or raise OpenAICompatProvider(max_retry_wait=...).") == (
        "the server asked to wait 86400 s, more than --max-retry-wait=60 s. Try again later, or raise "
        "--max-retry-wait.")
    # Every Limits field has a flag, so every one is spelled as its flag.
    assert in_cli_words("Limits.worker_max_tokens=1,024. Raise worker_max_tokens.") == (
        "--worker-max-tokens=1,024. Raise --worker-max-tokens.")
    # Keys and servers come from the providers' own variables and the provider string.
    assert in_cli_words("ANTHROPIC_API_KEY is not set; export it or pass AnthropicProvider(api_key=...).") == (
        "ANTHROPIC_API_KEY is not set; export it.")
    assert in_cli_words("OpenAICompatProvider(base_url=...) must start with http:// or https://") == (
        "the base URL (openai:MODEL@URL, or OPENAI_BASE_URL) must start with http:// or https://")
    # Other settings that share a name are left as they are.
    for kept in ("a request of 9,000 tokens; send less text, or lower max_tokens.",
                 "pmap clock expired after 5 s (the pmap's timeout= argument). Raise that timeout= argument."):
        assert in_cli_words(kept) == kept


def test_run_errors_name_the_flag_not_the_limits_field(tmp_path):
    files = write_files(tmp_path, [block("print(1)")])
    code, out, _ = run_cli(run_args(files, tmp_path / "runs", "--json", "--token-limit", "2600"))
    error = json.loads(out)["error"]
    assert code == EXIT_CODES["limit"] and error["type"] == "BudgetExceeded"
    assert "of --token-limit=2,600 remain. Raise --token-limit," in error["message"]
    code, out, _ = run_cli(run_args(files, tmp_path / "runs", "--quiet", "--token-limit", "2600"))
    status = next(line for line in out.splitlines() if line.startswith("status"))
    assert "--token-limit=2,600" in status and "Limits." not in status


@pytest.mark.parametrize("flag", ["--token-limit", "--max-turns", "--concurrency"])
def test_a_limit_flag_below_one_is_a_usage_error_naming_the_flag(tmp_path, flag):
    files = write_files(tmp_path, [block("done(1)")])
    code, _, err = run_cli(run_args(files, tmp_path / "runs", flag, "0"))
    assert code == EXIT_CODES["config"]
    assert f"argument {flag}: must be a whole number of at least 1; got '0'" in err


def test_exec_turn_draws_the_random_numbers_the_run_drew(tmp_path):
    turn_2 = "import random\nprint(random.random(), random.sample(data, 1)[0][:10])\ndone(random.randint(1, 10**9))"
    files = write_files(tmp_path, [block("import random\nfirst = random.random()"), block(turn_2)])
    _, out, _ = run_cli(run_args(files, tmp_path / "runs", "--quiet"))
    path = re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1)
    recorded = Transcript.load(path)
    (seed,) = {e["seed"] for e in recorded.events if e["type"] == "sandbox.start"}
    assert isinstance(seed, int)
    code, out, err = run_cli(["exec", path, "--turn", "2"])
    # Turn 1 drew first, in the run and in the replay: turn 2 continues the same sequence.
    assert code == 0 and out.startswith(recorded.turn(2).output)
    assert "turn 2: the same output and outcome as the recorded run" in err
    _, tree, _ = run_cli(["tree", path])
    assert "sandbox started (pid " in tree and f", random seed {seed})" in tree
