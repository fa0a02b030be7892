"""The language layer alone: planner programs behave as in CPython, with the guards in place.

Most tests run a program twice, once in the sandbox namespace and once with plain ``exec``
and real builtins, and require the same printed output: CPython is the oracle.
"""

from __future__ import annotations
import __future__

import contextlib
import dis
import io
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest

from ptcrun.sandbox.child import _namespace
from ptcrun.sandbox.child._compile import compile_program
from ptcrun.sandbox.child._namespace import build_globals, warm_up
from tests.sandbox.inproc import DATA, Session, run


def cpython(source: str) -> str:
    """What plain CPython prints for source, with the same data and annotation semantics."""
    code = compile(
        textwrap.dedent(source), "<reference>", "exec",
        flags=__future__.annotations.compiler_flag, dont_inherit=True,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {"__name__": "__main__", "data": DATA})
    return out.getvalue()


SAME_AS_CPYTHON = {
    "assignments_and_arithmetic": """
        a = b = 3
        c, d = 7, 2
        print(a + b, c - d, c * d, c / d, c // d, c % d, c ** d, -c, ~d, c << 1, c >> 1,
              c & d, c | d, c ^ d, 7 > 3 > 1, divmod(c, d), round(2.675, 2), abs(-3))
        del a
        print(b, 1 if b else 0, (n := 10) + 1, n)
    """,
    "functions_lambdas_closures": """
        def scale(x, factor=2, *rest, bonus=0, **extra):
            return x * factor + bonus + sum(rest) + len(extra)
        def counter():
            n = 0
            def step():
                nonlocal n
                n += 1
                return n
            return step
        step = counter()
        step(); step()
        args, kw = (1, 3, 4), {"bonus": 5, "z": 1}
        print(scale(2), scale(*args, **kw), step(), (lambda x, y=1: x + y)(2))
        print(sorted(["bb", "a", "ccc"], key=lambda s: -len(s)))
    """,
    "loops": """
        total = 0
        for i in range(10):
            if i == 7:
                break
            if i % 2:
                continue
            total += i
        else:
            total = -1
        n = 0
        while n < 3:
            n += 1
        else:
            n *= 10
        for a, (b, c) in [(1, (2, 3)), (4, (5, 6))]:
            total += a * b * c
        print(total, n)
    """,
    "comprehensions_and_generators": """
        words = " ".join(data).split()
        print([w.upper() for w in words if len(w) > 4])
        print({w: len(w) for w in words}, sorted({w[0] for w in words}))
        print(sum(len(w) for w in words), list(x * y for x in range(3) for y in range(x)))
        def gen(n):
            yield from range(n)
            yield "end"
        g = gen(2)
        print(next(g), list(g), next(iter([]), "empty"))
        print([(i, w) for i, w in enumerate(words, 1) if w.startswith("b")])
    """,
    "f_strings": """
        x, n, s, w, p = 3.14159, 1234567, "hi", 10, 3
        import datetime
        d = datetime.date(2024, 3, 5)
        print(f"{x:>10.2f}|{n:,}|{s!r:^8}|{x:{w}.{p}f}|{d:%Y-%m}|{n:_x}|{x=}")
    """,
    "str_format_with_plain_fields": """
        print("{} {}".format(1, 2), "{0} {1} {0}".format("a", "b"), "{name}!".format(name="x"))
        print("{0:>5}|{1:<4}|".format(7, 8), "{:{w}}|".format("ab", w=5))
        print("{a} {b:.1f}".format_map({"a": 1, "b": 2.25}), str.format("{}-{}", 1, 2))
        print("%s-%05.1f" % ("x", 2.5), "%(k)s" % {"k": 1})
    """,
    "exceptions": """
        class AppError(ValueError):
            def __init__(self, code):
                self.code = code
        def risky(x):
            if x == 0:
                raise AppError(42)
            return 10 / x
        out = []
        for x in (2, 0, "a"):
            try:
                out.append(risky(x))
            except AppError as e:
                out.append(("app", e.code, isinstance(e, ValueError)))
            except (TypeError, KeyError) as e:
                out.append(("type error", str(e)))
            else:
                out.append("ok")
            finally:
                out.append("f")
        try:
            try:
                {}["k"]
            except KeyError as e:
                raise RuntimeError("wrapped") from e
        except RuntimeError as e:
            out.append(str(e))
        print(out)
    """,
    "classes": """
        class Account:
            rate = 2
            count = 0
            def __init__(self, owner, balance=0):
                self.owner = owner
                self.balance = balance
                Account.count += 1
            def deposit(self, amount):
                self.balance += amount * self.rate
                return self
            def __eq__(self, other):
                return self.balance == other.balance
            def __lt__(self, other):
                return self.balance < other.balance
            def __contains__(self, name):
                return name == self.owner
            @property
            def label(self):
                return f"{self.owner}:{self.balance}"
            @staticmethod
            def zero():
                return 0
            @classmethod
            def named(cls, owner):
                return cls(owner)
        class Savings(Account):
            rate = 3
        a = Account("ann").deposit(5)
        b = Savings.named("bob").deposit(5)
        b.tags = ["x"]
        b.tags += ["y"]
        print(a.label, b.label, sorted([b, a])[0].owner, "ann" in a, a == b, Account.count,
              Account.zero(), b.tags, isinstance(b, Account))
    """,
    "star_unpacking": """
        first, *middle, last = [1, 2, 3, 4]
        head, *tail = "abc"
        def f(*args, **kwargs):
            return args, sorted(kwargs.items())
        xs, opts = [1, 2], {"b": 2, "a": 1}
        print(first, middle, last, head, tail, f(*xs, 3, *xs, **opts, c=3), [*xs, *"ab"],
              {**opts, "z": 0})
    """,
    "augmented_assignment_on_items_and_attributes": """
        from collections import Counter, defaultdict
        counts = {}
        for w in " ".join(data).split():
            counts[w] = counts.get(w, 0)
            counts[w] += 1
        grid = defaultdict(lambda: defaultdict(int))
        grid["a"]["b"] += 2
        grid["a"]["b"] *= 5
        class Box:
            def __init__(self):
                self.n = 1
                self.items = [1, 2]
        box = Box()
        box.n += 1
        box.n **= 3
        box.items[0] -= 10
        nums = [10, 20]
        nums[-1] //= 3
        flags = {"s": {1}}
        flags["s"] |= {2}
        text = "ab"
        text *= 2
        nums[0:1] += [7, 8]
        box.items[::2] *= 1
        print(sorted(counts.items()), grid["a"]["b"], box.n, box.items, nums, flags, text)
    """,
    "augmented_assignment_keeps_aliasing": """
        a = [1]
        b = a
        b += [2]
        d = {"k": [1]}
        alias = d["k"]
        d["k"] += [2]
        t = (1,)
        u = t
        u += (2,)
        print(a, alias, t, u)
    """,
    "builtins": """
        xs = [3, 1, 2]
        print(sorted(xs), sorted(xs, reverse=True), list(reversed(xs)), min(xs), max(xs),
              min(4, 2, 8), max([], default=0), max(xs, key=lambda v: -v), sum(xs), sum(xs, 10))
        print(list(zip(xs, "abc")), list(map(str, xs)), list(map(pow, [2, 3], [2, 2])),
              list(filter(None, [0, 1, "", "x"])), any(xs), all([]), list(enumerate("ab", 5)))
        print(list(range(1, 10, 3)), len("abc"), chr(65), ord("A"), hex(255), oct(8), bin(5),
              callable(len), isinstance(1, (int, str)), issubclass(bool, int), repr("a"),
              float("1.5"), int("12"), str(1), bool(0), tuple([1]), list("ab"), set([1, 1]),
              frozenset([2]), dict(a=1), dict([("b", 2)]), dict({"c": 3}, d=4), pow(2, 10, 1000),
              format(0.5, ".0%"), ascii("é"), complex(1, 2), round(3.7))
        it = iter([1, 2])
        print(next(it), next(it), next(it, "end"), list(iter(lambda: 0, 0)))
        print(isinstance([], list), isinstance({}, (list, dict)), isinstance((), list | tuple),
              issubclass(list, object), dict.fromkeys("ab", 0))
    """,
    "containers_from_collections": """
        from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
        c = Counter(" ".join(data).split())
        c.update(["gamma"])
        c["new"] += 1
        print(c.most_common(2), c["missing"], sorted((c + Counter(["x"])).items())[:2])
        groups = defaultdict(list)
        for w in sorted(c):
            groups[w[0]].append(w)
        print(dict(groups), defaultdict(list), defaultdict(int)["z"])
        od = OrderedDict(a=1, b=2)
        od.move_to_end("a")
        od["c"] = 3
        q = deque([1, 2, 3], maxlen=3)
        q.append(4)
        q.appendleft(0)
        q.rotate(1)
        Point = namedtuple("Point", "x y", defaults=[0])
        p = Point(1)
        print(list(od), q, p, p.x + p.y, Point(*[3, 4]))
        class Rows(list):
            def total(self):
                return sum(self)
        rows = Rows([1, 2])
        rows.append(3)
        print(rows.total(), isinstance(rows, list))
    """,
    "imports": """
        import math, json, re, statistics, itertools, functools, heapq, bisect, string, textwrap
        import datetime as dt
        from collections import Counter as C
        from functools import reduce, partial, lru_cache, cmp_to_key
        from itertools import chain, groupby, combinations, islice, accumulate, product
        print(math.sqrt(16), math.pi > 3, math.floor(2.5), math.isclose(0.1 + 0.2, 0.3))
        print(json.dumps({"b": [1, None], "a": True}, sort_keys=True), json.loads('{"x": 1.5}'))
        m = re.search(r"(\\w+)@(\\w+)", "mail ann@host now")
        print(m.group(1), m.groups(), re.findall(r"\\d+", "a1b22"), re.sub(r"\\d", "#", "a1"),
              re.split(r"[,;]", "a,b;c"), [x.group() for x in re.finditer("b+", "abbcb")],
              re.compile(r"^b", re.I | re.M).findall("B\\nb"),
              re.sub(r"(\\w)(\\w*)", lambda mm: mm.group(2) + mm.group(1), "hello world"))
        print(statistics.mean([1, 2, 3, 4]), statistics.median([3, 1, 2]),
              round(statistics.stdev([1, 2, 3, 4]), 3), statistics.mode("aab"),
              statistics.quantiles([1, 2, 3, 4, 5, 6, 7, 8], n=4))
        print(list(chain([1], [2])), [(k, len(list(g))) for k, g in groupby("aabccc")],
              list(combinations("abc", 2))[:2], list(islice(itertools.count(5), 3)),
              list(accumulate([1, 2, 3])), len(list(product("ab", repeat=2))))
        @lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        add3 = partial(lambda a, b: a + b, 3)
        print(reduce(lambda a, b: a * b, [1, 2, 3, 4]), add3(4), fib(30),
              sorted([3, 1, 2], key=cmp_to_key(lambda a, b: b - a)))
        h = [5, 1, 3]
        heapq.heapify(h)
        heapq.heappush(h, 0)
        print(heapq.heappop(h), heapq.nlargest(2, [4, 9, 1]), bisect.bisect_left([1, 3, 5], 4))
        print(string.ascii_lowercase[:3], string.capwords("a b"),
              string.Template("$who!").substitute(who="hi"),
              textwrap.shorten("a b c d e f", width=7), textwrap.wrap("aaa bbb", 3),
              textwrap.dedent("  x"), textwrap.indent("a", "> "))
        d = dt.datetime.strptime("2024-03-05 10:30", "%Y-%m-%d %H:%M")
        later = d + dt.timedelta(days=30, hours=2)
        print(d.strftime("%A %d %B %Y"), later.isoformat(), (later - d).days,
              dt.date.fromisoformat("2024-01-31").weekday(), dt.timezone.utc, C("aab")["a"])
    """,
    "annotations": """
        x: int = 5
        names: list[str] = ["a"]
        def f(items: list[int], scale: float = 1.0) -> dict[str, int | None]:
            return {"n": len(items)}
        class P:
            label: str = "p"
            def __init__(self, n: int) -> None:
                self.n: int = n
        print(x, names, f([1, 2]), P(3).n, P.label)
    """,
    "globals_and_scopes": """
        total = 0
        def add(n):
            global total
            total += n
        for i in range(4):
            add(i)
        assert total == 6, "sum"
        print(total)
    """,
}


