"""The live display on a real terminal: its clock moves while the planner thinks."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import pytest

pty = pytest.importorskip("pty")

PLANNER = '''
import time

def respond(request):
    time.sleep(2)
    return "Done.\\n```python\\ndone(len(data))\\n```"
'''


def read_all(fd: int, proc: subprocess.Popen[bytes], deadline: float) -> str:
    out = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out.decode("utf-8", "replace")


def test_the_display_ticks_while_the_planner_thinks(tmp_path):
    (tmp_path / "planner.py").write_text(PLANNER)
    (tmp_path / "corpus.txt").write_text("one line\n")
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ptcrun.cli import main; sys.exit(main())", "run", "corpus.txt", "--goal", "count",
         "--planner", "scripted:planner.py", "--token-limit", "50000", "--out", "runs"],
        cwd=tmp_path, stdin=child, stdout=child, stderr=child, close_fds=True,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(child)
    try:
        text = read_all(main, proc, time.monotonic() + 60)
        assert proc.wait(timeout=30) == 0, text
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    thinking = [float(s) for s in re.findall(r"planner thinking (\d+\.\d) s", text)]
    # Redrawn by the timer about every 0.5 s during the 2 s the planner takes.
    assert len(thinking) >= 3, text
    assert thinking == sorted(thinking) and thinking[-1] >= 1.5, text
    assert "tokens " in text and "/ 50,000" in text, text
    # The finished turn stays on screen after the live lines are redrawn.
    assert re.search(r"turn 1: done · \d+\.\d s · tokens", text), text
