"""The modules programs reach for beyond the first twelve, each doing in the sandbox what it does
in CPython: random, typing, copy, csv with io.StringIO, decimal, fractions, operator, difflib,
enum, unicodedata, hashlib and base64 (dataclasses has its own file).

The language layer runs in this process; the tests at the end run in a real child, where the
kernel lock-down and the tripwire are on, for what only shows there (a lazy import, a file).
"""

from __future__ import annotations

import base64
import copy
import csv
import decimal
import difflib
import hashlib
import io
import random
import unicodedata

import pytest

from ptcrun.errors import ConfigError
from ptcrun.sandbox import Sandbox
from ptcrun.sandbox.child import _mod_random
from tests.sandbox.conformance import Case, check, check_in_child
from tests.sandbox.inproc import DATA, Session, run

from .conftest import limits

# --- random ---------------------------------------------------------------------------------


def test_random_draws_as_cpython_does_from_the_same_seed():
    out = run("""
        import random
        random.seed(42)
        print(random.random(), random.randint(1, 100), random.choice('abcdef'))
        print(random.sample(range(100), 5), random.uniform(1, 2), random.gauss(0, 1))
        print(random.choices(['a', 'b'], weights=[1, 3], k=5), random.randrange(0, 100, 5))
    """)
    random.seed(42)
    expected = (
        f"{random.random()} {random.randint(1, 100)} {random.choice('abcdef')}\n"
        f"{random.sample(range(100), 5)} {random.uniform(1, 2)} {random.gauss(0, 1)}\n"
        f"{random.choices(['a', 'b'], weights=[1, 3], k=5)} {random.randrange(0, 100, 5)}\n"
    )
    assert out == expected


def test_random_sample_of_data_and_shuffle_of_own_lists():
    session = Session()
    out = session.run("""
        import random
        random.seed(7)
        picked = random.sample(data, 2)
        order = list(range(10))
        random.shuffle(order)
        print(len(picked), all(p in data for p in picked), sorted(order) == list(range(10)))
    """)
    assert out == "2 True True\n"
    assert session["data"] == DATA
    expected = list(range(10))
    r = random.Random(7)
    r.sample(DATA, 2)
    r.shuffle(expected)
    assert session["order"] == expected


def test_the_session_seed_decides_every_draw_and_seed_without_argument_returns_to_it():
    program = "import random\nprint(random.random(), random.Random().random())"
    _mod_random.seed_session(1234)
    first = run(program)
    _mod_random.seed_session(1234)
    assert run(program) == first
    assert run("import random\nrandom.seed()\nprint(random.random(), random.Random().random())") == first
    _mod_random.seed_session(99)
    assert run(program) != first
    assert _mod_random.session_seed() == 99


def test_a_programs_random_instance_is_its_own_generator():
    out = run("""
        import random
        mine = random.Random(5)
        random.seed(1)
        a = mine.random()
        print(a == random.Random(5).random())
    """)
    assert out == "True\n"


# --- typing ---------------------------------------------------------------------------------


def test_annotations_models_write_run():
    out = run("""
        from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, TypeVar, Union, cast
        from typing import TYPE_CHECKING, Generic, Iterable, Sequence
        import typing
        T = TypeVar('T')
        Mode = Literal['fast', 'slow']
        def first(items: Sequence[T], default: Optional[T] = None) -> Optional[T]:
            return items[0] if items else default
        def apply(f: Callable[[int], int], xs: Iterable[int]) -> List[int]:
            return [f(x) for x in xs]
        class Box(Generic[T]):
            def __init__(self, value: T) -> None:
                self.value = value
        table: Dict[str, Union[int, str]] = {'a': 1}
        pair: Tuple[int, ...] = (1, 2)
        print(first([3, 4]), apply(lambda x: x * 2, [1, 2]), Box[int](5).value, cast(int, '7'))
        print(TYPE_CHECKING, isinstance([], typing.Iterable), Optional[int])
    """)
    assert out == "3 [2, 4] 5 7\nFalse True typing.Optional[int]\n"


def test_typed_dict_and_named_tuple_call_form():
    out = run("""
        from typing import NamedTuple, TypedDict
        class Movie(TypedDict):
            title: str
            year: int
        Point = NamedTuple('Point', [('x', int), ('y', int)])
        p = Point(1, 2)
        print(Movie(title='Heat', year=1995), p, p.x + p.y)
    """)
    assert out == "{'title': 'Heat', 'year': 1995} Point(x=1, y=2) 3\n"


