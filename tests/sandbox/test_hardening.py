"""The child against a program's own objects: exact values, trusted sections, rendering, depth.

Programs may subclass ``int``, ``float`` and ``str``, define comparison methods, build
generators and raise exceptions holding their own objects. Each attack below is run once
against a careless implementation (the protection switched off in the test, so the test can
fail) and once against the real one. The last part checks the rules written in
``docs/security.md`` for widening the language.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from ptcrun import _json, errors
from ptcrun.sandbox import Sandbox
from ptcrun.sandbox.child import (
    _attributes,
    _class_of,
    _exact,
    _failure,
    _handlers,
    _modules,
    _namespace,
    _pmap,
    _scope,
)
from ptcrun.sandbox.child._ownership import Ownership
from tests.sandbox.inproc import Done, Session

from .conftest import limits

ROOT = Path(__file__).resolve().parents[2]

# An int whose comparisons lie: it is never less than anything, and greater only than 0. It
# passes `n < 1` and wins `min(n, free)` and `max(0, n)`, whatever its value.
LIAR = """
class Liar(int):
    def __lt__(self, other):
        return False
    def __gt__(self, other):
        return other == 0
"""


# --- 1. Values a program hands to runtime code become exact built-in values ----------------


class Items:
    """What pmap items call in the host: counts how many run at once."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def send(self, frame: Any) -> None:
        self.frames.append(frame)

    def hold(self, value: Any) -> Any:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)
        with self._lock:
            self.now -= 1
        return value


CAP = 12  # threads the child may start for pmap items


def fanout_session(cap: int = CAP) -> tuple[_pmap.Fanout, Items, Session]:
    items = Items()
    fanout = _pmap.Fanout(
        send=items.send, default_concurrency=100, default_timeout=10.0, max_items=1000,
        max_threads=cap,
    )
    session = Session(pmap=fanout.pmap, pcalls=fanout.pcalls, hold=items.hold, Failure=_failure.Failure)
    session.run(LIAR)
    return fanout, items, session


def threads_started(items: Items) -> int:
    return len({(f.pmap, f.slot) for f in items.frames if type(f).__name__ == "ItemStart"})


def all_threads_back(fanout: _pmap.Fanout, cap: int) -> bool:
    """Whether the budget is back to cap, once the item threads have ended."""
    fanout.stragglers(2.0)
    return fanout._threads.free == cap


async def test_lying_int_stays_under_the_thread_cap_in_a_real_child():
    async def slow(x: int) -> int:
        await trio.sleep(0.05)
        return x

    async with Sandbox(tools=[slow], limits=limits(max_concurrency=64, sandbox_threads=16)) as sandbox:
        with trio.fail_after(30):
            attacked = await sandbox.execute(
                LIAR + "done(len(pmap(lambda i: tool.slow(i), range(40), concurrency=Liar(40))))"
            )
            negative = await sandbox.execute("pmap(lambda i: i, range(3), concurrency=Liar(-20))")
            after = await sandbox.execute("done(len(pmap(lambda i: tool.slow(i), range(40), concurrency=40)))")
    assert attacked.answer == 40
    assert attacked.threads_peak <= 16
    assert negative.error.kind == "ValueError"
    assert after.threads_peak <= 16


def careless_take(self: Any, wanted: Any) -> Any:
    """The thread budget as it was: it trusts the number it is given."""
    with self._lock:
        got = max(0, min(wanted, self._free))
        self._free -= got
        self.peak = max(self.peak, self._limit - self._free)
        return got


def switch_off(monkeypatch: pytest.MonkeyPatch, *layers: str) -> None:
    if "conversion" in layers:  # pmap takes the program's number as it came
        monkeypatch.setattr(_exact, "whole_number", lambda value, what: value)
    if "budget" in layers:
        monkeypatch.setattr(_pmap._ThreadBudget, "take", careless_take)


def test_lying_int_takes_every_thread_from_a_careless_budget(monkeypatch):
    switch_off(monkeypatch, "conversion", "budget")
    fanout, items, session = fanout_session()
    session.run("pmap(lambda i: hold(i), range(40), concurrency=Liar(40))")
    assert threads_started(items) > CAP  # up to 40: a late thread may find no item left
    assert items.peak > CAP
    # A negative lie raises the budget for whatever runs next.
    session.run("pmap(lambda i: i, range(3), concurrency=Liar(-20), timeout=0.1)")
    assert fanout._threads.free == CAP + 20


