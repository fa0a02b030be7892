"""Layer tests for the OS confinement: unrestricted Python in a locked child stays contained.

Each test starts a throwaway interpreter, confines it, then runs *plain* Python (no
RestrictedPython, no namespace curation, no tripwire), as a program that has escaped the
language layer would. What the kernel layers stop must stay stopped without the layers above
them. The control test shows the same operations succeed in an unconfined child, so every
check below can fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the OS confinement layers are Linux features"
)

ROOT = Path(__file__).resolve().parents[2]

# Everything the bodies use is imported before the lock-down: afterwards no module can load.
PRELUDE = """\
import errno, json, os, queue, resource, signal, socket, sys, threading, time
sys.path.insert(0, {root!r})
from ptcrun.sandbox import _confine, _landlock, _seccomp

def outcome(action):
    try:
        action()
    except Exception as exc:
        return type(exc).__name__
    return "ok"

def report(value):
    sys.stdout.write(json.dumps(value) + "\\n")
    sys.stdout.flush()
"""

CONFINE = """\
_confine.set_rlimits(memory_bytes={memory_bytes}, cpu_seconds={cpu_seconds})
layers = _confine.lock_down()
"""


def run_child(body: str, *, setup: str = CONFINE, memory_bytes: int = 1 << 30,
              cpu_seconds: float = 10) -> subprocess.CompletedProcess[str]:
    """Run body in a fresh `python -I` child after setup; the hang guard is not an assertion."""
    script = (
        PRELUDE.format(root=str(ROOT))
        + setup.format(memory_bytes=memory_bytes, cpu_seconds=cpu_seconds)
        + textwrap.dedent(body)
    )
    return subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        env={}, capture_output=True, text=True, timeout=60, start_new_session=True,
    )


def reported(completed: subprocess.CompletedProcess[str]) -> Any:
    """Return the value the child reported last, failing with its stderr if there is none."""
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections; yields its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("host secret")
    return path


ESCAPES = """\
port = {port}
def connect():
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
report({{
    "read": outcome(lambda: open({secret!r}).read()),
    "write": outcome(lambda: open({target!r}, "w").write("x")),
    "listdir": outcome(lambda: os.listdir("/")),
    "socket": outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()),
    "connect": outcome(connect),
    "fork": outcome(lambda: os.fork() or None),
    "kill": outcome(lambda: os.kill(os.getppid(), 0)),
}})
if os.getpid() == {{pid}}:
    pass
"""


def escapes(secret: Path, tmp_path: Path, port: int) -> str:
    # A forked child (should fork ever work) must not report twice: it exits at once.
    body = ESCAPES.format(port=port, secret=str(secret), target=str(tmp_path / "written.txt"))
    return "parent = os.getpid()\n" + body.replace(
        "if os.getpid() == {pid}:\n    pass\n", ""
    ).replace('outcome(lambda: os.fork() or None)', 'outcome(lambda: os.fork() or None) if os.getpid() == parent else os._exit(0)')


def test_unconfined_child_can_do_everything_the_confined_child_cannot(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=""))
    assert result == {
        "read": "ok", "write": "ok", "listdir": "ok", "socket": "ok", "connect": "ok",
        "fork": "ok", "kill": "ok",
    }


def test_confined_child_cannot_touch_files_network_or_processes(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    result = reported(run_child(escapes(secret_file, tmp_path, listener)))
    assert result == {
        "read": "PermissionError", "write": "PermissionError", "listdir": "PermissionError",
        "socket": "PermissionError", "connect": "PermissionError", "fork": "PermissionError",
        "kill": "PermissionError",
    }
    assert not (tmp_path / "written.txt").exists()
