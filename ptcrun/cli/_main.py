"""``main``: parse the command line, run the subcommand, exit with a code per ending.

Settings left off the command line are filled from the environment and the config file first
(``_config``). A :class:`~ptcrun.errors.PtcrunError` is caught here, once, for every subcommand:
its message is printed with the settings it names spelled as the flags that set them, and the
command exits with the error's ``exit_code``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from ..errors import PtcrunError
from ._bench import cmd_bench
from ._config import apply_config
from ._exec import cmd_exec
from ._parser import EXIT_CODES, in_cli_words, parse
from ._run import cmd_run
from ._runs import cmd_runs
from ._stops import Stopped
from ._stores import cmd_store
from ._views import cmd_export, cmd_show, cmd_tree, cmd_view

__all__ = ["main"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "exec": cmd_exec,
    "runs": cmd_runs,
    "show": cmd_show,
    "tree": cmd_tree,
    "export": cmd_export,
    "view": cmd_view,
    "store": cmd_store,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ptcrun`` command; returns the exit code.

    A usage error (an unknown flag, a missing argument, two flags that exclude each other)
    exits from argparse with code 2, the ``config`` code, after printing the usage.
    """
    args = parse(argv)
    try:
        if args.command != "bench":
            # bench's flags are its own (its --out is a results file, its --planner excludes
            # --reference): PTCRUN_* settings and the config file describe runs, not suites.
            apply_config(args, os.environ)
        code = _COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so a reader gone (below) is told apart from any other end
        return code
    except BrokenPipeError:
        # The reader went away (`ptcrun runs | head -3`): stop quietly, as any shell tool does.
        # What is still buffered for it goes nowhere, rather than fail again at exit.
        with contextlib.suppress(OSError, ValueError):
            out = sys.stdout.fileno()
            os.dup2(os.open(os.devnull, os.O_WRONLY), out)
        return 128 + signal.SIGPIPE
    except PtcrunError as exc:
        print(f"ptcrun: {in_cli_words(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print(f"ptcrun: stopped by {exc} (signal {exc.signum}) while the corpus was cut; what was cut "
              f"so far was removed", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("ptcrun: interrupted", file=sys.stderr)
        return EXIT_CODES["interrupted"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