@pytest.mark.parametrize("off", [(), ("budget",), ("conversion",)], ids=["both", "conversion", "budget"])
def test_lying_int_cannot_pass_the_thread_cap(monkeypatch, off):
    """Either layer alone holds: pmap's conversion, or the budget's own exact-int check."""
    switch_off(monkeypatch, *off)
    fanout, items, session = fanout_session()
    with pytest.raises((ValueError, TypeError)) if off == ("conversion",) else contextlib.nullcontext():
        session.run("r = pmap(lambda i: hold(i), range(40), concurrency=Liar(40))")
    assert items.peak <= CAP
    assert threads_started(items) <= CAP
    assert all_threads_back(fanout, CAP)
    with pytest.raises((ValueError, TypeError)):
        session.run("pmap(lambda i: i, range(3), concurrency=Liar(-20), timeout=0.1)")
    assert all_threads_back(fanout, CAP)
    starts = [f for f in items.frames if type(f).__name__ == "PmapStart"]
    assert all(type(f.concurrency) is int and f.concurrency <= CAP for f in starts)


def test_lying_numbers_are_refused_with_their_real_value():
    _, _, session = fanout_session()
    with pytest.raises(ValueError, match=r"concurrency must be a positive whole number; got -20 \(a Liar\)"):
        session.run("pmap(lambda i: i, range(3), concurrency=Liar(-20))")
    session.run("class Later(float):\n    def __gt__(self, other):\n        return True")
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds; got -1.0 \(a Later\)"):
        session.run("pmap(lambda i: i, range(3), timeout=Later(-1))")
    with pytest.raises(ValueError, match="concurrency must be a whole number; got True"):
        session.run("pmap(lambda i: i, range(3), concurrency=True)")


def test_thread_budget_counts_only_exact_ints_and_never_grows():
    budget = _pmap._ThreadBudget(4)
    assert budget.take(-5) == 0
    assert budget.free == 4
    for _ in range(3):
        budget.give_back()
    assert budget.free == 4
    with pytest.raises(TypeError):
        budget.take(True)
    with pytest.raises(TypeError):
        budget.take(2.0)  # type: ignore[arg-type]


def make_liar_int(value: int, less: bool, greater: bool) -> int:
    class LyingInt(int):
        def __lt__(self, other: object) -> bool:
            return less

        def __le__(self, other: object) -> bool:
            return less

        def __gt__(self, other: object) -> bool:
            return greater

        def __ge__(self, other: object) -> bool:
            return greater

        def __eq__(self, other: object) -> bool:
            return less and greater

        __hash__ = int.__hash__

    return LyingInt(value)


def make_liar_float(value: float, less: bool, greater: bool) -> float:
    class LyingFloat(float):
        def __lt__(self, other: object) -> bool:
            return less

        def __gt__(self, other: object) -> bool:
            return greater

        def __le__(self, other: object) -> bool:
            return less

        def __ge__(self, other: object) -> bool:
            return greater

    return LyingFloat(value)


def make_str(value: str) -> str:
    class Name(str):
        def startswith(self, *args: object) -> bool:
            return False

    return Name(value)


PROGRAM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.text(max_size=3).map(make_str),
    st.builds(make_liar_int, st.integers(min_value=-100, max_value=10**6), st.booleans(), st.booleans()),
    st.builds(make_liar_float, st.floats(min_value=-1e6, max_value=1e6), st.booleans(), st.booleans()),
)


