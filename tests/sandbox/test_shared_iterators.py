"""One iterator over a program's generator, shared by pmap items (threads of the child).

In CPython 3.11 ``itertools.chain.from_iterable``, ``islice`` and ``pairwise`` let go of their
input when it raises: a second item asking while the first runs the generator got "generator
already executing", the iterator dropped the generator, and it was freed while the first item
still ran it (the child died with SIGSEGV). The served classes take one caller at a time; the
others were checked to keep their input, and are run here the same way.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import types

import pytest

from ptcrun.sandbox import Sandbox
from ptcrun.sandbox.child._attributes import guarded_getattr
from ptcrun.sandbox.child._compile import ProgramRejected
from ptcrun.sandbox.child._modules import _PROXIES
from tests.sandbox.inproc import Session

from .conftest import limits

SHARED = {
    "chain_from_iterable": "itertools.chain.from_iterable(rows())",
    "islice": "itertools.islice(rows(), None)",
    "pairwise": "itertools.pairwise(rows())",
    "chain": "itertools.chain(rows(), rows())",
    "zip_longest": "itertools.zip_longest(rows(), rows())",
    "accumulate": "itertools.accumulate(rows(), lambda a, b: b)",
    "starmap": "itertools.starmap(lambda a, b: [a, b], rows())",
    "filterfalse": "itertools.filterfalse(lambda r: False, rows())",
    "takewhile": "itertools.takewhile(bool, rows())",
    "dropwhile": "itertools.dropwhile(lambda r: False, rows())",
    "compress": "itertools.compress(rows(), itertools.repeat(1))",
    "cycle": "itertools.takewhile(lambda r: r[0] < 599, itertools.cycle(rows()))",
    "groupby": "(k for k, g in itertools.groupby(rows(), lambda r: r[0] // 3))",
    "tee": "itertools.tee(rows(), 2)[0]",
    "map": "map(lambda r: r, rows())",
    "filter": "filter(None, rows())",
    "zip": "zip(rows())",
    "enumerate": "enumerate(rows())",
}

PROGRAM = """
import itertools
def rows():
    for i in range(600):
        x = 0
        for j in range(300):  # long enough that the other threads get the interpreter
            x += j
        yield [i, x]
shared = {shared}
def drain(k):
    got, refused = 0, 0
    while True:
        try:
            next(shared)
            got += 1
        except StopIteration:
            return [got, refused]
        except (ValueError, RuntimeError):
            refused += 1
