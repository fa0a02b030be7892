"""OS confinement of the sandbox child: rlimits, then a kernel lock-down it cannot undo.

RestrictedPython filters the language; it cannot stop C code, a crash or a policy bug. So
the child also confines itself with the kernel, in a fixed order, once it has imported
everything and holds its pipes but before it runs any program:

1. ``set_rlimits``: address space, CPU seconds, file size, descriptors, no core dumps.
2. ``lock_down``:

   * a new network namespace (nothing to connect to, not even loopback);
   * ``PR_SET_NO_NEW_PRIVS``, ``PR_SET_DUMPABLE=0``, and every capability dropped (a root
     child keeps uid 0 but loses the power to raise limits or bypass permissions);
   * Landlock with every right handled and no rule: no file or directory can be opened, no
     TCP port bound or connected, no process outside signalled (``_landlock``);
   * a seccomp allow-list of about forty system calls; ``execve`` and ``ptrace`` kill the
     process (``_seccomp``).

3. ``install_tripwire`` (from ``_tripwire``, re-exported here): an audit hook that refuses
   files, imports, dynamic code and frame access outside ``trusted()`` sections.

After ``lock_down`` the child can still run threads, take locks, sleep, read the clocks,
allocate memory up to its limit (and get ``MemoryError`` beyond it), handle signals such as
SIGXCPU, read its rusage, move its soft CPU limit below the hard one, and read and write the
descriptors it already had. It can no longer import a module that is not loaded yet, open any
file (``/proc`` included), start a process, open a socket, or raise a hard limit.

A layer the machine cannot provide is skipped and named in ``Layers.notes``; with
``strict=True`` it is an error instead. ``probe()`` asks a throwaway child what this machine
supports, without confining the caller.
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from . import _landlock, _seccomp
from ._tripwire import exec_program, install_tripwire, trusted

__all__ = [
    "Layers",
    "exec_program",
    "install_tripwire",
    "lock_down",
    "probe",
    "set_rlimits",
    "trusted",
]

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@attrs.frozen
class Layers:
    """Which confinement layers are active (after ``lock_down``) or supported (``probe``).

    Attributes:
        no_new_privs: ``PR_SET_NO_NEW_PRIVS`` is set; seccomp and Landlock need it.
        seccomp: the system-call allow-list is loaded.
        landlock_abi: the Landlock ABI version applied; 0 when Landlock is not active.
        network_namespace: the process is in a network namespace of its own.
        rlimits: address-space and CPU limits are finite and core dumps are off.
        notes: one line for each layer that could not be applied, saying why.
    """

    no_new_privs: bool
    seccomp: bool
    landlock_abi: int
    network_namespace: bool
    rlimits: bool
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the layers as JSON-able data (notes become a list)."""
        return {**attrs.asdict(self), "notes": list(self.notes)}