class _Sinks:
    """Records what reaches the thread budget, the clocks and the wire during one pmap."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached: list[tuple[str, object]] = []
        take, scope_init, run_init = _pmap._ThreadBudget.take, _scope.Scope.__init__, _pmap._Run.__init__
        sinks = self

        class Clock(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                sinks.reached.append(("wait", timeout))
                return super().wait(timeout)

        def spy_take(budget: Any, wanted: int) -> int:
            self.reached.append(("take", wanted))
            return take(budget, wanted)

        def spy_scope(scope: Any, parent: Any, **kwargs: Any) -> None:
            self.reached.append(("deadline", kwargs.get("deadline")))
            scope_init(scope, parent, **kwargs)

        def spy_run(run: Any, *args: Any) -> None:
            run_init(run, *args)
            run.all_done = Clock()
            self.reached.append(("fail_fast", run.fail_fast))

        monkeypatch.setattr(_pmap._ThreadBudget, "take", spy_take)
        monkeypatch.setattr(_scope.Scope, "__init__", spy_scope)
        monkeypatch.setattr(_pmap._Run, "__init__", spy_run)


EXACT = {"take": (int,), "deadline": (float,), "wait": (float, type(None)), "fail_fast": (bool,)}


@given(
    concurrency=PROGRAM_VALUES,
    timeout=PROGRAM_VALUES,
    fail_fast=PROGRAM_VALUES,
    count=st.integers(min_value=0, max_value=4),
    use_pcalls=st.booleans(),
)
def test_no_program_value_reaches_the_budget_or_a_clock_unconverted(
    concurrency, timeout, fail_fast, count, use_pcalls
):
    with pytest.MonkeyPatch.context() as monkeypatch:
        sinks = _Sinks(monkeypatch)
        items = Items()
        fanout = _pmap.Fanout(
            send=items.send, default_concurrency=3, default_timeout=5.0, max_items=100, max_threads=4
        )
        try:
            if use_pcalls:
                fns = [lambda i=i: i for i in range(count)]
                results = fanout.pcalls(*fns, timeout=timeout, fail_fast=fail_fast)
            else:
                results = fanout.pmap(
                    lambda i: i, range(count), concurrency=concurrency, timeout=timeout, fail_fast=fail_fast
                )
        except (ValueError, _failure.PmapError):  # refused, or failed fast on a timed-out item
            results = None
    if results is not None:
        assert len(results) == count
    for sink, value in sinks.reached:
        assert type(value) in EXACT[sink], (sink, value)
        if sink == "take":
            assert 1 <= value <= max(count, 1)
    assert all_threads_back(fanout, 4)
    for frame in items.frames:
        if type(frame).__name__ == "PmapStart":
            assert type(frame.concurrency) is int and 1 <= frame.concurrency <= 4


def test_program_values_become_exact_copies():
    session = Session()
    session.run(LIAR + "class Name(str):\n    def startswith(self, prefix):\n        return True\n"
                "n = Liar(7)\nname = Name('k')")
    number, name = session["n"], session["name"]
    assert type(_exact.whole_number(number, "n")) is int
    assert type(_exact.seconds(number, "t")) is float
    assert type(_exact.plain_str(name, "s")) is str
    failure = _failure.Failure(number, name, "m")
    assert (failure.index, type(failure.index), failure.kind, type(failure.kind)) == (7, int, "k", str)


# --- 2. Program code never runs inside a trusted section -----------------------------------

GC_ATTACK = """\
import contextlib, gc, json, sys
sys.path.insert(0, {root!r})
from ptcrun.sandbox.child import _modules, _tripwire
from ptcrun.sandbox.child._namespace import build_globals
from ptcrun.sandbox.child._compile import compile_program
from ptcrun.sandbox.child._tripwire import exec_program, install_tripwire, trusted

off = {off!r}
if "pause" in off:  # the collector may run inside trusted sections
    _tripwire._pause_gc = _tripwire._resume_gc = lambda: None
if "frames" in off:  # events of program frames inside a section pass like the section's own
    _tripwire._program_code_inside_section = lambda: False

PROGRAM = '''
import collections
def leak():
    try:
        yield 1
    finally:
        probe()
class Box:
    pass
def make_garbage():
    box = Box()
    box.me = box
    box.gen = leak()
    next(box.gen)
make_garbage()
Point = collections.namedtuple('Point', 'x y')
'''
seen = []

def probe():
    try:
        compile("1", "<probe>", "eval")
        seen.append(("compiled", _tripwire._state.depth))
    except PermissionError:
        seen.append(("blocked", _tripwire._state.depth))

install_tripwire()
with trusted():
    code = compile_program(PROGRAM)
ran_inside = compiled_inside = 0
for threshold in range(2, 400):
    namespace = build_globals(host={{"probe": probe}}, write_output=lambda text: None)
    gc.collect()
    gc.set_threshold(threshold, 10, 10)
    del seen[:]
    exec_program(code, namespace)
    gc.set_threshold(700, 10, 10)
    gc.collect()
    ran_inside += sum(1 for _, depth in seen if depth)
    compiled_inside += sum(1 for what, depth in seen if what == "compiled" and depth)
