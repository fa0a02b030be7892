"""The ``ptcrun`` command: parse the flags, run, replay and show runs, exit with a code per ending.

``_parser`` holds the flags and the exit codes, ``_run`` the ``run`` command, ``_exec`` ``exec``
and ``exec --turn``, ``_views`` ``show``, ``tree``, ``export`` and ``view``, ``_corpus`` the corpus
flags and ``corpus.json``, and ``_main`` the dispatch.
"""

from ._main import main
from ._parser import EXIT_CODES

__all__ = ["EXIT_CODES", "main"]
