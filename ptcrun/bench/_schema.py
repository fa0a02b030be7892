"""Schema-checked answers: fields a worker must read and normalise, into a strict JSON Schema.

The run is given the answer's schema, so a ``done()`` answer that does not match is sent back to
the planner. Invoices come in three layouts (European and American number formats, dates in
words or digits) and must be normalised; staff notes say in many ways whether a person is on
leave, and the answer names every department with its headcount and the people on leave.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ._task import Case, Score, Task, expect, when_done
from ._text import fill, filler, pack, rng
from ._worker import Prompt, rule_worker

__all__ = ["TASKS"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_VENDORS = ("Acme GmbH", "Globex Ltd", "Initech Inc", "Umbrella SA", "Hooli LLC", "Vandelay Imports")
_SYMBOL = {"EUR": "€", "USD": "$", "GBP": "£"}


def _eu(amount: float) -> str:
    whole, cents = f"{amount:,.2f}".split(".")
    return f"{whole.replace(',', '.')},{cents}"


def _invoice(r: random.Random, number: str) -> tuple[str, dict[str, Any]]:
    vendor, currency = r.choice(_VENDORS), r.choice(tuple(_SYMBOL))
    total = round(r.uniform(20, 9000), 2)
    month, day = r.randint(1, 12), r.randint(1, 28)
    layout = r.randrange(3)
    if layout == 0:
        text = (f"Invoice {number} from {vendor}\nAmount due: {_eu(total)} {currency}\n"
                f"Payment due by {day} {_MONTHS[month - 1]} 2024\n")
    elif layout == 1:
        text = (f"{vendor}: bill no. {number}\nTotal: {_SYMBOL[currency]}{total:,.2f}\n"
                f"Due: {month:02d}/{day:02d}/2024\n")
    else:
        text = (f"Re: {number}\nDear customer, {vendor} asks you to pay {total:,.2f} {currency} before "
                f"{_MONTHS[month - 1]} {day}, 2024.\n")
    fields = {"invoice": number, "vendor": vendor, "total": total, "currency": currency,
              "due": f"2024-{month:02d}-{day:02d}"}
    return f"{text}{filler(r, 1)}\n\n", fields


_LAYOUTS = (
    re.compile(r"Invoice (?P<n>INV-\d+) from (?P<v>.+)\nAmount due: (?P<t>[\d.,]+) (?P<c>[A-Z]{3})\n"
               r"Payment due by (?P<d>\d+) (?P<m>[A-Z][a-z]+) 2024"),
    re.compile(r"(?P<v>.+): bill no\. (?P<n>INV-\d+)\nTotal: (?P<s>[€$£])(?P<t>[\d,.]+)\n"
               r"Due: (?P<mm>\d\d)/(?P<d>\d\d)/2024"),
    re.compile(r"Re: (?P<n>INV-\d+)\nDear customer, (?P<v>.+?) asks you to pay (?P<t>[\d,.]+) "
               r"(?P<c>[A-Z]{3}) before (?P<m>[A-Z][a-z]+) (?P<d>\d+), 2024"),
)


def read_invoices(text: str) -> list[dict[str, Any]]:
    """Every invoice in ``text``, normalised: what the rule-based worker answers."""
    found = []
    for index, layout in enumerate(_LAYOUTS):
        for m in layout.finditer(text):
            raw = m["t"]
            european = raw.replace(".", "").replace(",", ".")
            total = float(european) if index == 0 else float(raw.replace(",", ""))
            currency = m["c"] if index != 1 else next(c for c, s in _SYMBOL.items() if s == m["s"])
            month = int(m["mm"]) if index == 1 else _MONTHS.index(m["m"]) + 1
            found.append({"invoice": m["n"], "vendor": m["v"].strip(), "total": total, "currency": currency,
                          "due": f"2024-{month:02d}-{int(m['d']):02d}"})
    return found


_INVOICE_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "invoice": {"type": "string"},
            "vendor": {"type": "string"},
            "total": {"type": "number"},
            "currency": {"type": "string", "enum": list(_SYMBOL)},
            "due": {"type": "string"},
        },
        "required": ["invoice", "vendor", "total", "currency", "due"],
        "additionalProperties": False,
    },
}

_READ = '''SCHEMA = {"type": "object", "properties": {"invoices": $item_array}, "required": ["invoices"]}
INSTRUCTION = (
    "List every invoice in this text: its number (INV-...), the vendor, the total as a plain number "
    "(1.234,50 and 1,234.50 are both 1234.5), the currency as EUR, USD or GBP (a symbol € $ £ "
    "stands for one), and the due date as YYYY-MM-DD."
)
# Ten invoices per call, so that a worker's answer fits its reply.
pieces = []
for chunk in data:
    blocks = chunk.split("\\n\\n")
    pieces += ["\\n\\n".join(blocks[i:i + 10]) for i in range(0, len(blocks), 10)]
reports = pmap(lambda c: tool.worker(c, INSTRUCTION, schema=SCHEMA, max_tokens=1000), pieces)
if any(isinstance(r, Failure) for r in reports):
    fail("some chunks could not be read")
by_number = {}
for report in reports:
    for invoice in report["invoices"]:
        by_number[invoice["invoice"]] = invoice
invoices = [by_number[n] for n in sorted(by_number)]
print(len(invoices), "invoices")
done(invoices)
'''


def _invoices(seed: int, size: int) -> Case:
    r = rng("schema-invoices", seed, size)
    truth: list[dict[str, Any]] = []
    numbers = r.sample(range(1000, 100_000), 5000)

    def block(i: int) -> str:
        if i >= len(numbers):  # a very large corpus: the rest is correspondence with no invoice
            return f"{filler(r, 3)}\n\n"
        text, fields = _invoice(r, f"INV-{numbers[i]}")
        truth.append(fields)
        return text

    blocks = fill(size, block, least=6)
    truth.sort(key=lambda f: f["invoice"])
    program = _READ.replace("$item_array", repr(_INVOICE_SCHEMA))

    @when_done
    def check(answer: Any) -> Score:
        if not isinstance(answer, list):
            return Score(False, 0.0, "the answer is not a list")
        got = {a.get("invoice"): a for a in answer if isinstance(a, dict)}
        right = 0
        wrong = []
        for want in truth:
            have = got.get(want["invoice"])
            same = have is not None and all(
                abs(have[k] - want[k]) < 0.005 if k == "total" else have[k] == want[k] for k in want
            )
            right += same
            if not same:
                wrong.append(want["invoice"])
        if right == len(truth) and len(got) == len(truth):
            return Score(True, 1.0)
        extra = len(set(got) - {w["invoice"] for w in truth})
        return Score(False, round(right / (len(truth) + extra), 4),
                     f"{len(wrong)} invoices wrong or missing (e.g. {wrong[:3]}), {extra} not in the corpus")

    off = [dict(t) for t in truth]
    off[0]["total"] = round(off[0]["total"] * 100) / 10  # a misread decimal separator
    late = [dict(t) for t in truth]
    late[-1]["due"] = late[-1]["due"][:8] + "29"
    return Case(
        goal="`data` holds invoices in several layouts, among other correspondence. List every invoice, "
        "ordered by number, as objects: `invoice` (INV-...), `vendor`, `total` (a number: 1.234,50 and "
        "1,234.50 are both 1234.5), `currency` (EUR, USD or GBP; € $ £ stand for them) and "
        "`due` (YYYY-MM-DD).",
        data=pack(blocks),
        schema=_INVOICE_SCHEMA,
        check=check,
        reference=(program,),
        worker=rule_worker(lambda prompt: read_invoices(prompt.text)),
        wrong=(("done", off), ("done", late), ("done", truth[1:])),
        truth=truth,
    )


DEPARTMENTS = ("engineering", "sales", "support", "finance", "legal")
_AWAY = ("is away on parental leave until June", "is on a sabbatical this quarter",
         "is off sick for the rest of the month", "has been on leave since March")
_HERE = ("is back from parental leave", "returned from a sabbatical last week",
         "works from the Lisbon office", "joined the team in April",
         "said they would not take any leave this year")
_FIRST = ("Dana", "Ravi", "Mei", "Olu", "Sven", "Ines", "Tomas", "Aiko", "Leila", "Marco", "Nadia", "Piotr",
          "Rosa", "Sami", "Yara", "Zoe", "Hugo", "Ivy", "Jonas", "Kira")
_LAST = ("Ortiz", "Khan", "Novak", "Adeyemi", "Berg", "Costa", "Dvorak", "Endo", "Farah", "Greco", "Haas",
         "Ibsen", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn")
_STAFF = re.compile(
    r"^\[staff\] (?P<name>[A-Z]\w+ [A-Z]\w+) \((?P<dept>\w+)\) (?P<status>[^.]+)\.", re.MULTILINE
)


def _staff_worker(prompt: Prompt) -> Any:
    return [{"name": m["name"], "department": m["dept"], "on_leave": m["status"] in _AWAY}
            for m in _STAFF.finditer(prompt.text)]


def _departments(seed: int, size: int) -> Case:
    r = rng("schema-staff", seed, size)
    names = [f"{first} {last}" for first in _FIRST for last in _LAST]
    r.shuffle(names)
    people: list[tuple[str, str, bool]] = []

    def line(i: int) -> str:
        if i >= len(names):
            return f"[memo] {filler(r, 2)}\n"
        dept, away = r.choice(DEPARTMENTS), r.random() < 0.2
        people.append((names[i], dept, away))
        return f"[staff] {names[i]} ({dept}) {r.choice(_AWAY if away else _HERE)}. {filler(r, 1)}\n"

    lines = fill(size, line, least=12)
    truth = {d: {"headcount": sum(p[1] == d for p in people),
                 "on_leave": sorted(p[0] for p in people if p[1] == d and p[2])} for d in DEPARTMENTS}
    schema = {
        "type": "object",
        "properties": {d: {
            "type": "object",
            "properties": {
                "headcount": {"type": "integer"},
                "on_leave": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["headcount", "on_leave"],
            "additionalProperties": False,
        } for d in DEPARTMENTS},
        "required": list(DEPARTMENTS),
        "additionalProperties": False,
    }
    program = '''SCHEMA = {"type": "object", "properties": {"people": {"type": "array", "items": {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "department": {"type": "string"}, "on_leave": {"type": "boolean"},
    },
    "required": ["name", "department", "on_leave"],
}}}, "required": ["people"]}
INSTRUCTION = (
    "Each line that starts with '[staff]' is a note about one person: their name, their department "
    "in brackets, and what they are doing. For each, say whether the person is on leave now "
    "(parental leave, sabbatical, off sick; not when they are back)."
)
# Twenty notes per call, so that a worker's answer fits its reply.
pieces = []
for chunk in data:
    lines = chunk.splitlines(keepends=True)
    pieces += ["".join(lines[i:i + 20]) for i in range(0, len(lines), 20)]
reports = pmap(lambda c: tool.worker(c, INSTRUCTION, schema=SCHEMA, max_tokens=1000), pieces)
if any(isinstance(r, Failure) for r in reports):
    fail("some chunks could not be read")
people = {p["name"]: p for r in reports for p in r["people"]}
answer = {}
for dept in $departments:
    staff = [p for p in people.values() if p["department"] == dept]
    answer[dept] = {"headcount": len(staff), "on_leave": sorted(p["name"] for p in staff if p["on_leave"])}
done(answer)
'''.replace("$departments", repr(list(DEPARTMENTS)))
    wrong = {d: dict(v) for d, v in truth.items()}
    busiest = max(DEPARTMENTS, key=lambda d: sum(p[1] == d for p in people))
    # Everyone of the busiest department on leave: "back from leave" read as "on leave".
    wrong[busiest]["on_leave"] = sorted(p[0] for p in people if p[1] == busiest)
    return Case(
        goal="`data` holds staff notes: `[staff] Name (department) what they are doing.` Give, for every "
        f"department ({', '.join(DEPARTMENTS)}), its `headcount` and `on_leave` (the names of the people on "
        "leave now, sorted; someone back from leave is not on leave).",
        data=pack(lines),
        schema=schema,
        check=expect(truth),
        reference=(program,),
        worker=rule_worker(_staff_worker),
        wrong=(("done", wrong), ("done", {d: truth[d] for d in DEPARTMENTS[:-1]})),
        truth=truth,
    )


TASKS = (
    Task("schema-invoices", "schema", "normalise invoices in three layouts into a strict schema",
         "answers checked against a JSON Schema (run(..., schema=...))", _invoices),
    Task("schema-staff", "schema", "headcount and people on leave per department, every department present",
         "answers checked against a JSON Schema (run(..., schema=...))", _departments),
)
