"""``random`` for programs: one generator per session, seeded by the host.

A child runs one session, so the generator is the child's own; the host chooses its seed,
records it in the transcript (``sandbox.start``) and sends it again when a turn is replayed, so
the same programs draw the same numbers. Every child of a session starts from that seed, a
restarted one too. ``random.seed(x)`` reseeds the program's generator; ``random.seed()`` with no
argument goes back to the session's seed, and an unseeded ``random.Random()`` takes its seed from
the session's generator: nothing draws from the operating system, so nothing escapes a replay.
Draws made inside pmap items share the generator in the order the items' threads run, which a
replay need not repeat.

``shuffle`` changes its argument in place, in Python code the write guard never sees, so it takes
only the mutable sequences a program owns by type: lists, deques and bytearrays (and subclasses a
program wrote). ``data`` is a tuple or a read-only mapping, and stays as it is.
"""

from __future__ import annotations

import collections
import random
from typing import Any

__all__ = ["MEMBERS", "Random", "seed_session", "session_seed"]

#: The seed the host chose for this session (0 until the child is told).
_session = {"seed": 0}

_SHUFFLED = (list, collections.deque, bytearray)


def _check_shuffled(x: object) -> None:
    if not isinstance(x, _SHUFFLED):
        raise TypeError(
            f"random.shuffle() takes a list in the sandbox, not {type(x).__name__!r}: it changes "
            "its argument in place. Shuffle a copy, e.g. xs = list(x); random.shuffle(xs)."
        )


class Random(random.Random):
    """``random.Random``: an independent generator; without a seed it draws one from the
    session's generator, so a replay repeats it."""

    def seed(self, a: Any = None, version: int = 2) -> None:
        if a is None:
            a = _generator.getrandbits(64) if self is not _generator else _session["seed"]
        super().seed(a, version)

    def shuffle(self, x: Any) -> None:
        _check_shuffled(x)
        super().shuffle(x)

    def setstate(self, state: Any) -> None:
        # random.Random.setstate writes self.gauss_next before its C half checks self: called
        # through the class with another object, it would write to that object.
        if not isinstance(self, random.Random):
            raise TypeError(f"setstate() needs a Random object, not {type(self).__name__!r}")
        super().setstate(state)


_generator = Random(0)


def seed_session(seed: int) -> None:
    """Seed the session's generator (and the module's own, which library code such as
    ``statistics.NormalDist.samples`` draws from) with the seed the host chose."""
    _session["seed"] = seed
    _generator.seed(seed)
    random.seed(seed)


def session_seed() -> int:
    """The seed the host chose for this session."""
    return _session["seed"]


_FUNCTIONS = (
    "betavariate", "choice", "choices", "expovariate", "gammavariate", "gauss", "getrandbits",
    "getstate", "lognormvariate", "normalvariate", "paretovariate", "randbytes", "randint",
    "random", "randrange", "sample", "seed", "setstate", "shuffle", "triangular", "uniform",
    "vonmisesvariate", "weibullvariate",
)

#: What ``import random`` serves: the session generator's bound methods, and the class.
MEMBERS: dict[str, object] = {name: getattr(_generator, name) for name in _FUNCTIONS}
MEMBERS["Random"] = Random
