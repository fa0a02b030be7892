"""A reader that goes away (``ptcrun runs | head -3``) ends the command quietly, as it ends any
shell tool: no traceback, the shell's code for SIGPIPE."""

from __future__ import annotations

import contextlib
import io
import signal

from ptcrun.cli import main

from ..clirun import run_cli
from .test_corpus_store import answer, files, run

__all__ = ["files"]  # the fixture, used by name


class ClosedPipe(io.StringIO):
    """Standard output whose reader has gone: every write fails as a closed pipe's does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_runs_and_show_into_a_closed_pipe_end_quietly(files):
    result = answer(run_cli(run(files, files / "app.log")))
    for argv in (["runs", "--out", str(files / "runs")], ["show", result["transcript"]]):
        err = io.StringIO()
        with contextlib.redirect_stdout(ClosedPipe()), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 128 + signal.SIGPIPE
        assert err.getvalue() == ""
