"""Pairwise questions in the style of OOLONG-Pairs: which pairs of users of the support inbox
(``_inbox``) both wrote about a topic, about one and not another, or in the same month; the
answers grow with the square of the users.
"""

from __future__ import annotations

import itertools
import random
from string import Template
from typing import Any

from ._inbox import LABELS, Inbox, label_all, make_case, user_pairs
from ._task import Case, Task

__all__ = ["TASKS"]


_PAIRS_SCHEMA = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
}
_PAIRS_TAIL = (
    "Answer with a list of pairs `[ID, ID]`, the smaller ID first, each pair once, in any order."
)


def _planted_pairs(r: random.Random, want: set[tuple[str, str]], users: list[str]) -> tuple[Any, ...]:
    """Wrong answers: the true pairs less one, and the true pairs and one more."""
    ordered = [list(p) for p in sorted(want)]
    wrong = [ordered[1:]] if ordered else []
    extra = next((p for p in itertools.combinations(sorted(users), 2) if p not in want), None)
    if extra is not None:
        wrong.append([*ordered, list(extra)])
    return tuple(wrong)


def _both(seed: int, size: int) -> Case:
    def build(r: random.Random, box: Inbox) -> Any:
        label = r.choice(LABELS)
        want = user_pairs(box.users_with(label))
        program = label_all() + Template('''
users = sorted({m["user"] for m in messages if m["label"] == $label})
pairs = [[a, b] for i, a in enumerate(users) for b in users[i + 1:]]
print(len(users), "users,", len(pairs), "pairs")
done(pairs)''').substitute(label=repr(label))
        goal = f"List every pair of users who both sent at least one message about {label}. " + _PAIRS_TAIL
        users = sorted({m.user for m in box.messages})
        return goal, _PAIRS_SCHEMA, program, want, _planted_pairs(r, want, users)

    return make_case("pairs-both", seed, size, build, pairs=True)


def _exclusive(seed: int, size: int) -> Case:
    def build(r: random.Random, box: Inbox) -> Any:
        # Two topics whose answer is not empty, when some are: an empty answer asks too little.
        choices = list(itertools.permutations(LABELS, 2))
        r.shuffle(choices)
        for label, other in choices:
            users = box.users_with(label) - box.users_with(other)
            if len(users) >= 2:
                break
        want = user_pairs(users)
        program = label_all() + Template('''
has = {}
for m in messages:
    has.setdefault(m["user"], set()).add(m["label"])
users = sorted(u for u, topics in has.items() if $label in topics and $other not in topics)
done([[a, b] for i, a in enumerate(users) for b in users[i + 1:]])''').substitute(
            label=repr(label), other=repr(other)
        )
        goal = (f"List every pair of users who both sent at least one message about {label} and "
                f"neither of whom sent any message about {other}. " + _PAIRS_TAIL)
        everyone = sorted({m.user for m in box.messages})
        return goal, _PAIRS_SCHEMA, program, want, _planted_pairs(r, want, everyone)

    return make_case("pairs-exclusive", seed, size, build, pairs=True)


def _same_month_pairs(box: Inbox, label: str) -> set[tuple[str, str]]:
    months: dict[str, set[str]] = {}
    for m in box.messages:
        if m.label == label:
            months.setdefault(m.date[:7], set()).add(m.user)
    return set().union(*(user_pairs(users) for users in months.values())) if months else set()


_SAME_MONTH = Template('''
months = {}
for m in messages:
    if m["label"] == $label:
        months.setdefault(m["date"][:7], set()).add(m["user"])
pairs = set()
for users in months.values():
    users = sorted(users)
    pairs.update((a, b) for i, a in enumerate(users) for b in users[i + 1:])
print(len(pairs), "pairs over", len(months), "months")
''')


def _same_month(seed: int, size: int) -> Case:
    def build(r: random.Random, box: Inbox) -> Any:
        label = max(r.sample(LABELS, len(LABELS)), key=lambda t: bool(_same_month_pairs(box, t)))
        want = _same_month_pairs(box, label)
        program = label_all() + _SAME_MONTH.substitute(label=repr(label))
        program += "done(sorted([a, b] for a, b in pairs))"
        goal = (f"List every pair of users who both sent a message about {label} in the same calendar "
                "month. " + _PAIRS_TAIL)
        everyone = sorted({m.user for m in box.messages})
        return goal, _PAIRS_SCHEMA, program, want, _planted_pairs(r, want, everyone)

    return make_case("pairs-same-month", seed, size, build, pairs=True)


def _pair_count(seed: int, size: int) -> Case:
    def build(r: random.Random, box: Inbox) -> Any:
        label = r.choice(LABELS)
        n = len(_same_month_pairs(box, label))
        program = label_all() + _SAME_MONTH.substitute(label=repr(label)) + "done(len(pairs))"
        goal = (f"How many pairs of users both sent a message about {label} in the same calendar month? "
                "Count each pair of two different users once. Answer with an integer.")
        return goal, {"type": "integer"}, program, n, (n + 1, len(user_pairs(box.users_with(label))) + 1)

    return make_case("pairs-count", seed, size, build)


_PAIRS = "OOLONG-Pairs (RLM paper): questions over pairs of users, quadratic in the items"
TASKS = (
    Task("pairs-both", "pairs", "every pair of users who both wrote about a topic", _PAIRS, _both),
    Task("pairs-exclusive", "pairs", "pairs who both wrote about X and neither about Y", _PAIRS, _exclusive),
    Task("pairs-same-month", "pairs", "pairs who wrote about a topic in the same month", _PAIRS, _same_month),
    Task("pairs-count", "pairs", "how many such pairs there are", _PAIRS, _pair_count),
)