print(json.dumps({{"ran_inside": ran_inside, "compiled_inside": compiled_inside}}))
"""


def run_gc_attack(*off: str) -> dict[str, int]:
    """Run the attack in a throwaway interpreter (the tripwire cannot be removed once added).

    A program leaves a paused generator with a ``finally`` block in a reference cycle, then
    calls ``namedtuple``, which the child builds inside a trusted section. Under each of a few
    hundred collector thresholds the collector fires at a different allocation, inside or
    outside that section. The ``finally`` block tries ``compile``, which only trusted code may.
    """
    completed = subprocess.run(
        [sys.executable, "-I", "-B", "-c", GC_ATTACK.format(root=str(ROOT), off=off)],
        env={}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, int] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_careless_trusted_section_runs_a_programs_finally_with_the_tripwire_off():
    assert run_gc_attack("pause", "frames")["compiled_inside"] > 0


def test_program_finally_never_runs_trusted():
    assert run_gc_attack() == {"ran_inside": 0, "compiled_inside": 0}


def test_paused_collection_alone_keeps_finalizers_out_of_trusted_sections():
    assert run_gc_attack("frames") == {"ran_inside": 0, "compiled_inside": 0}


def test_program_frames_inside_a_section_are_judged_untrusted():
    """With the collector free to fire inside, the program's events are still refused."""
    outcome = run_gc_attack("pause")
    assert outcome["ran_inside"] > 0
    assert outcome["compiled_inside"] == 0


def test_trusted_section_pauses_automatic_collection_across_threads():
    import gc

    from ptcrun.sandbox.child._tripwire import trusted

    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with trusted():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with trusted():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread is still inside its section
    leave.set()
    thread.join(5)
    assert gc.isenabled()


# --- 3. Rendering program objects cannot fail ----------------------------------------------

# A time zone whose utcoffset is program code: str() of a datetime calls it.
ZONE = """
import datetime, collections
class Zone(datetime.tzinfo):
    def utcoffset(self, moment):
        ACTION
    def tzname(self, moment):
        return 'Z'
    def dst(self, moment):
        return None
moment = datetime.datetime(2024, 1, 1, tzinfo=Zone())
"""
# A count whose comparison is program code: repr() of a Counter sorts by count.
COUNT = """
import collections
class Count:
    def __lt__(self, other):
        ACTION
    def __gt__(self, other):
        ACTION
counts = collections.Counter({'a': Count(), 'b': Count()})
"""


def test_careless_reporter_runs_program_code_that_escapes_it():
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - reading its message is the attack
        Session().run(ZONE.replace("ACTION", "done('hijacked')") + "raise ValueError(moment)")
    with pytest.raises(Done):
        errors.to_payload(caught.value)  # the payload as the reporter built it before
    payload = _exact.error_payload(caught.value)
    assert payload == {"type": "ValueError", "message": "<ValueError whose message could not be read>"}
    failure = _failure.Failure.from_exception(3, caught.value)
    assert (failure.index, failure.kind) == (3, "ValueError")


@pytest.mark.parametrize(
    ("program", "kind"),
    [
        (ZONE.replace("ACTION", "fail('x')") + "raise ValueError(moment)", None),
        (ZONE.replace("ACTION", "return 5") + "raise ValueError(moment)", "ValueError"),
        (COUNT.replace("ACTION", "done(1)") + "raise KeyError(counts)", None),
        (COUNT.replace("ACTION", "raise ValueError('no')") + "raise KeyError(counts)", "KeyError"),
        ("class E(ToolError):\n    payload_fields = 5\nraise E('m', tool='t')", "E"),
        ("class E(ToolError):\n    payload_fields = (1, 2)\nraise E('m', tool='t')", "E"),
        ("class U(UnicodeEncodeError):\n    pass\nu = U('a', 'b', 0, 1, 'r')\nu.object = 5\nraise u", "U"),
    ],
    ids=["zone-fail", "zone-bad-offset", "count-done", "count-raises", "payload-fields-int",
         "payload-fields-names", "unicode-error-object"],
)
async def test_hostile_exceptions_are_reported_without_a_restart(program, kind):
    async with Sandbox(limits=limits()) as sandbox:
        await sandbox.execute("kept = 'still here'")
        with trio.fail_after(20):
            result = await sandbox.execute(program)
            after = await sandbox.execute("done(kept)")
    assert not result.restarted, result
    if kind is not None:
        assert result.error.kind == kind
        assert isinstance(result.error.message, str)
    assert after.answer == "still here"


async def test_a_memory_error_of_program_objects_is_reported_as_the_memory_limit():
    program = ZONE.replace("ACTION", "raise ValueError('no')") + "raise MemoryError(moment)"
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(20):
            result = await sandbox.execute(program)
            after = await sandbox.execute("done('answering')")
    assert result.limit.setting == "Limits.sandbox_memory_bytes"
    assert after.answer == "answering"