def set_rlimits(
    *, memory_bytes: int, cpu_seconds: float, file_bytes: int = 0, open_files: int = 64
) -> None:
    """Cap this process's memory, CPU time, file writes and descriptors; disable core dumps.

    Limits can only go down: a hard limit already lower than the request is kept. Call this
    before ``lock_down``, after which only the soft CPU limit can move (below the hard one).
    ``RLIMIT_NPROC`` is not set: the kernel ignores it for root, and seccomp forbids new
    processes anyway.

    Args:
        memory_bytes: address space (``RLIMIT_AS``). Thread stacks and malloc arenas count
            too, so leave room for them. Beyond it, allocations raise ``MemoryError``.
        cpu_seconds: CPU time of the whole process since it started, threads included
            (``RLIMIT_CPU``). At the next whole second the kernel sends SIGXCPU; one second
            later, SIGKILL.
        file_bytes: largest regular file the process may write (``RLIMIT_FSIZE``); a write
            beyond it raises SIGXFSZ. Pipes are not affected.
        open_files: descriptors the process may hold (``RLIMIT_NOFILE``).

    Raises:
        ValueError: a limit is not a positive finite number (``file_bytes`` may be 0).
    """
    if not (memory_bytes > 0 and 0 < cpu_seconds < math.inf and file_bytes >= 0
            and open_files > 0):
        raise ValueError(
            f"rlimits must be positive and finite; got memory_bytes={memory_bytes!r}, "
            f"cpu_seconds={cpu_seconds!r}, file_bytes={file_bytes!r}, open_files={open_files!r}."
        )
    cpu_soft = math.ceil(cpu_seconds)
    for limit, soft, hard in (
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_CPU, cpu_soft, cpu_soft + 1),
        (resource.RLIMIT_FSIZE, file_bytes, file_bytes),
        (resource.RLIMIT_NOFILE, open_files, open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        _, current_hard = resource.getrlimit(limit)
        ceiling = hard if current_hard == resource.RLIM_INFINITY else min(hard, current_hard)
        with trusted():  # resource.setrlimit is an audit event
            resource.setrlimit(limit, (min(soft, ceiling), ceiling))


def _rlimits_active() -> bool:
    return (
        resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY
        and resource.getrlimit(resource.RLIMIT_CPU)[1] != resource.RLIM_INFINITY
        and resource.getrlimit(resource.RLIMIT_CORE)[1] == 0
    )


def _libc_call(name: str, *args: int) -> int:
    """Call a libc function; return its result, or minus errno when it failed."""
    function = getattr(ctypes.CDLL(None, use_errno=True), name)
    function.restype = ctypes.c_int
    result = function(*(ctypes.c_ulong(arg) for arg in args))
    return -ctypes.get_errno() if result == -1 else result


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _unshare_network() -> str | None:
    """Move into a new network namespace; return why not, or None on success."""
    try:
        before = os.stat("/proc/self/ns/net").st_ino
    except OSError as exc:
        return f"network namespace: cannot read /proc/self/ns/net ({exc.strerror})"
    # Root (with CAP_SYS_ADMIN) can take a network namespace alone; anyone else needs a user
    # namespace around it, which some distributions switch off.
    result = _libc_call("unshare", _CLONE_NEWNET)
    if result < 0:
        result = _libc_call("unshare", _CLONE_NEWUSER | _CLONE_NEWNET)
    if result < 0:
        return (
            f"network namespace: unshare refused ({os.strerror(-result)}); "
            "user namespaces may be disabled"
        )
    if os.stat("/proc/self/ns/net").st_ino == before:
        return "network namespace: unshare succeeded but the namespace did not change"
    return None


def lock_down(*, network: bool = False, strict: bool = False) -> Layers:
    """Confine this process for good; return which layers are now active.

    Call it once, in the child, after every import and warm-up and after ``set_rlimits``,
    while the process has a single thread (Landlock, capabilities and namespaces belong to
    the calling thread, so threads that already run would escape them), and before any
    untrusted code runs. Layers the machine lacks are skipped and named in ``notes``.

    Args:
        network: keep the network: no namespace, and seccomp and Landlock allow TCP clients.
        strict: raise instead of running with a missing layer. Required layers are
            no_new_privs, seccomp, Landlock and rlimits; the network namespace is optional,
            since seccomp already refuses sockets.

    Raises:
        RuntimeError: more than one thread is running; or, with strict, a layer is missing.
            The process may already be partly confined; end it.
    """
    with trusted():  # the tripwire, if installed already, must not stop our own set-up
        threads = _thread_count()
        if threads > 1:
            raise RuntimeError(
                f"lock_down() needs a single-threaded process; {threads} threads are running. "
                "Start threads after lock_down(), which confines the threads it creates."
            )
        rlimits = _rlimits_active()
        notes = [] if rlimits else [
            "rlimits: set_rlimits() was not called first; memory and CPU are unbounded"
        ]
        if sys.platform.startswith("linux"):
            layers = _lock_down_linux(network=network, rlimits=rlimits, notes=notes)
        else:
            notes.append(f"kernel layers: none on {sys.platform}; only rlimits apply")
            layers = Layers(
                no_new_privs=False, seccomp=False, landlock_abi=0, network_namespace=False,
                rlimits=rlimits, notes=tuple(notes),
            )
    missing = [
        name
        for name, active in (
            ("no_new_privs", layers.no_new_privs), ("seccomp", layers.seccomp),
            ("landlock", layers.landlock_abi > 0), ("rlimits", layers.rlimits),
        )
        if not active
    ]
    if strict and missing:
        raise RuntimeError(
            f"sandbox lock-down is missing {', '.join(missing)} (strict mode): "
            f"{'; '.join(layers.notes)}. Run on Linux >= 5.13 with libseccomp, or turn strict off."
        )
    return layers


def _lock_down_linux(*, network: bool, rlimits: bool, notes: list[str]) -> Layers:
    network_namespace = False
    if not network:  # needs CAP_SYS_ADMIN or a user namespace: before capabilities go
        note = _unshare_network()
        network_namespace = note is None
        notes.extend([note] if note else [])
    no_new_privs = _set_no_new_privs(notes)
    if _libc_call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0) < 0:
        notes.append("dumpable: PR_SET_DUMPABLE refused; processes of this user may inspect it")
    capabilities_dropped = _drop_capabilities(notes)
    load_seccomp = None
    try:  # imports pyseccomp, so it must come before Landlock closes the files
        load_seccomp = _seccomp.prepare_filter(
            network=network, cpu_limit_settable=capabilities_dropped
        )
    except _seccomp.SeccompUnavailable as exc:
        notes.append(f"seccomp: {exc}")
    landlock_abi = _apply_landlock(network, notes) if no_new_privs else 0
    seccomp = False
    if load_seccomp is not None and no_new_privs:
        seccomp = _apply_seccomp(load_seccomp, notes)
    return Layers(
        no_new_privs=no_new_privs,
        seccomp=seccomp,
        landlock_abi=landlock_abi,
        network_namespace=network_namespace,
        rlimits=rlimits,
        notes=tuple(notes),
    )