def test_named_tuple_class_form_as_in_cpython():
    outcome = check(Case("""
        from typing import NamedTuple, List
        class Hit(NamedTuple):
            chunk: int
            word: str
            score: float = 1.0
            def label(self):
                return f'{self.word}@{self.chunk}'
        hits = [Hit(i, w) for i, chunk in enumerate(data) for w in chunk.split() if w.startswith('b')]
        best = max(hits, key=lambda h: (h.score, h.chunk))
        print(hits[0], best.label(), hits[0]._replace(score=2.0), Hit._fields, hits[0]._asdict())
        print(isinstance(best, tuple), best == (2, 'beta', 1.0), sorted(hits)[0])
        try:
            class Bad(NamedTuple):
                a: int = 1
                b: int
        except TypeError as e:
            print(e)
        done([list(h) for h in hits])
    """))
    assert outcome.status == "done", outcome


# --- copy -----------------------------------------------------------------------------------


def test_deepcopy_and_copy_of_containers_as_in_cpython():
    source = """
        import copy, collections
        inner = [1, 2]
        original = {'a': inner, 'b': (inner, 'x'), 'c': {3}, 'd': collections.Counter('aab'),
                    'e': collections.deque([1], maxlen=3), 'f': collections.defaultdict(list, k=[1])}
        deep = copy.deepcopy(original)
        deep['a'].append(9)
        print(original['a'], deep['a'], deep['b'][0] is deep['a'], deep['e'].maxlen)
        shallow = copy.copy(original)
        print(shallow['a'] is inner, shallow == original, deep['f']['new'], deep['f'] == original['f'])
        cycle = [1]
        cycle.append(cycle)
        twin = copy.deepcopy(cycle)
        print(twin[1] is twin, twin is not cycle, copy.deepcopy((1, 'a')) == (1, 'a'))
    """
    expected = "[1, 2] [1, 2, 9] True 3\nTrue True [] False\nTrue True True\n"
    assert run(source) == expected
    namespace: dict[str, object] = {"copy": copy}
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(__import__("textwrap").dedent(source), "<cpython>", "exec"), namespace)
    assert buffer.getvalue() == expected


def test_deepcopy_of_the_programs_own_objects():
    out = run("""
        import copy, collections
        class Node:
            def __init__(self, name, children):
                self.name = name
                self.children = children
        class Rows(list):
            pass
        tree = Node('root', [Node('leaf', [])])
        twin = copy.deepcopy(tree)
        twin.children[0].name = 'changed'
        rows = Rows([[1], [2]])
        rows.label = 'r'
        rows2 = copy.deepcopy(rows)
        rows2[0].append(5)
        Pair = collections.namedtuple('Pair', 'a b')
        print(tree.children[0].name, twin.children[0].name, isinstance(twin, Node))
        print(rows, rows2, rows2.label, isinstance(rows2, Rows), copy.deepcopy(Pair([1], 2)))
        shallow = copy.copy(tree)
        print(shallow.children is tree.children, shallow is not tree)
    """)
    assert out == "leaf changed True\n[[1], [2]] [[1, 5], [2]] r True Pair(a=[1], b=2)\nTrue True\n"


# --- csv and io -----------------------------------------------------------------------------

CSV_TEXT = 'name,qty,note\nbolt,3,"steel, zinc"\nnut,10,"a ""quoted"" word"\n'


def test_csv_reads_quoted_fields_from_data_chunks():
    session = Session(data=(CSV_TEXT,))
    out = session.run("""
        import csv, io
        rows = list(csv.DictReader(io.StringIO(data[0])))
        total = sum(int(r['qty']) for r in rows)
        plain = list(csv.reader(data[0].splitlines()))
        print(total, rows[0]['note'], rows[1]['note'], plain[0])
    """)
    expected_rows = list(csv.DictReader(io.StringIO(CSV_TEXT)))
    assert out == f"13 {expected_rows[0]['note']} {expected_rows[1]['note']} ['name', 'qty', 'note']\n"


def test_csv_writers_write_to_a_string_io():
    out = run("""
        import csv, io
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(['a', 'b, c', 'say "hi"'])
        out = io.StringIO()
        dict_writer = csv.DictWriter(out, fieldnames=['x', 'y'])
        dict_writer.writeheader()
        dict_writer.writerows([{'x': 1, 'y': 2}])
        print(repr(buffer.getvalue()), repr(out.getvalue()))
    """)
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["a", "b, c", 'say "hi"'])
    assert out == f"{buffer.getvalue()!r} 'x,y\\r\\n1,2\\r\\n'\n"