@pytest.mark.parametrize("source", SAME_AS_CPYTHON.values(), ids=SAME_AS_CPYTHON.keys())
def test_program_prints_what_cpython_prints(source: str) -> None:
    assert run(source) == cpython(source)


def test_top_level_names_persist_from_program_to_program() -> None:
    session = Session()
    session.run("""
        class Tally:
            def __init__(self):
                self.seen = {}
        def note(t, word):
            t.seen[word] = t.seen.get(word, 0) + 1
        tally = Tally()
        import json
    """)
    out = session.run("""
        note(tally, "a")
        tally.seen["a"] += 1
        tally.extra = 1
        print(tally.seen, tally.extra, json.dumps([1]))
    """)
    assert out == "{'a': 2} 1 [1]\n"


def test_augmented_assignment_evaluates_target_and_key_once() -> None:
    out = run("""
        calls = []
        def table():
            calls.append("table")
            return counts
        def key():
            calls.append("key")
            return "k"
        def amount():
            calls.append("amount")
            return 2
        counts = {"k": 1}
        table()[key()] += amount()
        class Box:
            def __init__(self):
                self.n = 0
        box = Box()
        def get_box():
            calls.append("box")
            return box
        get_box().n += amount()
        print(counts, box.n, calls)
    """)
    assert out == "{'k': 3} 2 ['table', 'key', 'amount', 'box', 'amount']\n"


