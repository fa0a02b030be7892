"""The host's watch over one sandbox child: the evidence of how it lived and why it died.

When a child dies, its exit status alone does not say who ended it (see :mod:`~._death`), so
a :class:`ChildWatch` keeps, for one child:

* the signals the host sent it, each with why, so the host never takes its own kill for
  someone else's;
* its CPU time and the memory cgroup's out-of-memory kill count when each program started
  (``/proc/<pid>/stat`` and the cgroup's ``oom_kill`` counter: two small file reads);
* the last few KiB it wrote to stderr, drained on a thread;
* at its death, the rusage of ``os.wait4`` (total CPU time, peak resident memory), which the
  watch gets by reaping the child itself.

Evidence that cannot be read (no ``/proc``, no cgroup, no ``pidfd_open``) is ``None``.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import trio

from ._death import Death

__all__ = ["ChildWatch"]


class _StderrTail:
    """Drain the child's stderr on a thread, keeping the last few KiB.

    The pipe must never fill: a child blocked writing to it (Python's "Exception ignored"
    messages, say) would hang with its program half done. What is kept explains a crash.
    """

    def __init__(self, fd: int, keep_bytes: int = 4096) -> None:
        self._fd = fd
        self._keep = keep_bytes
        self._tail = b""
        #: Bytes drained so far, kept or not.
        self.total = 0
        self.finished = threading.Event()
        threading.Thread(target=self._drain, name="ptcrun-child-stderr", daemon=True).start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                self._tail = (self._tail + chunk)[-self._keep :]
                self.total += len(chunk)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self.finished.set()

    def text(self, since: int = 0) -> str:
        """The kept tail, without what was written before byte ``since`` of the stream."""
        tail = self._tail
        return tail[max(len(tail) - (self.total - since), 0) :].decode("utf-8", "replace")


def _cpu_of(pid: int) -> float | None:
    """The CPU time (user + system, all threads) process ``pid`` used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
        # The command name, in parentheses, may hold spaces: count fields after its end.
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@functools.cache
def _oom_counter() -> Path | None:
    """The file of the host's memory cgroup that counts out-of-memory kills, if readable.

    The child runs in the host's cgroup, and the kernel counts a kill in the victim's cgroup
    whichever limit (the cgroup's or the machine's) ran out. cgroup v2 keeps the counter in
    ``memory.events``, v1 in ``memory.oom_control``.
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            candidates.append(Path("/sys/fs/cgroup", path.lstrip("/"), "memory.events"))
        elif "memory" in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.oom_control"))
    return next((c for c in candidates if _read_oom_kills(c) is not None), None)


def _read_oom_kills(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def _oom_kills() -> int | None:
    path = _oom_counter()
    return None if path is None else _read_oom_kills(path)


class ChildWatch:
    """Watch one child from its start to its death; the driver holds one per child.

    Args:
        process: the child, started in a session of its own (its pid is its group's id).
        stderr_fd: the host's end of the child's stderr pipe; the watch drains and closes it.
    """

    def __init__(self, process: trio.Process, stderr_fd: int) -> None:
        self.process = process
        self._stderr = _StderrTail(stderr_fd)
        self._signals: list[tuple[int, str]] = []
        self._reaped = False
        self._cpu_at_start: float | None = None
        self._oom_at_start: int | None = None
        self._stderr_at_start = 0

    @property
    def host_signals(self) -> tuple[tuple[int, str], ...]:
        """The signals the host sent this child, each with why."""
        return tuple(self._signals)

    def kill(self, reason: str) -> None:
        """Send SIGKILL to the child's process group, and record that the host did, and why.

        A child already reaped is left alone: its id may belong to another process by now.
        """
        if self._reaped or self.process.returncode is not None:
            return
        self._signals.append((signal.SIGKILL, reason))
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def program_starts(self) -> None:
        """Measure the child as a program is about to be sent: its CPU time, the OOM kills,
        how much it wrote to stderr (what earlier programs left there explains nothing now)."""
        self._cpu_at_start = _cpu_of(self.process.pid)
        self._oom_at_start = _oom_kills()
        self._stderr_at_start = self._stderr.total

    async def reap(self, grace: float) -> tuple[int | None, Any]:
        """Wait up to ``grace`` seconds for the child to exit; reap it; return status and rusage.

        Where ``os.pidfd_open`` exists, the watch reaps the child itself with ``os.wait4``,
        which also returns the rusage; ``process.returncode`` then reads 0, so use the status
        returned here. Just before reaping, the group is killed while the dead leader still
        holds its id, so nothing the child started outlives it. Elsewhere this waits on the
        process and returns no rusage.

        Returns:
            ``(returncode, rusage)``: the status as ``subprocess`` gives it (minus the signal
            number for a signal), or ``None`` if the child still runs after ``grace``; and the
            rusage, or ``None``.
        """
        if self._reaped:
            return None, None
        process = self.process
        try:
            pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            pidfd = None
        if pidfd is None:
            with trio.move_on_after(grace):
                await process.wait()
            self._reaped = process.returncode is not None
            return process.returncode, None
        try:
            with trio.move_on_after(grace):
                await trio.lowlevel.wait_readable(pidfd)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                while True:  # wait4 may lag the pidfd by a moment while the last threads exit
                    pid, status, usage = os.wait4(process.pid, os.WNOHANG)  # noqa: ASYNC222 (never blocks)
                    if pid == process.pid:
                        self._reaped = True
                        return os.waitstatus_to_exitcode(status), usage
                    await trio.sleep(0.01)
        except ChildProcessError:  # reaped elsewhere: the status is lost
            self._reaped = True
        finally:
            os.close(pidfd)
        return None, None

    async def stderr_text(self, since: int = 0) -> str:
        """The last few KiB the child wrote to stderr (after byte ``since``), once drained."""
        await trio.to_thread.run_sync(self._stderr.finished.wait, 0.5)
        return self._stderr.text(since)

    async def death(self, grace: float) -> Death:
        """Reap the dying child and return the evidence of why it died.

        A child that still runs ``grace`` seconds after its pipe closed can no longer run
        programs: the host kills it (and records that it did) and reaps it then.
        """
        returncode, usage = await self.reap(grace)
        if returncode is None and not self._reaped:
            self.kill("it closed its pipe but did not exit")
            returncode, usage = await self.reap(grace)
        life = program = peak = None
        if usage is not None:
            life = usage.ru_utime + usage.ru_stime
            if self._cpu_at_start is not None:
                program = max(life - self._cpu_at_start, 0.0)
            # Linux counts ru_maxrss in KiB, macOS in bytes.
            peak = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
        oom_now = _oom_kills() if self._oom_at_start is not None else None
        return Death(
            returncode=returncode,
            cpu_seconds=program,
            life_cpu_seconds=life,
            peak_rss_bytes=peak,
            oom_killed=None if oom_now is None else oom_now > (self._oom_at_start or 0),
            host_signals=self.host_signals,
            stderr=await self.stderr_text(self._stderr_at_start),
        )