# --- decimal, fractions, operator -----------------------------------------------------------


def test_decimal_with_its_context_as_in_cpython():
    out = run("""
        from decimal import Decimal, getcontext, localcontext, ROUND_HALF_UP, InvalidOperation
        getcontext().prec = 6
        a = Decimal(1) / Decimal(7)
        with localcontext() as ctx:
            ctx.prec = 3
            b = Decimal(2).sqrt()
        getcontext().traps[InvalidOperation] = False
        print(a, b, Decimal('2.675').quantize(Decimal('0.01'), rounding=ROUND_HALF_UP), Decimal('x'))
        getcontext().prec = 28
        getcontext().traps[InvalidOperation] = True
    """)
    assert out == "0.142857 1.41 2.68 NaN\n"
    assert decimal.getcontext().prec == 28


def test_fractions_and_operator():
    out = run("""
        from fractions import Fraction
        import operator
        from functools import reduce
        class Item:
            def __init__(self, name, price):
                self.name = name
                self.price = price
        items = [Item('b', 2), Item('a', 1)]
        by_price = sorted(items, key=operator.attrgetter('price'))
        print(Fraction(1, 3) + Fraction('1/6'), Fraction(0.75).limit_denominator(10))
        print([i.name for i in by_price], reduce(operator.mul, [1, 2, 3, 4]))
        print(operator.itemgetter(1, 0)(['x', 'y']), operator.methodcaller('split', ',')('a,b'))
        print(operator.attrgetter('name', 'price')(items[0]), sorted([(2, 'b'), (1, 'a')], key=operator.itemgetter(0)))
    """)
    assert out == "1/2 3/4\n['a', 'b'] 24\n('y', 'x') ['a', 'b']\n('b', 2) [(1, 'a'), (2, 'b')]\n"


def test_attrgetter_follows_dotted_names():
    out = run("""
        import operator
        class A:
            pass
        a = A()
        a.b = A()
        a.b.c = 5
        print(operator.attrgetter('b.c')(a), operator.attrgetter('real')(3))
    """)
    assert out == "5 3\n"


# --- difflib, enum, unicodedata, hashlib, base64 ---------------------------------------------


def test_difflib_as_in_cpython():
    out = run("""
        import difflib
        print(difflib.get_close_matches('appel', ['ape', 'apple', 'peach']))
        print(round(difflib.SequenceMatcher(None, 'abcd', 'bcde').ratio(), 3))
        print(''.join(difflib.unified_diff(['a\\n', 'b\\n'], ['a\\n', 'c\\n'], 'old', 'new')))
    """)
    diff = "".join(difflib.unified_diff(["a\n", "b\n"], ["a\n", "c\n"], "old", "new"))
    assert out == f"['apple', 'ape']\n0.75\n{diff}\n"


def test_enum_classes_as_models_write_them():
    out = run("""
        from enum import Enum, IntEnum, auto, Flag, unique
        @unique
        class Color(Enum):
            RED = 'r'
            GREEN = 'g'
            def describe(self):
                return self.name.lower()
        class Level(IntEnum):
            LOW = auto()
            HIGH = auto()
        class Perm(Flag):
            R = auto()
            W = auto()
        print(Color.RED, Color('g'), Color['RED'].value, [c.describe() for c in Color], len(Color))
        print(Level.HIGH > Level.LOW, Level.HIGH + 1, Perm.R | Perm.W in Perm.R | Perm.W, Color.RED is Color.RED)
    """)
    assert out == "Color.RED Color.GREEN r ['red', 'green'] 2\nTrue 3 True True\n"


def test_enum_members_cannot_be_reassigned():
    with pytest.raises(AttributeError, match="reassign"):
        run("from enum import Enum\nclass C(Enum):\n    A = 1\nC.A = 2")


