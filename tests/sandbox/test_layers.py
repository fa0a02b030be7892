"""Each layer holds on its own: the OS layers without the language layer, and the reverse."""

from __future__ import annotations

import sys

import pytest

from ptcrun.sandbox import Sandbox

from .conftest import limits

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the OS layers are Linux's")


@pytest.mark.parametrize(
    "attack",
    [
        "open('/etc/hostname').read()",
        "open('/tmp/ptcrun-layer-test', 'w').write('x')",
        "import os\nos.listdir('/')",
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)",
        "import socket\nsocket.socket()",
        "import os\nos.fork()",
        "import os\nos.kill(os.getppid(), 0)",
    ],
)
async def test_os_layers_alone_stop_files_network_and_processes(attack):
    # No RestrictedPython, real builtins: only rlimits, seccomp, Landlock and the netns hold.
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        result = await sandbox.execute(attack)
        after = await sandbox.execute("done('alive')")
    assert result.status == "error"
    assert result.error.kind in ("PermissionError", "OSError", "SandboxError"), result.error
    assert after.answer == "alive"


async def test_os_layers_alone_kill_a_program_that_runs_a_command():
    async with Sandbox(limits=limits(), _language_layer=False) as sandbox:
        result = await sandbox.execute("import os\nos.execv('/bin/sh', ['sh', '-c', 'echo pwned'])")
        after = await sandbox.execute("done('alive')")
    # The audit-hook tripwire refuses it first; without it seccomp kills the child (SIGSYS),
    # which tests/sandbox/test_confine.py shows on a bare locked-down child.
    message = result.error.message
    assert message.startswith("blocked by the sandbox") or "forbidden system call" in message
    assert "pwned" not in result.output
    assert after.answer == "alive"


@pytest.mark.parametrize(
    "attack",
    [
        "open('/etc/hostname')",
        "import os",
        "import subprocess",
        "().__class__.__base__.__subclasses__()",
        "getattr((), '__base__')",
        "'{0.__class__}'.format(1)",
        "import json\njson.codecs",
        "from json import codecs",
        "eval('1')",
        "type('X', (), {'__getattr__': lambda self, name: 1})",
        "dir()",
    ],
)
async def test_language_layer_alone_stops_non_resource_attacks(attack):
    async with Sandbox(limits=limits(), _os_layers=False) as sandbox:
        result = await sandbox.execute(attack)
        after = await sandbox.execute("done('alive')")
    assert result.status == "error", attack
    assert after.answer == "alive"


async def test_every_os_layer_this_machine_supports_is_active():
    from ptcrun.sandbox.child._confine import probe

    supported = probe()
    async with Sandbox(limits=limits()) as sandbox:
        active = sandbox.layers
    assert active is not None
    assert active["rlimits"] and active["no_new_privs"]
    assert active["seccomp"] == supported.seccomp
    assert active["landlock_abi"] == supported.landlock_abi
    assert active["network_namespace"] == supported.network_namespace
