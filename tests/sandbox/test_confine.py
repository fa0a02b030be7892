"""Layer tests for the OS confinement: unrestricted Python in a locked child stays contained.

Each test starts a throwaway interpreter, confines it, then runs *plain* Python (no
RestrictedPython, no namespace curation, no tripwire), as a program that has escaped the
language layer would. What the kernel layers stop must stay stopped without the layers above
them. The control test shows the same operations succeed in an unconfined child, so every
check below can fail.
"""

from __future__ import annotations

import ctypes.util
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

from ptcrun.sandbox.child import _confine, _landlock

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the OS confinement layers are Linux features"
)

ROOT = Path(__file__).resolve().parents[2]

# Everything the bodies use is imported before the lock-down: afterwards no module can load.
PRELUDE = """\
import ctypes, errno, json, os, queue, resource, signal, socket, sys, threading, time
sys.path.insert(0, {root!r})
from ptcrun.sandbox.child import _confine, _landlock, _seccomp

def set_no_new_privs():
    assert ctypes.CDLL(None).prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS

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


def run_child(
    body: str, *, setup: str | None = None, before: str = "", memory_bytes: int = 1 << 30,
    cpu_seconds: float = 10,
) -> subprocess.CompletedProcess[str]:
    """Run body in a fresh `python -I` child after setup (by default: set_rlimits, lock_down).

    `before` runs ahead of the default setup. The timeout only guards against a hang; no test
    asserts on time.
    """
    if setup is None:
        setup = before + CONFINE.format(memory_bytes=memory_bytes, cpu_seconds=cpu_seconds)
    script = PRELUDE.format(root=str(ROOT)) + textwrap.dedent(setup) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        env={}, capture_output=True, text=True, timeout=60, start_new_session=True, check=False,
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


# Each escape, as plain Python; the report maps its name to "ok" or the exception raised.
ESCAPES = """\
def connect():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(("127.0.0.1", {port}))

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