def test_unicodedata_hashlib_base64():
    out = run("""
        import unicodedata, hashlib, base64
        text = 'Café ①'
        print(unicodedata.normalize('NFKD', text).encode('ascii', 'ignore'), unicodedata.name('é'),
              unicodedata.category('A'), unicodedata.numeric('①'))
        print(hashlib.sha256(b'abc').hexdigest(), hashlib.md5('x'.encode()).hexdigest(),
              hashlib.new('SHA1', b'a').hexdigest(), hashlib.blake2b(b'a', digest_size=4).hexdigest())
        h = hashlib.sha1()
        h.update(b'a')
        h.update(b'b')
        print(h.hexdigest() == hashlib.sha1(b'ab').hexdigest(), h.name, h.digest_size)
        print(base64.b64encode(b'hello'), base64.b64decode('aGVsbG8='), base64.urlsafe_b64encode(b'\\xfb\\xff'))
    """)
    assert out == (
        f"{unicodedata.normalize('NFKD', 'Café ①').encode('ascii', 'ignore')} "
        f"{unicodedata.name('é')} Lu 1.0\n"
        f"{hashlib.sha256(b'abc').hexdigest()} {hashlib.md5(b'x').hexdigest()} "
        f"{hashlib.sha1(b'a').hexdigest()} {hashlib.blake2b(b'a', digest_size=4).hexdigest()}\n"
        f"True sha1 20\n"
        f"{base64.b64encode(b'hello')} b'hello' {base64.urlsafe_b64encode(bytes([251, 255]))}\n"
    )


def test_hashlib_new_takes_only_the_guaranteed_algorithms():
    with pytest.raises(ValueError, match=r"hashlib.new\(\) takes one of blake2b"):
        run("import hashlib\nhashlib.new('md4')")


# --- in a real child, locked down ------------------------------------------------------------

CHILD_PROGRAM = """
import random, hashlib, unicodedata, base64, csv, io, decimal, fractions, difflib, enum, typing, copy, operator
print(random.random())
print(hashlib.sha3_256(b'x').hexdigest()[:12], hashlib.shake_128(b'x').hexdigest(4), unicodedata.lookup('BULLET'))
print(list(csv.DictReader(io.StringIO(data[0]))), decimal.Decimal(1) / 3, fractions.Fraction(3, 6))
class Kind(enum.Enum):
    A = 1
print(Kind.A, copy.deepcopy({'a': [1]}), difflib.get_close_matches('ab', ['abc']), base64.b85encode(b'x'))
"""


async def test_modules_work_in_a_locked_down_child_and_the_seed_repeats_the_draws():
    data = ("a,b\n1,2\n",)
    async with Sandbox(data=data, limits=limits(), seed=2024) as sandbox:
        first = await sandbox.execute(CHILD_PROGRAM)
        second = await sandbox.execute("import random\nprint(random.random())")
    assert first.status == "ok", first.error
    random.seed(2024)
    lines = first.output.splitlines()
    assert lines[0] == str(random.random())
    assert second.output == f"{random.random()}\n"
    assert lines[1] == f"{hashlib.sha3_256(b'x').hexdigest()[:12]} {hashlib.shake_128(b'x').hexdigest(4)} \u2022"
    assert lines[3] == f"Kind.A {{'a': [1]}} ['abc'] {base64.b85encode(b'x')}"
    async with Sandbox(data=data, limits=limits(), seed=2024) as sandbox:
        again = await sandbox.execute(CHILD_PROGRAM)
    assert again.output == first.output


async def test_every_sandbox_gets_a_seed_of_its_own_and_reports_it():
    events: list[dict[str, object]] = []
    async with Sandbox(limits=limits(), on_event=events.append) as one:
        a = await one.execute("import random\nprint(random.getrandbits(64))")
    async with Sandbox(limits=limits()) as two:
        b = await two.execute("import random\nprint(random.getrandbits(64))")
    assert a.output != b.output
    (start,) = [e for e in events if e["type"] == "sandbox.start"]
    seed = start["seed"]
    assert isinstance(seed, int)
    async with Sandbox(limits=limits(), seed=seed) as replay:
        assert (await replay.execute("import random\nprint(random.getrandbits(64))")).output == a.output


async def test_a_restarted_child_starts_again_from_the_session_seed():
    async with Sandbox(limits=limits(sandbox_cpu_seconds=1), seed=5) as sandbox:
        before = await sandbox.execute("import random\nprint(random.random())")
        crashed = await sandbox.execute("while True:\n    pass")
        after = await sandbox.execute("import random\nprint(random.random())")
    assert crashed.restarted
    assert after.output == before.output


def test_nothing_here_reads_a_file():
    # csv and hashlib take text and bytes, never a path: neither module's proxy serves a name
    # that opens one.
    from ptcrun.sandbox.child._modules import _PROXIES

    served = {f"{m}.{n}" for m, proxy in _PROXIES.items() for n in proxy._members}
    assert not {"hashlib.file_digest", "csv.field_size_limit", "io.open", "io.FileIO", "io.open_code"} & served


# --- dataclasses ----------------------------------------------------------------------------