def test_print_honours_sep_and_end_and_writes_once_per_call() -> None:
    session = Session()
    session.run("""
        print("a", 1, None, sep="-", end="!")
        print()
        print("x", "y", sep=None, end=None)
        def shout(word):
            print(word.upper())
        shout("hi")
        say = print
        say("via", "name")
        list(map(print, ["m1", "m2"]))
        print("", end="")
    """)
    assert session.writes == ["a-1-None!", "\n", "x y\n", "HI\n", "via name\n", "m1\n", "m2\n"]


def test_print_refuses_file_argument() -> None:
    with pytest.raises(TypeError, match=r"print\(file=\.\.\.\) is not available"):
        run("print('x', file=data)")


def test_print_checks_separator_types_as_python_does() -> None:
    with pytest.raises(TypeError, match="sep must be None or a string, not int"):
        run("print('a', 'b', sep=1)")


def test_print_from_several_threads_keeps_each_line_whole() -> None:
    session = Session()
    session.run("""
        def emit(i):
            for n in range(200):
                print("line", i, n, "x" * 50)
    """)
    emit = session["emit"]
    threads = [threading.Thread(target=emit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(session.writes) == 800
    for text in session.writes:
        assert text.startswith("line ") and text.endswith("x" * 50 + "\n")
        assert text.count("\n") == 1


def test_host_names_are_plain_globals_and_rebinding_them_breaks_no_guard() -> None:
    session = Session(config=types.MappingProxyType({"k": 1}))
    out = session.run("""
        print(len(data), data[0], config["k"], budget.remaining)
        data = ["mine"]
        data[0] = "changed"
        print(data)
    """)
    assert out == "3 alpha beta 1 1000\n['changed']\n"
    with pytest.raises(TypeError, match="cannot assign to an item of a 'mappingproxy' object"):
        session.run("config['k'] = 2")
    assert session.host["data"] == DATA


def test_builtins_offer_what_programs_use_and_nothing_dangerous() -> None:
    table = build_globals(host={}, write_output=print)["__builtins__"]
    assert isinstance(table, dict)
    for name in (
        "sum", "min", "max", "sorted", "reversed", "enumerate", "zip", "map", "filter", "any",
        "all", "next", "iter", "dict", "set", "frozenset", "list", "tuple", "str", "int",
        "float", "bool", "round", "abs", "isinstance", "range", "len", "repr", "divmod", "pow",
        "chr", "ord", "hex", "callable", "getattr", "hasattr", "setattr", "delattr",
        "type", "super", "bytes", "bytearray", "hash", "vars", "Exception", "ValueError", "KeyError", "TypeError", "IndexError", "ZeroDivisionError",
        "AttributeError", "RuntimeError", "StopIteration", "RecursionError", "TimeoutError",
    ):
        assert name in table, name
    for name in (
        "open", "eval", "exec", "compile", "globals", "locals", "dir",
        "breakpoint", "input", "help", "memoryview", "id", "print", "exit", "quit",
        "aiter", "anext", "BaseException", "SystemExit", "KeyboardInterrupt",
        "GeneratorExit", "ExceptionGroup", "BaseExceptionGroup",
    ):
        assert name not in table, name
    for value in table.values():
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, Exception), value


def test_every_hook_the_policy_emits_is_in_the_namespace() -> None:
    source = """
        import json
        from collections import Counter
        class C:
            def __init__(self):
                self.n = 1
        c = C()
        c.n += 1
        d = {"k": [1]}
        d["k"][0] += 1
        a, (b, e) = 1, (2, 3)
        for x, y in [(1, 2)]:
            print(x, y)
        try:
            json.loads("x")
        except ValueError:
            pass
        f = lambda *a, **k: (a, k)
        f(*[1], **{"z": 2})
        n = 1
        n += 1
        del d["k"]
    """
    code = compile_program(textwrap.dedent(source))
    wanted: set[str] = set()

    def names(code: types.CodeType) -> None:
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                wanted.add(instruction.argval)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names(const)

    names(code)
    namespace = build_globals(host={}, write_output=lambda text: None)
    provided = set(namespace) | set(namespace["__builtins__"])  # type: ignore[arg-type]
    # names the program binds itself: its own variables, temporaries, the printer
    own = {"json", "Counter", "C", "c", "d", "f", "n", "x", "y", "_print", "ValueError"}
    own |= {n for n in wanted if n.startswith("_tmp")}
    assert {n for n in wanted if n.startswith("_")} - own <= provided
    assert {"_getattr_", "_write_", "_inplacevar_", "_catchable_", "_apply_"} <= wanted
    exec(code, namespace)


def test_iterating_builtins_call_getiter_first(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def recording_iter(obj: object) -> object:
        seen.append(obj)
        return iter(obj)  # type: ignore[call-overload]

    monkeypatch.setattr(_namespace, "_getiter", recording_iter)
    run("""
        xs = [3, 1]
        sorted(xs); sum(xs); min(xs); max(xs); any(xs); all(xs); list(reversed(xs))
        list(enumerate(xs)); list(zip(xs, xs)); list(map(str, xs)); list(filter(None, xs))
    """)
    assert len(seen) == 12


def test_container_types_behave_as_types() -> None:
    out = run("""
        from collections import defaultdict
        pairs = dict([("a", 1)])
        merged = dict({"b": 2}, c=3)
        groups = defaultdict(list)
        groups["x"].append(1)
        class Table(dict):
            def keys_sorted(self):
                return sorted(self)
        t = Table(z=1, y=2)
        list.append(t.keys_sorted(), 0)
        print(pairs, merged, dict(groups), t.keys_sorted(), list, tuple[int, ...], list | None,
              issubclass(Table, dict), isinstance(t, (list, dict)), set.union({1}, {2}))
    """)
    assert out == (
        "{'a': 1} {'b': 2, 'c': 3} {'x': [1]} ['y', 'z'] <class 'list'> tuple[int, ...] "
        "list | None True True {1, 2}\n"
    )


def test_datetime_parsing_and_formatting_work_after_warm_up() -> None:
    warm_up()  # a second call is harmless
    out = run("""
        import datetime
        d = datetime.datetime.strptime("05/03/2024 14:00 +0100", "%d/%m/%Y %H:%M %z")
        print(d.strftime("%Y-%m-%d %H:%M %Z %a"), d.utcoffset())
    """)
    assert out == "2024-03-05 14:00 UTC+01:00 Tue 1:00:00\n"


LOCKED_DOWN_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from ptcrun.sandbox.child import _tripwire
from ptcrun.sandbox.child._namespace import build_globals, warm_up
from ptcrun.sandbox.child._compile import compile_program

events = set()

def lockdown(event, args):
    # what the kernel lockdown does to a warmed-up child: no file opens, so no new imports
    if event in ("open", "import"):
        raise PermissionError(f"locked down: {event} {args[0]!r}")
    if not _tripwire._state.depth:
        events.add(event)

warm_up()
sys.addaudithook(lockdown)
_tripwire.install_tripwire()
out = []
namespace = build_globals(host={}, write_output=out.append)
with _tripwire.trusted():
    code = compile_program(sys.stdin.read())
events.clear()
_tripwire.exec_program(code, namespace)
sys.stdout.write("".join(out))
print(sorted(events))
"""


def test_warmed_up_namespace_runs_programs_without_opening_files_or_audit_noise() -> None:
    program = textwrap.dedent(r'''
        import datetime, json, re, statistics, textwrap, collections
        d = datetime.datetime.strptime("2024-03-05 10:30 +0200", "%Y-%m-%d %H:%M %z")
        print(d.strftime("%c %Z %A"), datetime.datetime.now().astimezone().year > 2000)
        print("\N{BULLET}", re.findall(r"\N{BULLET}\w+", "\N{BULLET}ab"))
        try:
            json.loads("{bad")
        except json.JSONDecodeError as e:
            print(e.msg)
        print(round(statistics.stdev([1, 2, 4]), 2), textwrap.shorten("a b c d", width=5))
        Pair = collections.namedtuple("Pair", ["left", "right"])
        print(Pair(1, 2), "\u00e9\u20ac".encode("cp1252"), "\u00e9".encode("ascii", "namereplace"))
    ''')
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-X", "utf8", "-c", LOCKED_DOWN_CHILD, str(root)],
        input=program, capture_output=True, encoding="utf-8", timeout=60, check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == [
        "Tue Mar  5 10:30:00 2024 UTC+02:00 Tuesday True",
        "\N{BULLET} ['\N{BULLET}ab']",
        "Expecting property name enclosed in double quotes",
        "1.53 [...]",
        "Pair(left=1, right=2) b'\\xe9\\x80' b'\\\\N{LATIN SMALL LETTER E WITH ACUTE}'",
        # outside trusted sections: only the program's own exec; the guards are silent
        "['exec']",
    ]


def test_str_subclass_and_unbound_format_are_checked_but_work() -> None:
    out = run("""
        class Name(str):
            pass
        print(Name("{}!").format("hi"), str.format_map("{a}", {"a": 1}), "{0!r:>6}".format("x"))
    """)
    assert out == "hi! 1    'x'\n"


def test_build_globals_refuses_private_host_names() -> None:
    with pytest.raises(ValueError, match="host name '_write_' cannot be offered"):
        build_globals(host={"_write_": None}, write_output=print)
    with pytest.raises(ValueError, match="host name 'not valid' cannot be offered"):
        build_globals(host={"not valid": None}, write_output=print)


def test_sessions_do_not_share_names() -> None:
    first, second = Session(), Session()
    first.run("x = 1")
    with pytest.raises(NameError, match="name 'x' is not defined"):
        second.run("print(x)")
