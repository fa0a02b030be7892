"""Run the ``ptcrun`` command in this process, as the tests of every package do."""

from __future__ import annotations

import contextlib
import io

from ptcrun.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the command; return its exit code (argparse's too, for a usage error), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()
