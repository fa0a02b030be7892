"""The seccomp filter: the short list of system calls a locked-down child may still make.

Once a CPython process has imported everything it needs and holds its pipes, running Python
code (threads included) takes about forty system calls: memory, futexes, signals, clocks,
read/write on open descriptors, thread creation and exit. The filter allows those and makes
every other call fail with EPERM, so Python raises ``PermissionError`` instead of crashing
(``open``, ``socket``, ``fork``, ``kill``, ``getcwd``, ``unshare``, ``setrlimit`` ...). A few
calls are never a mistake and end the process with SIGSYS: ``execve``/``execveat`` (replace
the sandbox), ``ptrace`` and ``process_vm_readv``/``process_vm_writev`` (read or write
another process's memory).

Arguments are checked where the call itself is the risk:

* ``clone`` only with ``CLONE_THREAD`` and no namespace flag: threads, never processes.
  ``clone3`` passes its flags in memory a filter cannot read, so it answers ENOSYS and glibc
  falls back to ``clone``.
* ``tgkill`` only towards this process (its own threads); ``kill`` is denied.
* ``prlimit64`` only on this process: reading any limit, and, when asked for, setting
  ``RLIMIT_CPU`` (so the child can give each program its CPU share). The kernel then keeps
  the soft limit under the hard one; only CAP_SYS_RESOURCE could raise the hard one, so the
  caller allows setting only after it has dropped its capabilities.
* ``ioctl`` only ``TCGETS`` (``isatty``) and ``FIONBIO`` (non-blocking mode), so a child on
  a terminal cannot push keystrokes into it with ``TIOCSTI``.
* ``newfstatat`` only with ``AT_EMPTY_PATH`` (``fstat`` of an open descriptor), so Python's
  ``os.stat(path)`` fails; native code can still pass a path with that flag, which reveals
  metadata (size, times) of a path but never its content.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

__all__ = ["SeccompUnavailable", "prepare_filter"]

_ALLOWED = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    # threads and locks
    "futex", "set_robust_list", "rseq", "sched_yield", "sched_getaffinity", "gettid",
    "exit", "exit_group",
    # signals (SIGXCPU handlers, thread wake-ups)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    # clocks and sleeping (the vDSO covers most clock reads; these are its fallbacks)
    "clock_gettime", "clock_getres", "gettimeofday", "time", "clock_nanosleep", "nanosleep",
    # descriptors that are already open
    "read", "write", "readv", "writev", "close", "lseek", "fstat", "dup",
    "poll", "ppoll", "select", "pselect6",
    # harmless process facts
    "getpid", "getppid", "getrandom", "getrusage", "times", "getrlimit",
)
_NETWORK = (
    "socket", "connect", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
    "getsockopt", "setsockopt", "getsockname", "getpeername",
)
_KILL = ("execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev")

_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
_IOCTL_REQUESTS = (0x5401, 0x5421)  # TCGETS (isatty), FIONBIO (socket.settimeout)
_AT_EMPTY_PATH = 0x1000
_RLIMIT_CPU = 0
# F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC
_FCNTL_COMMANDS = (0, 1, 2, 3, 4, 1030)


class SeccompUnavailable(OSError):
    """libseccomp or kernel seccomp support is missing, or loading the filter failed."""


def prepare_filter(
    *, network: bool = False, cpu_limit_settable: bool = False
) -> Callable[[], None]:
    """Build the filter now and return the function that installs it.

    Building imports pyseccomp and libseccomp, so it must happen while files can still be
    opened; installing needs no file. The returned function installs the filter on every
    thread of this process, where it stays until the process ends.

    Args:
        network: when true, also allow the system calls of a TCP or UDP client.
        cpu_limit_settable: when true, ``setrlimit(RLIMIT_CPU, ...)`` stays allowed. Only
            for a process without CAP_SYS_RESOURCE, which cannot raise the hard limit.

    Raises:
        SeccompUnavailable: from either step; nothing was installed. The message says why.
    """
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: libseccomp not found
        raise SeccompUnavailable(f"pyseccomp cannot load libseccomp: {exc}") from exc

    def known(name: str) -> bool:
        # -1 means no architecture knows the name; other negative numbers are libseccomp's
        # placeholders for calls the native architecture lacks (poll on aarch64), which
        # add_rule accepts and ignores.
        number: int = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        return number != -1

    try:
        syscall_filter = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
        for name in _ALLOWED + (_NETWORK if network else ()):
            if known(name):
                syscall_filter.add_rule(seccomp.ALLOW, name)
        syscall_filter.add_rule(
            seccomp.ALLOW, "clone",
            seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD | _CLONE_NAMESPACES, _CLONE_THREAD),
        )
        if known("clone3"):
            syscall_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        syscall_filter.add_rule(seccomp.ALLOW, "tgkill", seccomp.Arg(0, seccomp.EQ, os.getpid()))
        syscall_filter.add_rule(
            seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0), seccomp.Arg(2, seccomp.EQ, 0)
        )
        if cpu_limit_settable:
            syscall_filter.add_rule(
                seccomp.ALLOW, "prlimit64",
                seccomp.Arg(0, seccomp.EQ, 0), seccomp.Arg(1, seccomp.EQ, _RLIMIT_CPU),
            )
        for request in _IOCTL_REQUESTS:
            syscall_filter.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
        for command in _FCNTL_COMMANDS:
            syscall_filter.add_rule(seccomp.ALLOW, "fcntl", seccomp.Arg(1, seccomp.EQ, command))
        syscall_filter.add_rule(
            seccomp.ALLOW, "newfstatat",
            seccomp.Arg(3, seccomp.MASKED_EQ, _AT_EMPTY_PATH, _AT_EMPTY_PATH),
        )
        for name in _KILL:
            if known(name):
                syscall_filter.add_rule(seccomp.KILL_PROCESS, name)
        # A call made through another architecture's entry point (int 0x80, x32) could
        # dodge rules written for native numbers, so it ends the process.
        syscall_filter.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
        # Every thread gets the filter, not only the caller (belt and braces: lock_down
        # insists on a single thread anyway).
        syscall_filter.set_attr(seccomp.Attr.CTL_TSYNC, 1)
    except OSError as exc:
        raise SeccompUnavailable(f"the seccomp filter could not be built: {exc}") from exc

    def load() -> None:
        try:
            syscall_filter.load()
        except OSError as exc:
            raise SeccompUnavailable(f"the kernel refused the seccomp filter: {exc}") from exc

    return load
