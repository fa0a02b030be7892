"""Every CLI test reads only the settings it gives: no PTCRUN_* variable, no config file of the
machine's user (``~/.config/ptcrun``) and no provider variable leaks in."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch, tmp_path_factory):
    for name in list(os.environ):
        if name.startswith("PTCRUN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
