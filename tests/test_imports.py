"""Imports flow one way: the contracts in pyproject.toml hold, and they cover every package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def test_import_contracts_hold():
    """``lint-imports`` with the project's contracts: direct, indirect and type-only imports."""
    code = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_package_and_root_module_is_bound_by_a_contract():
    """A new subpackage or root module must be placed in the map before it can import anything."""
    named: set[str] = set()
    for contract in _contracts():
        for key in ("layers", "source_modules"):
            for entry in contract.get(key, []):
                named |= {part.strip() for part in entry.replace("|", ":").split(":")}
    package = ROOT / "ptcrun"
    expected = {f"ptcrun.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    expected |= {f"ptcrun.{p.name}" for p in package.iterdir() if (p / "__init__.py").exists()}
    expected -= {"ptcrun.__main__", "ptcrun.sandbox"}  # entry point; the sandbox is split below
    expected |= {f"ptcrun.sandbox.{p.name}" for p in (package / "sandbox").iterdir() if (p / "__init__.py").exists()}
    expected |= {f"ptcrun.sandbox.{p.stem}" for p in (package / "sandbox").glob("_*.py") if p.stem != "__init__"}
    assert sorted(expected - named) == []
