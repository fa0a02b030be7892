"""The ``ptcrun`` command: parse the flags, run, replay and show runs, exit with a code per ending."""

from ._main import EXIT_CODES, main

__all__ = ["EXIT_CODES", "main"]