DATACLASS_PROGRAMS = {
    "defaults_factories_and_post_init": """
        from dataclasses import dataclass, field, fields, asdict, astuple, replace, is_dataclass
        from typing import ClassVar, Dict, List
        @dataclass
        class Item:
            name: str
            price: float = 0.0
            tags: List[str] = field(default_factory=list)
            seen: ClassVar[int] = 0
            cache: Dict[str, int] = field(default_factory=dict, repr=False, compare=False)
        @dataclass
        class Order:
            items: List[Item]
            total: float = field(init=False, default=0.0)
            def __post_init__(self):
                self.total = sum(i.price for i in self.items)
        a = Item('a', 2.5)
        a.tags.append('x')
        order = Order([a, Item('b', 1.0)])
        print(a, a == Item('a', 2.5, ['x']), a == Item('a', 2.5), Item('z') != a)
        print(order, [f.name for f in fields(order)], is_dataclass(order), is_dataclass(Order), is_dataclass(1))
        print(asdict(order), astuple(a), replace(a, price=9.0), Item.seen)
        done(asdict(order))
    """,
    "frozen_order_hash_and_inheritance": """
        from dataclasses import dataclass, FrozenInstanceError
        @dataclass(frozen=True, order=True)
        class Point:
            x: int
            y: int = 0
        @dataclass(frozen=True)
        class Point3(Point):
            z: int = 0
        @dataclass(unsafe_hash=True)
        class Key:
            k: str
        @dataclass
        class Plain:
            v: int
        p = Point(1, 2)
        print(p, Point3(1, 2, 3), p < Point(2), sorted([Point(3), Point(1, 1)]), len({p, Point(1, 2)}))
        print(hash(Key('a')) == hash(Key('a')), Plain.__hash__ is None)
        try:
            p.x = 5
        except FrozenInstanceError as e:
            print('frozen:', e)
        try:
            Point()
        except TypeError as e:
            print(e)
        try:
            Point(1, 2, 3)
        except TypeError as e:
            print(e)
        try:
            Point(1, q=2)
        except TypeError as e:
            print(e)
        done(repr(p))
    """,
    "keyword_only_and_decorator_forms": """
        import dataclasses
        @dataclasses.dataclass(kw_only=True)
        class Options:
            depth: int = 1
            name: str
        @dataclasses.dataclass(repr=False, eq=False)
        class Bare:
            v: int
        @dataclasses.dataclass
        class Tree:
            label: str
            children: list = dataclasses.field(default_factory=list)
        o = Options(name='n')
        t = Tree('root', [Tree('leaf')])
        t.children.append(t)
        print(o, Bare(1) == Bare(1), t)
        try:
            Options()
        except TypeError as e:
            print(e)
        try:
            @dataclasses.dataclass
            class Wrong:
                items: list = []
        except ValueError as e:
            print(e)
        try:
            @dataclasses.dataclass
            class Order:
                a: int = 1
                b: int
        except TypeError as e:
            print(e)
        done(str(o))
    """,
}


@pytest.mark.parametrize("source", DATACLASS_PROGRAMS.values(), ids=DATACLASS_PROGRAMS.keys())
def test_dataclasses_do_what_cpython_does(source: str) -> None:
    outcome = check(Case(source))
    assert outcome.status == "done", outcome


def test_copy_of_a_programs_list_and_dict_subclasses_runs_their_own_methods_as_cpython_does():
    outcome = check(Case("""
        import copy
        class Log(list):
            def append(self, item):
                print('append', item)
                super().append(item)
        class Index(dict):
            def __setitem__(self, key, value):
                print('set', key)
                super().__setitem__(key, value)
        log = Log()
        log.append(1)
        index = Index()
        index['a'] = [1]
        print(copy.deepcopy(log), copy.copy(index), copy.deepcopy(index)['a'] is not index['a'])
        done(len(log))
    """))
    assert outcome.output.count("append 1") == 2 and outcome.status == "done"


@pytest.mark.parametrize("source", DATACLASS_PROGRAMS.values(), ids=DATACLASS_PROGRAMS.keys())
def test_dataclasses_do_what_cpython_does_in_a_real_child(source: str) -> None:
    outcome = check_in_child(Case(source))
    assert outcome.status == "done", outcome


@pytest.mark.parametrize("seed", [-1, 2**63, True, 1.5, "7"])
def test_a_seed_that_cannot_cross_as_json_is_refused(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed must be a whole number from 0 to 2\\*\\*63 - 1"):
        Sandbox(seed=seed)  # type: ignore[arg-type]
    assert Sandbox(seed=2**63 - 1).seed == 2**63 - 1