async def test_failures_built_by_a_program_cannot_stall_pmap():
    program = "r = pmap(lambda i: Failure(i, [1], {2}), range(3))\ndone([x.kind for x in r])"
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(5):  # a stalled pmap would wait for its 10 s clock
            result = await sandbox.execute(program)
    assert result.answer == ["TypeError"] * 3


async def test_failures_raised_while_rendering_in_pmap_items_stay_in_their_slots():
    program = ZONE.replace("ACTION", "raise ValueError('no')") + textwrap.dedent("""
        def item(i):
            raise ValueError(moment)
        done([f.message for f in pmap(item, range(2))])
    """)
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(5):
            result = await sandbox.execute(program)
    assert result.answer == ["<ValueError whose message could not be read>"] * 2


class _Hostile:
    """A stand-in for the special methods a later language may allow on program classes."""

    def __init__(self, returns: object = None, raises: type[BaseException] | None = None) -> None:
        self.returns, self.raises = returns, raises

    def __str__(self) -> str:
        if self.raises is not None:
            raise self.raises("from __str__")
        return self.returns  # type: ignore[return-value]


HOSTILE = st.builds(
    _Hostile,
    returns=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.text(max_size=5).map(make_str)),
    raises=st.sampled_from([None, ValueError, RecursionError, MemoryError, KeyboardInterrupt, Done,
                            SystemExit, GeneratorExit]),
)


@given(value=st.one_of(HOSTILE, st.builds(ValueError, HOSTILE), st.builds(KeyError, HOSTILE)))
def test_rendering_never_fails_and_gives_exact_text(value):
    assert type(_exact.text(value)) is str
    if isinstance(value, BaseException):
        payload = _exact.error_payload(value, line=3)
        assert type(payload["type"]) is str and type(payload["message"]) is str
        assert payload["line"] == 3


# --- 4. Deep structures: a clear error where the interpreter has a check -------------------

DEEP_LIST = "t = []\nfor i in range(10 ** 6):\n    t = [t]\n"
TWO_DEEP_LISTS = "t = []\nu = []\nfor i in range(10 ** 6):\n    t = [t]\n    u = [u]\n"
DEEP_TUPLE = "t = ()\nfor i in range(3 * 10 ** 6):\n    t = (t,)\n"


@pytest.mark.parametrize(
    ("program", "kind"),
    [
        (DEEP_LIST + "print(t)", "RecursionError"),
        (TWO_DEEP_LISTS + "done(t == u)", "RecursionError"),
        ("import json\n" + DEEP_LIST + "json.dumps(t)", "RecursionError"),
        ("import json\njson.loads('[' * 10 ** 6)", "RecursionError"),
        (DEEP_LIST + "done(t)", "NotJSON"),
        (DEEP_LIST + "raise ValueError(t)", "ValueError"),
        (DEEP_LIST + "pmap(lambda i: print(t), range(2), fail_fast=True)", "PmapError"),
    ],
    ids=["repr", "compare", "json-dumps", "json-loads", "done", "exception-message", "pmap-repr"],
)
async def test_deep_structures_give_a_clear_error_not_a_crash(program, kind):
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(30):
            result = await sandbox.execute(program)
    assert result.error.kind == kind
    assert not result.restarted


async def test_a_deep_answer_variable_is_no_candidate_and_no_crash():
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(30):
            result = await sandbox.execute(DEEP_LIST + "answer = t")
    assert result.status == "ok"
    assert not result.candidate_set
    assert not result.restarted


async def test_hashing_a_deep_tuple_crashes_only_the_child():
    """CPython 3.11 hashes tuples recursively with no depth check: this crash remains."""
    async with Sandbox(limits=limits()) as sandbox:
        with trio.fail_after(30):
            result = await sandbox.execute(DEEP_TUPLE + "s = {t}")
            after = await sandbox.execute("done('fresh child')")
    assert isinstance(result.limit, errors.SandboxError)
    assert "crashed (SIGSEGV)" in result.error.message
    assert result.restarted
    assert after.answer == "fresh child"


RECURSION = """\
import sys
sys.path.insert(0, {root!r})
sys.setrecursionlimit({limit})
from tests.sandbox.inproc import run
try:
    run("t = []\\nfor i in range(10 ** 6):\\n    t = [t]\\nprint(t)")
except RecursionError:
    print("RecursionError")
"""


