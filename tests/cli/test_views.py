"""``show`` prints the planner's text around its code and, with ``--prompt``, its whole request;
``tree --depth N`` draws N levels; ``view --open`` opens the page in the user's browser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.transcript._wording import planner_prose

from ..clirun import run_cli
from .test_cli import FAN_OUT, run_args, write_files

REPLY = f"""I will count the errors chunk by chunk.
```python
{FAN_OUT.strip()}
```
Then I add the counts up."""


@pytest.fixture(scope="module")
def transcript(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views")
    files = write_files(folder, [REPLY])
    code, out, err = run_cli(run_args(files, folder / "runs", "--quiet"))
    assert code == 0, err
    return Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))


def test_show_prints_the_planners_text_around_its_code(transcript):
    code, out, _ = run_cli(["show", str(transcript)])
    assert code == 0
    turn = out.split("── turn 1 ──", 1)[1]
    assert "  planner:\n    I will count the errors chunk by chunk.\n  1 │ counts = pmap(" in turn
    assert "  planner, after the code:\n    Then I add the counts up.\n" in turn


def test_show_prompt_prints_the_planners_whole_request(transcript):
    request = Transcript.load(transcript).turn(1).planner
    code, out, _ = run_cli(["show", str(transcript), "--prompt"])
    assert code == 0
    assert f"  prompt, system ({len(request.system):,} chars):\n" in out
    for line in request.system.splitlines():
        assert f"    │ {line}".rstrip() in out
    assert "  prompt, message 1 (user, " in out
    code, plain, _ = run_cli(["show", str(transcript)])
    assert "prompt, system" not in plain


@pytest.mark.parametrize(
    ("reply", "before", "after"),
    [
        ("```python\ndone(1)\n```", "", ""),
        ("no code at all", "no code at all", ""),
        ("A\n```python\nx = 1\n```\nB\n```python\ndone(x)\n```\nC", "A", "C"),
        ("A\n```python\ndone(1)", "A", ""),  # a block the reply ended inside
    ],
)
def test_planner_prose(reply, before, after):
    assert planner_prose(reply) == (before, after)


def test_tree_depth_draws_that_many_levels_and_counts_the_rest(transcript):
    _, whole, _ = run_cli(["tree", str(transcript)])
    code, out, _ = run_cli(["tree", str(transcript), "--depth", "2"])
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith("run: ")
    assert all(not line.startswith(("│  ", "   ")) for line in lines[1:])  # no third level
    hidden = int(re.search(r"turn 1 .*\(\+(\d+) spans below\)", out).group(1))
    assert hidden == len(whole.splitlines()) - len(lines) - 2  # the legend and its blank line are gone
    assert "slowest" not in out  # no legend for marks that are not drawn
    code, one, _ = run_cli(["tree", str(transcript), "--depth", "1"])
    assert one.splitlines()[0].endswith("spans below)") and len(one.splitlines()) == 1


def test_view_open_hands_the_page_to_the_browser(transcript, tmp_path):
    browser = tmp_path / "browser.py"
    opened = tmp_path / "opened.txt"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTCRUN_")}
    env["BROWSER"] = f"{sys.executable} {browser} %s"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", "view",
         str(transcript), "-o", str(tmp_path / "page.html"), "--open"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'page.html'}\n"
    assert opened.read_text() == (tmp_path / "page.html").resolve().as_uri()


def test_view_open_passes_a_strange_path_as_one_quoted_argument(transcript, tmp_path):
    """A run folder's name reaches the browser command as one URL, never as shell words."""
    browser = tmp_path / "browser.py"
    opened = tmp_path / "opened.txt"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(repr(sys.argv[1:]))\n")
    strange = tmp_path / "a b;touch pwned $(touch pwned2)" / "page.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTCRUN_")}
    env["BROWSER"] = f"{sys.executable} {browser} %s"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", "view",
         str(transcript), "-o", str(strange), "--open"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == repr([strange.resolve().as_uri()])
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_view_without_open_opens_nothing(transcript, tmp_path, monkeypatch):
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: pytest.fail("a browser was opened"))
    code, _, _ = run_cli(["view", str(transcript), "-o", str(tmp_path / "page.html")])
    assert code == 0


def test_progress_show_and_view_name_the_flags_in_error_messages(tmp_path):
    """A run that ran out of budget and a call that ran out of time, as the progress lines, show
    and view tell them to a CLI user: by their flags, where the Python views keep the ``Limits``
    words."""
    from ptcrun.transcript._html import render_html
    from ptcrun.transcript._views import render_show

    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n"
        "def respond(request):\n"
        "    time.sleep(1)\n"
        "    return 'late'\n"
    )
    replies = ["```python\nprint(tool.worker(data[0], 'count'))\n```",
               "```python\nprint(pmap(lambda c: tool.worker(c, 'count ' * 3000), data))\n```"]
    files = write_files(tmp_path, replies)
    code, out, err = run_cli(run_args(files, tmp_path / "runs", "--worker", f"scripted:{slow}",
                                      "--call-timeout", "0.2", "--token-limit", "5000", "--planner-max-tokens", "200",
                                      "--worker-max-tokens", "50", "--feedback-reserve-tokens", "100"))
    assert code == 3, err  # budget_exceeded
    # The progress lines on standard error spell them as flags too.
    program_error = next(line for line in err.splitlines() if line.startswith("turn 1: program error: "))
    assert "(--call-timeout); tool 'worker' did not answer in time. Raise --call-timeout." in program_error
    assert "Limits." not in err and "call_timeout" not in err and "max_tokens" not in err
    transcript = Path(re.search(r"^transcript (.+)$", out, flags=re.MULTILINE).group(1))
    t = Transcript.load(transcript)
    assert t.status == "budget_exceeded" and "Limits.max_tokens" in t.error["message"]
    assert [c.error["type"] for c in t.calls] == ["TimeLimitExceeded"] + ["BudgetExceeded"] * 6
    assert "Limits.call_timeout" in t.calls[0].error["message"]

    code, shown, _ = run_cli(["show", str(transcript), "--calls"])
    assert code == 0
    status = next(line for line in shown.splitlines() if line.startswith("status "))
    assert "--token-limit" in status and "Limits." not in status and "max_tokens" not in status
    errors = [line for line in shown.splitlines() if "Exceeded: " in line and "Failure(" not in line]
    assert len(errors) == 9, errors  # the turn's error, the seven calls' (cut to a preview), the run's
    assert all("--call-t" in line or "of --" in line for line in errors), errors
    assert not any("Limits." in line or "call_timeout" in line for line in errors), errors
    code, _, _ = run_cli(["view", str(transcript)])
    page = (transcript.parent / "timeline.html").read_text()
    run_error = re.search(r'<div class="error-box" id="run-error">([^<]*)</div>', page).group(1)
    assert "--token-limit" in run_error and "Limits.max_tokens" not in run_error
    assert "--call-timeout" in page
    # From Python, the views speak the Python API's words.
    assert "Limits.max_tokens" in render_show(t) and "Limits.max_tokens" in render_html(t)