report({{
    "read a file": outcome(lambda: open({secret!r}).read()),
    "write a file": outcome(lambda: open({target!r}, "w").close()),
    "list a directory": outcome(lambda: os.listdir("/")),
    "stat a path": outcome(lambda: os.stat({secret!r})),
    "open a socket": outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()),
    "connect to localhost": outcome(connect),
    "fork": outcome(fork),
    "signal the parent": outcome(lambda: os.kill(os.getppid(), 0)),
    # CPython reports the EPERM of setrlimit as ValueError("not allowed to raise ...").
    "raise a limit": outcome(lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 1))),
}})
"""


CAP_SYS_RESOURCE = 24


def has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


EVERYTHING_WORKS = {
    "read a file": "ok", "write a file": "ok", "list a directory": "ok", "stat a path": "ok",
    "open a socket": "ok", "connect to localhost": "ok", "fork": "ok",
    "signal the parent": "ok", "raise a limit": "ok",
}


def escapes(secret: Path, tmp_path: Path, port: int) -> str:
    return ESCAPES.format(port=port, secret=str(secret), target=str(tmp_path / "written.txt"))


def test_unconfined_child_can_do_everything_the_confined_child_cannot(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    limits_only = "_confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=10)\n"
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=limits_only))
    # Without CAP_SYS_RESOURCE the kernel itself refuses to raise a hard limit.
    raise_limit = "ok" if has_capability(CAP_SYS_RESOURCE) else "ValueError"
    assert result == {**EVERYTHING_WORKS, "raise a limit": raise_limit}
    assert (tmp_path / "written.txt").exists()


def test_confined_child_cannot_touch_files_network_or_processes(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    result = reported(run_child(escapes(secret_file, tmp_path, listener)))
    assert result == {
        **dict.fromkeys(EVERYTHING_WORKS, "PermissionError"), "raise a limit": "ValueError"
    }
    assert not (tmp_path / "written.txt").exists()


def test_confined_child_is_killed_when_it_calls_exec() -> None:
    completed = run_child('os.execv(sys.executable, [sys.executable, "-c", "print(1)"])\n')
    assert completed.returncode == -signal.SIGSYS, completed.stderr


def test_confined_child_keeps_threads_locks_queues_clocks_and_pipes() -> None:
    body = """\
    results = queue.Queue()
    woken = threading.Event()

    def work(item):
        time.sleep(0.001)
        woken.wait(timeout=0.001)
        results.put(item * item)

    workers = [threading.Thread(target=work, args=(item,)) for item in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lock = threading.Lock()
    lock.acquire()
    os.write(write_end, b"frame")
    block = bytearray(100 * 1024 * 1024)
    report({
        "squares": sorted(results.get() for _ in range(8)),
        "second acquire": lock.acquire(timeout=0.001),
        "pipe": os.read(read_end, 5).decode(),
        "clock moves": time.monotonic() < time.monotonic() + 1,
        "cpu seconds": resource.getrusage(resource.RUSAGE_SELF).ru_utime >= 0,
        "allocated": len(block),
        "cpu limit": list(resource.getrlimit(resource.RLIMIT_CPU)),
        "fstat of a pipe": outcome(lambda: os.fstat(read_end)),
    })
    """
    # The pipe is opened before the lock-down, as the child's protocol pipes are.
    opened = "read_end, write_end = os.pipe()\n"
    assert reported(run_child(body, before=opened, cpu_seconds=9.5)) == {
        "squares": [0, 1, 4, 9, 16, 25, 36, 49],
        "second acquire": False,
        "pipe": "frame",
        "clock moves": True,
        "cpu seconds": True,
        "allocated": 100 * 1024 * 1024,
        "cpu limit": [10, 11],
        "fstat of a pipe": "ok",
    }


def test_huge_allocation_raises_memory_error_and_the_child_goes_on() -> None:
    body = """\
    failure = outcome(lambda: "a" * 10**10)
    done = []
    worker = threading.Thread(target=lambda: done.append(True))
    worker.start()
    worker.join()
    report({"allocation": failure, "thread after it": done})
    """
    result = reported(run_child(body, memory_bytes=512 << 20))
    assert result == {"allocation": "MemoryError", "thread after it": [True]}


def test_busy_loop_is_killed_by_the_cpu_limit() -> None:
    completed = run_child("while True:\n    pass\n", cpu_seconds=1)
    assert completed.returncode in (-signal.SIGXCPU, -signal.SIGKILL), completed.stderr


def test_sigxcpu_handler_runs_after_lock_down() -> None:
    body = """\
    class OutOfCpu(Exception):
        pass

    def on_sigxcpu(signum, frame):
        raise OutOfCpu

    signal.signal(signal.SIGXCPU, on_sigxcpu)
    try:
        while True:
            pass
    except OutOfCpu:
        report("stopped by SIGXCPU")
    """
    assert reported(run_child(body, cpu_seconds=1)) == "stopped by SIGXCPU"


def test_confined_child_can_move_its_cpu_soft_limit_but_not_past_the_hard_one() -> None:
    body = """\
    def set_cpu(soft, hard):
        return lambda: resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    report({
        "lower soft": outcome(set_cpu(3, 11)),
        "raise soft to hard": outcome(set_cpu(11, 11)),
        "raise hard": outcome(set_cpu(11, 12)),
        "raise memory": outcome(lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))),
        "cpu limit": list(resource.getrlimit(resource.RLIMIT_CPU)),
    })
    """
    assert reported(run_child(body, cpu_seconds=10)) == {
        "lower soft": "ok",
        "raise soft to hard": "ok",
        "raise hard": "ValueError",
        "raise memory": "ValueError",
        "cpu limit": [11, 11],
    }


def test_lock_down_reports_what_it_applied() -> None:
    body = """\
    report(layers.as_dict())
    """
    result = reported(run_child(body))
    assert result["no_new_privs"] is True
    assert result["rlimits"] is True
    # Which kernel layers apply depends on the machine; the probe test pins them down.
    assert set(result) == {
        "no_new_privs", "seccomp", "landlock_abi", "network_namespace", "rlimits", "notes"
    }


def test_strict_lock_down_names_the_missing_layer() -> None:
    completed = run_child("", setup="_confine.lock_down(strict=True)\n")
    assert completed.returncode == 1
    assert "RuntimeError: sandbox lock-down is missing rlimits (strict mode)" in completed.stderr
    assert "set_rlimits() was not called first" in completed.stderr


def test_lock_down_refuses_a_process_that_already_runs_threads() -> None:
    setup = """\
    parked = threading.Event()
    threading.Thread(target=parked.wait, daemon=True).start()
    report(outcome(_confine.lock_down))
    parked.set()
    """
    assert reported(run_child("", setup=setup)) == "RuntimeError"


def test_rlimits_cannot_be_raised_by_set_rlimits() -> None:
    setup = """\
    _confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=5, open_files=32)
    _confine.set_rlimits(memory_bytes=1 << 31, cpu_seconds=50, open_files=64)
    report({
        "memory": list(resource.getrlimit(resource.RLIMIT_AS)),
        "cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
        "files": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
        "file size": list(resource.getrlimit(resource.RLIMIT_FSIZE)),
    })
    """
    assert reported(run_child("", setup=setup)) == {
        "memory": [1 << 30, 1 << 30],
        "cpu": [6, 6],
        "files": [32, 32],
        "core": [0, 0],
        "file size": [0, 0],
    }


def test_lock_down_without_libseccomp_notes_it_and_keeps_the_other_layers(
    secret_file: Path,
) -> None:
    hide_pyseccomp = "sys.modules['pyseccomp'] = None\n"
    body = f"""\
    report({{
        "seccomp": layers.seccomp,
        "notes": list(layers.notes),
        "landlock": layers.landlock_abi > 0,
        "read a file": outcome(lambda: open({str(secret_file)!r})),
    }})
    """
    result = reported(run_child(body, before=hide_pyseccomp))
    assert result["seccomp"] is False
    assert result["notes"] == [
        (
            "seccomp: pyseccomp cannot load libseccomp: import of pyseccomp halted; "
            "None in sys.modules"
        )
    ]
    assert result["read a file"] == ("PermissionError" if result["landlock"] else "ok")


def test_strict_lock_down_without_libseccomp_refuses_to_go_on() -> None:
    setup = (
        "sys.modules['pyseccomp'] = None\n"
        "_confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=10)\n"
        "report(outcome(lambda: _confine.lock_down(strict=True)))\n"
    )
    assert reported(run_child("", setup=setup)) == "RuntimeError"


def test_lock_down_with_network_keeps_tcp_clients_but_not_files(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    setup = (
        "_confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=10)\n"
        "layers = _confine.lock_down(network=True)\n"
    )
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=setup))
    assert result == {
        **dict.fromkeys(EVERYTHING_WORKS, "PermissionError"),
        "open a socket": "ok",
        "connect to localhost": "ok",
        "raise a limit": "ValueError",
    }


# Each kernel layer alone, without the others: defence in depth means each one holds by itself.


def test_landlock_alone_denies_files_tcp_and_signals(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    abi = _landlock.abi_version()
    if abi == 0:
        pytest.skip("this kernel offers no Landlock (test_probe_* checks the report agrees)")
    setup = "set_no_new_privs()\n_landlock.restrict_self()\n"
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=setup))
    assert result == {
        **EVERYTHING_WORKS,
        "read a file": "PermissionError",
        "write a file": "PermissionError",
        "list a directory": "PermissionError",
        "connect to localhost": "PermissionError" if abi >= 4 else "ok",
        "signal the parent": "PermissionError" if abi >= 6 else "ok",
    }


def test_landlock_alone_denies_exec() -> None:
    if _landlock.abi_version() == 0:
        pytest.skip("this kernel offers no Landlock (test_probe_* checks the report agrees)")
    setup = "set_no_new_privs()\n_landlock.restrict_self()\n"
    body = "report(outcome(lambda: os.execv(sys.executable, [sys.executable, '-c', ''])))\n"
    assert reported(run_child(body, setup=setup)) == "PermissionError"


def test_seccomp_alone_denies_files_sockets_processes_and_limits(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    setup = "set_no_new_privs()\n_seccomp.prepare_filter()()\n"
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=setup))
    assert result == {
        **dict.fromkeys(EVERYTHING_WORKS, "PermissionError"), "raise a limit": "ValueError"
    }


def test_network_namespace_alone_cuts_off_localhost(
    secret_file: Path, tmp_path: Path, listener: int
) -> None:
    setup = "note = _confine._unshare_network()\nif note: report(note); sys.exit(0)\n"
    result = reported(run_child(escapes(secret_file, tmp_path, listener), setup=setup))
    if isinstance(result, str):
        pytest.skip(f"no network namespace here: {result}")
    assert result == {**EVERYTHING_WORKS, "connect to localhost": "OSError"}


# Capability probes: on a machine that has a layer, the probe must report it, so a change
# that silently stops applying a layer fails here instead of weakening the sandbox.


def machine_has_seccomp() -> bool:
    status = Path("/proc/self/status").read_text()
    return "\nSeccomp:" in status and ctypes.util.find_library("seccomp") is not None


def test_probe_reports_every_layer_this_machine_supports() -> None:
    layers = _confine.probe()
    assert layers.no_new_privs, layers.notes
    assert layers.rlimits, layers.notes
    assert layers.seccomp == machine_has_seccomp(), layers.notes
    assert layers.landlock_abi == _landlock.abi_version(), layers.notes


def test_probe_does_not_confine_the_caller(secret_file: Path) -> None:
    def confinement() -> list[str]:
        lines = Path("/proc/self/status").read_text().splitlines()
        return [line for line in lines if line.startswith(("NoNewPrivs", "Seccomp"))]

    before = confinement()
    _confine.probe.cache_clear()
    _confine.probe()
    assert confinement() == before
    assert secret_file.read_text() == "host secret"
    assert os.getcwd()


def test_layers_as_dict_is_json() -> None:
    layers = _confine.Layers(
        no_new_privs=True, seccomp=False, landlock_abi=3, network_namespace=False,
        rlimits=True, notes=("seccomp: missing",),
    )
    assert json.loads(json.dumps(layers.as_dict())) == {
        "no_new_privs": True, "seccomp": False, "landlock_abi": 3,
        "network_namespace": False, "rlimits": True, "notes": ["seccomp: missing"],
    }