@pytest.mark.parametrize(("limit", "crashes"), [(10**6, True), (1000, False)], ids=["raised", "default"])
def test_deep_repr_is_clean_only_under_the_default_recursion_limit(limit, crashes):
    """The child never raises the recursion limit: C code checks against it, the stack does not."""
    completed = subprocess.run(
        [sys.executable, "-I", "-B", "-c", RECURSION.format(root=str(ROOT), limit=limit)],
        env={}, capture_output=True, text=True, timeout=120, check=False,
    )
    if crashes:
        assert completed.returncode < 0  # killed by SIGSEGV
    else:
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip() == "RecursionError"


# --- 5. Rules for widening the language ----------------------------------------------------


class SwallowingContext:
    """A context manager whose __exit__ swallows everything (programs cannot write one yet)."""

    def __enter__(self) -> str:
        return "entered"

    def __exit__(self, *exc_info: object) -> bool:
        return True


def test_careless_with_lets_exit_swallow_done():
    session = Session(manager=SwallowingContext())
    session.globals["_with_"] = lambda manager: manager
    assert session.run("with manager:\n    done('ignored')\nprint('still running')") == "still running\n"


def test_exit_returning_true_cannot_swallow_done_or_fail():
    session = Session(manager=SwallowingContext())
    assert session.run("with manager as m:\n    raise ValueError(m)\nprint('swallowed')") == "swallowed\n"
    for exit_call in ("done('answer')", "fail('reason')"):
        with pytest.raises(Done):
            session.run(f"with manager:\n    {exit_call}\nprint('still running')")
    with pytest.raises(TypeError, match="does not support the context manager protocol"):
        session.run("with 3:\n    pass")


RAISED_OVER_DONE = """
try:
    try:
        done('answer')
    finally:
        raise ValueError('raised over done()')
except ValueError:
    print('still running')
"""


def test_careless_except_catches_an_error_raised_over_done(monkeypatch):
    monkeypatch.setattr(
        _handlers, "_ends_the_program",
        lambda pending: pending is not None and not isinstance(pending, Exception),
    )
    assert Session().run(RAISED_OVER_DONE) == "still running\n"


def test_an_error_raised_over_done_cannot_be_caught():
    with pytest.raises(ValueError, match="raised over done"):
        Session().run(RAISED_OVER_DONE)
    with pytest.raises(ValueError, match="2"):
        Session().run("try:\n    raise KeyError(1)\nfinally:\n    raise ValueError(2)")
    assert Session().run("try:\n    try:\n        raise KeyError(1)\n    finally:\n        raise ValueError(2)\n"
                         "except ValueError:\n    print('caught')") == "caught\n"


def test_a_closing_generator_still_catches_its_own_errors():
    program = """
def numbers():
    try:
        yield 1
    finally:
        try:
            int('x')
        except ValueError:
            print('caught while closing')
g = numbers()
next(g)
g.close()
"""
    assert Session().run(program) == "caught while closing\n"


# A str that looks like "__globals__" to a dict and like a public name to its own methods.
IMPOSTOR = """
class Name(str):
    def startswith(self, prefix):
        return False
f = lambda: 0
"""


def careless_check(name: object) -> str:
    if not isinstance(name, str) or name.startswith("_") or name in _attributes.HIDDEN_ATTRIBUTES:
        raise AttributeError(f"{name!r} is not allowed")
    return name


def test_careless_name_check_lets_a_str_subclass_read_globals(monkeypatch):
    monkeypatch.setattr(_attributes, "check_attribute_name", careless_check)
    session = Session()
    session.run(IMPOSTOR + "g = getattr(f, Name('__globals__'))")
    assert session["g"] is session.globals


@pytest.mark.parametrize(
    "attack",
    ["getattr(f, Name('__globals__'))", "hasattr(f, Name('__globals__'))",
     "setattr(f, Name('__doc__'), 1)", "getattr(f, Name('__globals__'), None)"],
)
def test_names_must_be_exact_strings(attack):
    with pytest.raises(TypeError, match="attribute name must be a string"):
        Session().run(IMPOSTOR + attack)


def test_proxies_and_import_take_only_exact_names():
    name = make_str("dumps")
    proxy = _modules.guarded_import("json")
    with pytest.raises(AttributeError):
        proxy.__getattr__(name)
    with pytest.raises(ImportError):
        _modules.guarded_import(make_str("json"))
    with pytest.raises(ImportError):
        _modules.guarded_import("json", fromlist=(name,))


class Holder:
    kind = type


def test_careless_getattr_hands_out_the_metaclass(monkeypatch):
    monkeypatch.setattr(_attributes, "_check_value", lambda name, value: value)
    session = Session(holder=Holder())
    # type() with three arguments defines special methods the compile policy refuses.
    out = session.run("K = holder.kind('K', (), {'__len__': lambda self: 7})\nprint(len(K()))")
    assert out == "7\n"


