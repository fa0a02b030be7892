"""The public API: a short, sorted, documented list of names."""

from __future__ import annotations

import subprocess
import sys

import ptcrun


def test_all_is_sorted_and_every_name_resolves():
    assert ptcrun.__all__ == sorted(ptcrun.__all__)
    for name in ptcrun.__all__:
        assert getattr(ptcrun, name) is not None


def test_every_export_has_a_docstring():
    for name in ptcrun.__all__:
        assert (getattr(ptcrun, name).__doc__ or "").strip(), name


def test_public_classes_read_as_ptcrun_names():
    assert repr(ptcrun.Limits()).startswith("Limits(")
    assert ptcrun.Limits.__module__ == "ptcrun"


def test_import_is_cheap_and_loads_no_provider_sdk():
    code = "import sys, ptcrun; print('anthropic' in sys.modules, 'trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