parts = pmap(drain, range(6), concurrency=6)
done([type(p).__name__ for p in parts if type(p) is not list])
"""


@pytest.mark.parametrize("shared", SHARED.values(), ids=SHARED.keys())
async def test_an_iterator_shared_by_pmap_items_never_crashes_the_child(shared: str) -> None:
    async with Sandbox(limits=limits(max_concurrency=6, sandbox_cpu_seconds=20)) as sandbox:
        for _ in range(3):
            result = await sandbox.execute(textwrap.dedent(PROGRAM.format(shared=shared)))
            assert not result.restarted, result.error
            assert result.status == "done", result.error
            assert result.answer == []


def test_a_nested_call_of_the_same_iterator_is_refused_like_a_generators() -> None:
    # One thread: the generator asks the iterator made over it for its next value.
    out = Session().run("""
        import itertools
        def rows():
            yield [1]
            try:
                next(it)
            except ValueError as e:
                print(str(e).split(':')[0])
            yield [2]
        it = itertools.chain.from_iterable(rows())
        print(list(it))
    """)
    assert out == "itertools.chain iterator already executing\n[1, 2]\n"


def test_the_served_classes_behave_as_itertools_does() -> None:
    out = Session().run("""
        import itertools
        from itertools import chain, islice, pairwise
        c = chain.from_iterable([[1, 2], [3]])
        print(list(c), list(chain([1], (2,))), list(islice(range(10), 2, 8, 3)),
              list(pairwise('abc')), type(c) is chain, isinstance(c, itertools.chain),
              type(c).__name__, repr(type(c)))
        class Mine(chain):
            pass
        print(list(Mine([1], [2])), list(Mine.from_iterable([[3]])))
    """)
    assert out == (
        "[1, 2, 3] [1, 2] [2, 5] [('a', 'b'), ('b', 'c')] True True chain "
        "<class 'itertools.chain'>\n[1, 2] [3]\n"
    )


LET_IN = "class Open:\n    def acquire(self, blocking):\n        return True\n    def release(self):\n        pass\n"
ATTACKS = {
    "slot_read": "import itertools\nitertools.islice([1], 1).__running__",
    "slot_getattr": "import itertools\ngetattr(itertools.pairwise([1]), '__running__')",
    "slot_write": "import itertools\nit = itertools.chain([1])\nit.__running__ = None",
    "slot_setattr": "import itertools\nsetattr(itertools.chain([1]), '__running__', None)",
    "slot_from_a_subclass": (
        "import itertools\nclass C(itertools.chain):\n    def grab(self):\n        return self.__running__\n"
        "C([1]).grab()"
    ),
    "slot_written_by_a_subclass": (
        f"import itertools\n{LET_IN}class C(itertools.islice):\n    def drop(self):\n"
        "        self.__running__ = Open()\nC([1], 1).drop()"
    ),
    "slot_setattr_by_a_subclass": (
        f"import itertools\n{LET_IN}class C(itertools.islice):\n    def drop(self):\n"
        "        setattr(self, '__running__', Open())\nC([1], 1).drop()"
    ),
    "slot_shadowed_in_a_subclass": (
        f"import itertools\n{LET_IN}class C(itertools.chain):\n    __running__ = Open()\n"
    ),
    "dict_of_a_subclass": (
        "import itertools\nclass C(itertools.chain):\n    pass\nvars(C([1]))"
    ),
    "real_next": "import itertools\nitertools.chain.__next__",
    "real_class": "import itertools\nitertools.chain.__bases__",
    "real_new": "import itertools\nitertools.pairwise.__new__",
    "setstate": "import itertools\nit = itertools.chain([1])\nit.__setstate__((iter([2]),))",
    "reduce": "import itertools\nitertools.islice([1], 1).__reduce__()",
    "from_iterable_internals": "import itertools\nitertools.chain.from_iterable.__func__",
    "from_iterable_on_a_foreign_class": "import itertools\nitertools.chain.from_iterable.__self__",
}


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_the_served_subclasses_hand_out_nothing_new(source: str) -> None:
    session = Session(tool=types.SimpleNamespace(name="tool"))
    with pytest.raises((AttributeError, TypeError, ProgramRejected)) as info:
        session.run(source)
    refusals = ("not allowed", "private in the sandbox", "can be changed in the sandbox", "cannot be assigned")
    assert any(refusal in str(info.value) for refusal in refusals), info.value
    # What the program could not touch still guards: the iterator refuses a second caller.
    assert session.run("""
        import itertools
        def g():
            yield [next(it, None)]
        it = itertools.chain.from_iterable(g())
        try:
            list(it)
        except ValueError:
            print("refused")
    """) == "refused\n"


INTERNALS = (
    "__running__", "__bases__", "__mro__", "__base__", "__new__", "__next__", "__class__",
    "__reduce__", "__func__", "__self__", "mro",
)


def test_walks_from_the_served_classes_reach_neither_the_lock_nor_the_real_class() -> None:
    served = _PROXIES["itertools"]._members
    starts: list[object] = [served[name] for name in ("chain", "islice", "pairwise")]
    starts += [served["chain"].from_iterable([[1]]), served["islice"]([1], 1), served["pairwise"]([1])]
    hidden = (itertools.chain, itertools.islice, itertools.pairwise, type(threading.Lock()))
    reached = 0
    for start in starts:
        names = [n for n in dir(start) if not n.startswith("_")]
        for name in [*names, *INTERNALS]:
            try:
                value = guarded_getattr(start, name)
            except (AttributeError, TypeError):
                continue
            reached += 1
            assert not isinstance(value, hidden) and value not in hidden, (start, name)
            for inner in ("__func__", "__self__", "__wrapped__", "__closure__", "__globals__"):
                with pytest.raises((AttributeError, TypeError)):
                    guarded_getattr(value, inner)
    assert reached  # from_iterable and __class__ at least


# -- the same race in plain threads, against the real classes and the served ones --------------

RACE = """
import itertools, sys, threading
from ptcrun.sandbox.child._mod_itertools import MEMBERS
kinds = itertools if sys.argv[1] == "real" else type("served", (), MEMBERS)
def rows():
    for i in range(4000):
        x = 0
        for j in range(50):
            x += j
        yield [i]
sys.setswitchinterval(1e-6)
for _ in range(10):
    it = {make}
    def drain():
        while True:
            try:
                next(it)
            except StopIteration:
                return
            except ValueError:
                pass
    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""
RACES = {
    "chain_from_iterable": "kinds.chain.from_iterable(rows())",
    "islice": "kinds.islice(rows(), None)",
    "pairwise": "kinds.pairwise(rows())",
}


@pytest.mark.parametrize("make", RACES.values(), ids=RACES.keys())
def test_the_real_classes_free_the_generator_and_the_served_ones_do_not(make: str) -> None:
    # In a process of its own: the real classes corrupt the memory of the process they run in.
    def race(kind: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", RACE.format(make=make), kind],
                              capture_output=True, text=True, timeout=120, check=False)

    real = race("real")
    assert real.returncode != 0 or "Exception ignored in: <generator" in real.stderr
    served = race("served")
    assert (served.returncode, served.stderr) == (0, "")