def test_metaclass_is_never_handed_out():
    with pytest.raises(AttributeError, match="metaclasses"):
        Session(holder=Holder()).run("holder.kind")
    reachable: dict[str, object] = dict(_namespace._builtins(Ownership()))
    for module, proxy in _modules._PROXIES.items():
        reachable.update({f"{module}.{name}": value for name, value in proxy._members.items()})
    for host_name in ("Failure", "PmapError"):
        reachable[host_name] = getattr(_failure, host_name)
    for name, value in reachable.items():
        assert not (isinstance(value, type) and issubclass(value, type)), name
        assert type(value).__name__ != "module", name


def test_except_matches_exactly_the_tuple_it_checked():
    session = Session()
    session.run("class Pair(tuple):\n    pass\nkinds = Pair([KeyError, ValueError])")
    assert session.run("try:\n    raise KeyError(1)\nexcept kinds:\n    print('caught')") == "caught\n"
    assert _handlers.catchable(session["kinds"]) == (KeyError, ValueError)
    assert type(_handlers.catchable(session["kinds"])) is tuple


def test_module_machinery_without_rules_stays_closed():
    """The rules in docs/security.md ("Rules for widening the language") must be built, and
    tested, before any of these opens."""
    # copy, operator, typing and dataclasses are open, with their rules tested in
    # test_modules_attacks.py;
    # copy's machinery itself stays closed.
    for module in ("copyreg", "pickle"):
        with pytest.raises(ImportError):
            Session().run(f"import {module}")


# The widening opened special methods, type and super; each rule of docs/security.md ("Rules for
# widening the language") is checked once against a careless build and once against the real one.

SWALLOWING_CLASS = """
class Swallow:
    def __enter__(self):
        return self
    def __exit__(self, kind, exc, tb):
        self.seen = kind
        return True
"""


def test_careless_with_lets_a_program_exit_swallow_done():
    session = Session()
    session.globals["_with_"] = lambda manager: manager
    session.run(SWALLOWING_CLASS)
    assert session.run("with Swallow():\n    done('ignored')\nprint('still running')") == "still running\n"


def test_a_program_exit_swallows_errors_but_never_done_or_fail():
    session = Session()
    session.run(SWALLOWING_CLASS)
    assert session.run("with Swallow() as s:\n    raise ValueError(1)\nprint(s.seen.__name__)") == "ValueError\n"
    for exit_call in ("done('answer')", "fail('reason')"):
        with pytest.raises(Done):
            session.run(f"s = Swallow()\nwith s:\n    {exit_call}\nprint('still running')")
        # cleaned up as on a normal exit: the host's exception never reaches program code
        assert session["s"].seen is None
    assert "still running\n" not in session.writes


def test_careless_with_hands_a_program_exit_the_host_exception(monkeypatch):
    # A program's __exit__ treated as the host's: it keeps done()'s exception class, and can
    # raise it later with an answer that never went through the JSON conversion.
    monkeypatch.setattr(_handlers, "is_program_class", lambda cls: False)
    session = Session()
    session.run(SWALLOWING_CLASS + "s = Swallow()")
    with pytest.raises(Done):
        session.run("with s:\n    done('answer')")
    with pytest.raises(Done) as forged:
        session.run("raise s.seen('done', {'not', 'json'})")
    assert forged.value.value == {"not", "json"}


def test_careless_type_hands_out_the_metaclass():
    session = Session()
    session.globals["__builtins__"]["type"] = type
    out = session.run("K = type(type(1))('K', (), {'__len__': lambda self: 7})\nprint(len(K()))")
    assert out == "7\n"


def test_type_never_hands_out_a_metaclass():
    session = Session(abstract=contextlib.AbstractContextManager)
    session.run("class A:\n    pass\nkinds = [type(A), type(type(1)), type(type(type)), type(type(A()))]")
    for kind in session["kinds"]:
        assert not (isinstance(kind, type) and issubclass(kind, type)), kind
    assert session.run("print(type(A) is type, type(A()) is A, isinstance(A, type))") == "True True True\n"
    with pytest.raises(TypeError, match="type\\(\\) takes exactly one argument"):
        session.run("type('K', (), {'__len__': lambda self: 7})")
    with pytest.raises(TypeError, match="its metaclass 'ABCMeta'"):
        session.run("type(abstract)")
    with pytest.raises(TypeError, match="cannot derive from type"):
        session.run("class Meta(type):\n    pass")


