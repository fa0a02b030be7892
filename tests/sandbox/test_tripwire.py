"""The audit-hook tripwire, alone: what it refuses outside trusted sections, and what it lets run.

An audit hook cannot be removed, so every test installs it in a throwaway child.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """\
import ctypes, gc, json, marshal, os, queue, socket, sys, threading, time, types
sys.path.insert(0, {root!r})
from ptcrun.sandbox.child import _confine
from ptcrun.sandbox.child._confine import exec_program, install_tripwire, trusted

def outcome(action):
    try:
        action()
    except Exception as exc:
        return f"{{type(exc).__name__}}: {{exc}}"
    return "ok"

def report(value):
    sys.stdout.write(json.dumps(value) + "\\n")
"""


def run_child(body: str) -> Any:
    """Run body in a fresh `python -I` child; return the value it reported last."""
    completed = subprocess.run(
        [sys.executable, "-I", "-B", "-c", PRELUDE.format(root=str(ROOT)) + textwrap.dedent(body)],
        env={}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def blocked(event: str) -> str:
    return f"PermissionError: blocked by the sandbox: {event}"


def test_tripwire_blocks_files_imports_dynamic_code_and_frames_outside_trusted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("host secret")
    body = f"""\
    def probe():
        pass

    with trusted():
        code = compile("x = 1", "<program>", "exec")
    install_tripwire()
    report({{
        "open": outcome(lambda: open({str(path)!r}).read()),
        "import": outcome(lambda: __import__("wave")),
        "compile": outcome(lambda: compile("1", "<x>", "eval")),
        "exec": outcome(lambda: exec(code, {{}})),
        "eval": outcome(lambda: eval("1")),
        "frame": outcome(lambda: sys._getframe()),
        "code attribute": outcome(lambda: probe.__code__),
        "new function": outcome(lambda: types.FunctionType(code, {{}})),
        "new code": outcome(lambda: code.replace(co_name="other")),
        "gc": outcome(lambda: gc.get_objects()),
        "settrace": outcome(lambda: sys.settrace(None)),
        "marshal": outcome(lambda: marshal.dumps(1)),
        "ctypes": outcome(lambda: ctypes.CDLL(None)),
        "system": outcome(lambda: os.system("true")),
        "kill": outcome(lambda: os.kill(os.getpid(), 0)),
        "socket": outcome(lambda: socket.socket()),
    }})
    """
    assert run_child(body) == {
        "open": blocked("open"),
        "import": blocked("import"),
        "compile": blocked("compile"),
        "exec": blocked("exec"),
        "eval": blocked("compile"),
        "frame": blocked("sys._getframe"),
        "code attribute": blocked("object.__getattr__"),
        "new function": blocked("function.__new__"),
        "new code": blocked("code.__new__"),
        "gc": blocked("gc.get_objects"),
        "settrace": blocked("sys.settrace"),
        "marshal": blocked("marshal.dumps"),
        "ctypes": blocked("ctypes.dlopen"),
        "system": blocked("os.system"),
        "kill": blocked("os.kill"),
        "socket": blocked("socket.__new__"),
    }


def test_tripwire_lets_loaded_imports_threads_queues_and_sleep_run() -> None:
    body = """\
    install_tripwire()
    results = queue.Queue()
    woken = threading.Event()

    def work(item):
        import json as again
        time.sleep(0.001)
        woken.wait(timeout=0.001)
        results.put(again.dumps(item))

    workers = [threading.Thread(target=work, args=(item,)) for item in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report(sorted(results.get() for _ in range(4)))
    """
    assert run_child(body) == ["0", "1", "2", "3"]


def test_trusted_section_allows_compile_and_frames_on_its_own_thread_only() -> None:
    body = """\
    install_tripwire()
    seen = {}
    with trusted():
        with trusted():
            seen["nested compile"] = outcome(lambda: compile("1", "<x>", "eval"))
        seen["frame"] = outcome(lambda: sys._getframe())
        other = threading.Thread(target=lambda: seen.update(other=outcome(sys._getframe)))
        other.start()
        other.join()
    seen["after"] = outcome(lambda: sys._getframe())
    report(seen)
    """
    assert run_child(body) == {
        "nested compile": "ok",
        "frame": "ok",
        "other": blocked("sys._getframe"),
        "after": blocked("sys._getframe"),
    }


def test_trusted_section_still_blocks_processes_and_sockets() -> None:
    body = """\
    install_tripwire()
    with trusted():
        report({
            "socket": outcome(lambda: socket.socket()),
            "system": outcome(lambda: os.system("true")),
        })
    """
    assert run_child(body) == {"socket": blocked("socket.__new__"), "system": blocked("os.system")}


def test_exec_program_runs_the_program_with_the_tripwire_armed() -> None:
    program = """\
    seen = {}
    seen["compile"] = outcome(lambda: compile("1", "<x>", "eval"))
    seen["frame"] = outcome(lambda: sys._getframe())
    seen["exec again"] = outcome(lambda: exec(own_code, {}))
    runs.append(1)
    """
    body = f"""\
    install_tripwire()
    with trusted():
        code = compile({textwrap.dedent(program)!r}, "<program>", "exec")
    namespace = {{"outcome": outcome, "sys": sys, "own_code": code, "runs": []}}
    exec_program(code, namespace)
    exec_program(code, namespace)
    report({{"seen": namespace["seen"], "runs": len(namespace["runs"])}})
    """
    assert run_child(body) == {
        "seen": {
            "compile": blocked("compile"),
            "frame": blocked("sys._getframe"),
            "exec again": blocked("exec"),
        },
        "runs": 2,
    }


def test_exec_program_refuses_to_run_inside_a_trusted_section() -> None:
    body = """\
    install_tripwire()
    with trusted():
        code = compile("x = 1", "<program>", "exec")
        report(outcome(lambda: exec_program(code, {})))
    """
    result = run_child(body)
    assert result.startswith("RuntimeError: exec_program() was called inside trusted()")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lock_down is Linux-only")
def test_lock_down_works_after_the_tripwire_is_installed() -> None:
    body = """\
    install_tripwire()
    _confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=10)
    layers = _confine.lock_down()
    report({"no_new_privs": layers.no_new_privs, "open": outcome(lambda: open("/"))})
    """
    assert run_child(body) == {"no_new_privs": True, "open": blocked("open")}