def _set_no_new_privs(notes: list[str]) -> bool:
    result = _libc_call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if result < 0 or _libc_call("prctl", _PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        reason = os.strerror(-result) if result < 0 else "not set"
        notes.append(
            f"no_new_privs: prctl refused ({reason}); Landlock and seccomp need it and were skipped"
        )
        return False
    return True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capabilities(notes: list[str]) -> bool:
    """Clear every capability of this (single) thread: root keeps its uid but loses its power.

    Without CAP_SYS_RESOURCE no hard limit can be raised again, which is what lets seccomp
    allow the child to move its own soft CPU limit.
    """
    header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()  # all zero: no effective, permitted or inheritable capability
    capset = ctypes.CDLL(None, use_errno=True).capset
    if capset(ctypes.byref(header), data) != 0:
        notes.append(
            f"capabilities: capset refused ({os.strerror(ctypes.get_errno())}); "
            "the CPU limit cannot be adjusted after lock_down"
        )
        return False
    with open("/proc/self/status") as status:
        effective = next(line for line in status if line.startswith("CapEff:"))
    if int(effective.split()[1], 16) != 0:
        notes.append(
            "capabilities: capset succeeded but some remain; "
            "the CPU limit cannot be adjusted after lock_down"
        )
        return False
    return True


def _apply_landlock(network: bool, notes: list[str]) -> int:
    try:
        abi = _landlock.restrict_self(network=network)
    except _landlock.LandlockUnavailable as exc:
        notes.append(f"landlock: {exc}")
        return 0
    # Trust, but verify: the root directory must now be out of reach.
    try:
        os.close(os.open("/", os.O_RDONLY | os.O_DIRECTORY))
    except PermissionError:
        return abi
    notes.append("landlock: restrict_self succeeded but / can still be opened")
    return 0


def _apply_seccomp(load: Any, notes: list[str]) -> bool:
    try:
        load()
    except _seccomp.SeccompUnavailable as exc:
        notes.append(f"seccomp: {exc}")
        return False
    # getcwd is harmless and outside the allow-list, so it answers EPERM once the filter holds.
    try:
        os.getcwd()
    except PermissionError:
        return True
    notes.append("seccomp: the filter loaded but getcwd() still works")
    return False


_PROBE = """\
import json, sys
sys.path.insert(0, {root!r})
from ptcrun.sandbox.child import _confine
_confine.set_rlimits(memory_bytes=1 << 30, cpu_seconds=30)
sys.stdout.write(json.dumps(_confine.lock_down().as_dict()))
"""


@functools.cache
def probe() -> Layers:
    """Report which layers this machine supports, by locking down a throwaway child.

    The child runs the same ``set_rlimits`` and ``lock_down`` as a sandbox child, so the
    answer is what a real child would get. The caller is not confined. The answer is cached
    for the life of this process; the first call blocks for about a tenth of a second.
    """
    root = str(Path(__file__).resolve().parents[3])
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-B", "-c", _PROBE.format(root=root)],
            env={}, capture_output=True, timeout=60, close_fds=True, start_new_session=True,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return _failed(f"probe: the child could not run ({exc})")
    if completed.returncode != 0:
        stderr = completed.stderr.decode(errors="backslashreplace")[-500:]
        return _failed(f"probe: the child exited with {completed.returncode}: {stderr}")
    try:
        reported = json.loads(completed.stdout)
        return Layers(**{**reported, "notes": tuple(reported["notes"])})
    except (ValueError, TypeError, KeyError) as exc:
        return _failed(f"probe: the child's report is unreadable ({exc})")


def _failed(note: str) -> Layers:
    return Layers(
        no_new_privs=False, seccomp=False, landlock_abi=0, network_namespace=False,
        rlimits=False, notes=(note,),
    )