def test_careless_getattr_reads_the_internals_of_a_host_class_through_a_subclass(monkeypatch):
    # Private names on the program's own objects, without the rule that a class the program
    # did not make must not define them: a subclass of a host class reaches its internals.
    monkeypatch.setattr(_attributes, "_defined_outside_the_program", lambda *a, **k: False)
    session = Session(host_class=_pmap.Fanout)
    session.run("class Mine(host_class):\n    pass\nleaked = Mine._thread_main")
    assert callable(session["leaked"])


def test_private_names_reach_only_what_the_program_defined():
    session = Session(host_class=_pmap.Fanout)
    session.run("class Mine(host_class):\n    def _own(self):\n        return 1\nok = Mine._own")
    with pytest.raises(AttributeError, match="'_thread_main' is not allowed"):
        session.run("Mine._thread_main")


def _host_tools() -> object:
    from ptcrun.sandbox.child._host_api import Tools

    return Tools(None, ["echo"])  # type: ignore[arg-type]


FORGED_TOOLS = """
class Link:
    def open_request(self):
        calls.append("program code")
        raise ValueError("stop")
calls = []
forged = type(tool)(Link(), ["echo"])
try:
    forged.echo(1)
except ValueError:
    pass
"""


def test_careless_type_hands_out_the_class_of_a_host_object(monkeypatch):
    # type() that returns every class as it is: the Tools class, called with the program's own
    # object as its link, runs the program's code from inside the sandbox's tool call.
    monkeypatch.setattr(_class_of, "_nameable", lambda kind: True)
    session = Session(tool=_host_tools())
    session.run(FORGED_TOOLS)
    assert session["calls"] == ["program code"]


def test_the_class_of_a_host_object_builds_nothing():
    session = Session(tool=_host_tools())
    with pytest.raises(TypeError, match="objects of class 'Tools' cannot be made"):
        session.run(FORGED_TOOLS)
    with pytest.raises(TypeError, match="a class cannot derive from 'Tools'"):
        session.run("class T(tool.__class__):\n    pass")
    assert session.run("print(type(tool).__name__, isinstance(tool, type(tool)))") == "Tools True\n"


ENCODER_REWRITE = """
import json
class E(json.JSONEncoder):
    pass
E.__init__(json.JSONEncoder, separators=(";", "="))
"""


def test_careless_getattr_hands_out_methods_that_take_any_self(monkeypatch):
    # Without the check of self, json's encoder __init__ rewrites the class's separators, for
    # every json.dumps in the child.
    monkeypatch.setattr(_attributes, "_unbound", lambda obj, name, value: value)
    before = dict(vars(json.JSONEncoder))
    try:
        Session().run(ENCODER_REWRITE)
        assert json.dumps({"a": [1, 2]}) == '{"a"=[1;2]}'
    finally:  # the class as it was, for the rest of this process
        for name in set(vars(json.JSONEncoder)) - set(before):
            delattr(json.JSONEncoder, name)
        for name in ("item_separator", "key_separator"):
            setattr(json.JSONEncoder, name, before[name])
    assert json.dumps({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_a_method_read_off_a_host_class_takes_only_its_objects():
    with pytest.raises(TypeError, match=r"JSONEncoder.__init__\(\) needs a 'JSONEncoder' object"):
        Session().run(ENCODER_REWRITE)
    assert json.dumps({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_special_methods_cannot_lie_to_runtime_code():
    session = Session()
    session.run("""
class Liar(str):
    def __eq__(self, other):
        return False
    def __hash__(self):
        return 0
    def __str__(self):
        return "lie"
class Many(int):
    def __index__(self):
        return 10 ** 6
    def __lt__(self, other):
        return False
class Loop:
    def __repr__(self):
        return repr(self)
    __str__ = __repr__
keys = {Liar("a"): 1, Liar("b"): 2}
twins = {Liar("a"): 1, Liar("a"): 2}
n = Many(3)
loop = Loop()
""")
    assert _json.to_json(session["keys"], what="answer") == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="two keys that both become 'a'"):
        _json.to_json(session["twins"], what="answer")
    assert _exact.whole_number(session["n"], "concurrency") == 3
    assert _exact.plain_str(next(iter(session["keys"])), "name") == "a"
    assert _exact.text(session["loop"]) == "<Loop object whose text could not be read>"


def test_pmap_timeout_of_more_seconds_than_a_float_holds_means_no_limit():
    assert _exact.seconds(10**400, "t") == math.inf
