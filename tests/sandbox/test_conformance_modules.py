"""Programs in the styles models write, using the modules of the second wave, run in the sandbox
and in plain CPython with the same tools and ``data``: same output, same answer, same calls.

A few run in a real child as well, where the lock-down and the tripwire are on.
"""

from __future__ import annotations

import pytest

from tests.sandbox.conformance import Case, check, check_in_child

CSV_DATA = (
    "region,product,units,price\nnorth,bolt,12,0.25\nsouth,nut,30,0.10\n",
    'region,product,units,price\nnorth,"washer, steel",5,1.50\neast,bolt,7,0.25\n',
)


def classify(text: str) -> str:
    return "long" if len(text) > 8 else "short"


CASES = {
    "random_sample_of_chunks": Case("""
        import random
        random.seed(42)
        sample = random.sample(data, 2)
        labels = [tool.classify(chunk) for chunk in sample]
        rng = random.Random(7)
        order = list(range(len(data)))
        rng.shuffle(order)
        print(labels, order, round(random.uniform(0, 1), 6))
        done({"labels": labels, "first": order[0]})
    """, tools={"classify": classify}),
    "csv_totals_from_chunks": Case("""
        import csv, io
        from collections import defaultdict
        from decimal import Decimal
        totals = defaultdict(Decimal)
        for chunk in data:
            for row in csv.DictReader(io.StringIO(chunk)):
                totals[row['region']] += Decimal(row['units']) * Decimal(row['price'])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(['region', 'revenue'])
        for region in sorted(totals):
            writer.writerow([region, totals[region]])
        print(out.getvalue())
        done({region: str(value) for region, value in totals.items()})
    """, data=CSV_DATA),
    "dataclass_records": Case("""
        from __future__ import annotations
        from dataclasses import dataclass, field, asdict
        from typing import List, Optional

        @dataclass
        class Finding:
            chunk: int
            label: str
            score: float = 0.0
            notes: List[str] = field(default_factory=list)

        @dataclass(frozen=True, order=True)
        class Rank:
            score: float
            chunk: int

        findings: List[Finding] = []
        for i, chunk in enumerate(data):
            f = Finding(i, tool.classify(chunk), score=len(chunk) / 10)
            if 'beta' in chunk:
                f.notes.append('mentions beta')
            findings.append(f)
        best: Optional[Finding] = max(findings, key=lambda f: f.score)
        ranks = sorted(Rank(f.score, f.chunk) for f in findings)
        print(findings[0], best == findings[best.chunk], ranks[0], Rank(1.0, 2) < Rank(1.0, 3))
        done([asdict(f) for f in findings])
    """, tools={"classify": classify}),
    "typed_helpers_and_enums": Case("""
        from enum import Enum, auto
        from typing import Dict, Iterable, Tuple, TypeVar, Callable
        import operator
        T = TypeVar('T')

        class Size(Enum):
            SHORT = auto()
            LONG = auto()

        def size_of(text: str) -> Size:
            return Size.LONG if len(text) > 8 else Size.SHORT

        def count_by(items: Iterable[T], key: Callable[[T], str]) -> Dict[str, int]:
            counts: Dict[str, int] = {}
            for item in items:
                counts[key(item)] = counts.get(key(item), 0) + 1
            return counts

        pairs: Tuple[Tuple[str, int], ...] = tuple(sorted(count_by(data, lambda c: size_of(c).name).items(), key=operator.itemgetter(1)))
        Level = Enum('Level', 'LOW HIGH')
        print(pairs, Size.LONG.value, [s.name for s in Size], list(Level), Level(2))
        done(dict(pairs))
    """),
    "fuzzy_matching_and_hashes": Case("""
        import difflib, hashlib, base64, unicodedata
        wanted = ['alpha', 'gama', 'delta beta']
        matches = {w: difflib.get_close_matches(w, data, n=1, cutoff=0.3) for w in wanted}
        digests = [hashlib.sha256(c.encode()).hexdigest()[:10] for c in data]
        token = base64.b64encode(data[0].encode()).decode()
        plain = unicodedata.normalize('NFKD', 'Caf\\u00e9').encode('ascii', 'ignore').decode()
        print(matches, digests, token, plain)
        done({'digests': digests, 'token': token})
    """),
    "copies_and_fractions": Case("""
        import copy
        from fractions import Fraction
        class Tally:
            def __init__(self):
                self.counts = {}
            def add(self, key):
                self.counts[key] = self.counts.get(key, 0) + 1
        base = Tally()
        for chunk in data:
            for word in chunk.split():
                base.add(word)
        snapshot = copy.deepcopy(base)
        base.add('alpha')
        share = Fraction(snapshot.counts['beta'], sum(snapshot.counts.values()))
        print(snapshot.counts['alpha'], base.counts['alpha'], share, float(share))
        done(str(share))
    """),
    "class_names_members_ordering_and_annotations": Case("""
        from __future__ import annotations
        import enum, functools, dataclasses
        from typing import Dict, List, Optional

        class Level(enum.Enum):
            LOW = 1
            HIGH = 2

        @functools.total_ordering
        class Version:
            def __init__(self, text: str) -> None:
                self.parts = tuple(int(p) for p in text.split('.'))
            def __eq__(self, other: object) -> bool:
                return isinstance(other, Version) and self.parts == other.parts
            def __lt__(self, other: 'Version') -> bool:
                return self.parts < other.parts

        @dataclasses.dataclass
        class Report:
            words: List[str]
            counts: Dict[str, int] = dataclasses.field(default_factory=dict)
            level: Optional[Level] = None

        errors = []
        for attempt in (lambda: data[99], lambda: {}['k'], lambda: int('x')):
            try:
                attempt()
            except Exception as e:
                errors.append(f"{e.__class__.__name__}/{type(e).__name__}")
        print(errors, list(Level.__members__), Level.__members__['HIGH'].value)
        print(Version('1.10') > Version('1.9'), Version('2.0') >= Version('2.0'),
              max([Version('0.1'), Version('0.10')]).parts)
        print([f.type for f in dataclasses.fields(Report)], data[0].__class__.__name__)
        done(errors)
    """),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_module_programs_do_what_cpython_does(case: Case) -> None:
    outcome = check(case)
    assert outcome.status == "done", outcome  # both sides ran the program to its end


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_module_programs_do_what_cpython_does_in_a_real_child(case: Case) -> None:
    # Where the tripwire is armed: a module that raised an audit event would fail here only.
    assert check_in_child(case).status == "done"
