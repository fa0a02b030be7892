"""Landlock: take away every filesystem right, TCP bind/connect, and signals to other processes.

Landlock is the kernel's unprivileged access-control layer (Linux >= 5.13). A process builds a
ruleset that says which rights it *handles*, adds rules that grant some of them back for
chosen paths or ports, and then restricts itself; from then on every handled right that no
rule grants is denied, for this thread and every thread or process it starts afterwards. We
handle every right the running kernel knows and add no rule at all, so after `restrict_self`
the process can open no file or directory, make no TCP connection, bind no TCP port, and
(ABI >= 6) signal no process or abstract unix socket outside its own domain. File
descriptors opened before the call keep working, which is how the child still talks to
its parent over inherited pipes.

There is no libc wrapper, so the three system calls go through ``syscall(2)`` by number; the
numbers are the same on every architecture Linux has added since 5.13 (only alpha differs).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable

__all__ = ["LandlockUnavailable", "abi_version", "restrict_self"]

_SYS_CREATE_RULESET = 444
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0

# Filesystem rights by the ABI that introduced them: 1 has the first thirteen (execute, write,
# read, read dir, remove dir/file, make char/dir/reg/sock/fifo/block/sym); 2 adds REFER;
# 3 adds TRUNCATE; 5 adds IOCTL_DEV.
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: 1 << 13, 3: 1 << 14, 5: 1 << 15}
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_NET_ABI = 4
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1
_SCOPE_ABI = 6


class LandlockUnavailable(OSError):
    """This kernel, architecture or process cannot use Landlock; the message says which."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _syscall() -> Callable[..., int]:
    if not sys.platform.startswith("linux"):
        raise LandlockUnavailable(f"Landlock is a Linux feature; this is {sys.platform}")
    if platform.machine().startswith("alpha"):
        raise LandlockUnavailable("Landlock system call numbers differ on alpha; not supported")
    function = ctypes.CDLL(None, use_errno=True).syscall
    function.restype = ctypes.c_long
    return function


def abi_version() -> int:
    """Return the Landlock ABI version the running kernel offers, or 0 if it offers none."""
    try:
        syscall = _syscall()
    except LandlockUnavailable:
        return 0
    version = syscall(
        ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_CREATE_RULESET_VERSION),
    )
    return max(int(version), 0)


def restrict_self(*, network: bool = False) -> int:
    """Deny every filesystem right (and TCP and outside signals) to this thread from now on.

    Must be called after ``PR_SET_NO_NEW_PRIVS`` (or with CAP_SYS_ADMIN) and while the process
    has a single thread: Landlock restricts the calling thread and what it creates later, not
    threads that already run.

    Args:
        network: when true, TCP bind/connect stay allowed (the filesystem is still closed).

    Returns:
        The ABI version whose rights were applied (>= 1).

    Raises:
        LandlockUnavailable: the kernel has no Landlock, or a system call failed; nothing was
            restricted in that case.
    """
    syscall = _syscall()
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable(
            "the kernel offers no Landlock ABI (not built in, or disabled by the lsm= boot option)"
        )
    attr = _RulesetAttr(
        handled_access_fs=sum(bits for since, bits in _FS_RIGHTS_BY_ABI.items() if abi >= since)
    )
    size = ctypes.sizeof(ctypes.c_uint64)
    if abi >= _NET_ABI:
        size = 2 * ctypes.sizeof(ctypes.c_uint64)
        if not network:
            attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
    if abi >= _SCOPE_ABI:
        size = ctypes.sizeof(_RulesetAttr)
        attr.scoped = _SCOPE_SIGNAL | (0 if network else _SCOPE_ABSTRACT_UNIX_SOCKET)
    ruleset_fd = syscall(
        ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset_fd < 0:
        errno_value = ctypes.get_errno()
        raise LandlockUnavailable(f"landlock_create_ruleset failed: {os.strerror(errno_value)}")
    try:
        if syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)):
            errno_value = ctypes.get_errno()
            raise LandlockUnavailable(f"landlock_restrict_self failed: {os.strerror(errno_value)}")
    finally:
        os.close(ruleset_fd)
    return abi
