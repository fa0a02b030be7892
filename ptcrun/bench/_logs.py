"""The log audit (the first seed job): list every incident of an application log.

Ordinary records include some that look alarming and are not incidents (wrong passwords at
WARN, slow queries, declined cards at ERROR). Incidents of five kinds are planted, some with
stack traces; chunks overlap by a few lines, so an incident near a cut shows in two chunks and
must be counted once. The rule-based worker reports incident records by their wording.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from string import Template
from typing import Any

from ._programs import fan_out
from ._task import Case, Score, Task, expect, when_done
from ._text import fill, pack, rng
from ._worker import rule_worker

__all__ = ["KINDS", "TASKS"]

KINDS = ("oom", "db_timeout", "auth_failure", "disk_full", "segfault")
_USERS = ("a.khan", "b.ortiz", "c.nguyen", "d.mueller", "e.rossi", "f.dubois", "g.tanaka")
_OVERLAP_LINES = 4


def _ordinary(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.4:
        return f"INFO [api-gateway] GET /v1/orders/{r.randint(100, 9999)} 200 {r.randint(3, 240)}ms"
    if roll < 0.55:
        return f"DEBUG [cache] hit key=product:{r.randint(100, 9999)}"
    if roll < 0.7:
        return f"INFO [auth-service] login ok user={r.choice(_USERS)}"
    if roll < 0.78:
        return f"WARN [auth-service] login failed for user={r.choice(_USERS)}: wrong password"
    if roll < 0.86:
        return f"WARN [db-pool] slow query {r.randint(1001, 4000)}ms on orders_by_customer"
    if roll < 0.92:
        return f"INFO [storage] disk usage {r.randint(41, 88)}% on /var/lib/data"
    code, order = r.choice((51, 54, 61)), r.randint(10000, 99999)
    return f"ERROR [payments] card declined (code {code}) for order {order}"


def _incident(r: random.Random, kind: str) -> list[str]:
    if kind == "oom":
        return ["ERROR [order-service] java.lang.OutOfMemoryError: Java heap space",
                "    at com.shop.orders.Cache.load(Cache.java:118)",
                "    at com.shop.orders.Service.list(Service.java:52)"]
    if kind == "db_timeout":
        return [f"ERROR [db-pool] database connection timeout after 30000ms (db-{r.randint(1, 4)})"]
    if kind == "auth_failure":
        return [f"CRITICAL [auth-service] authentication failed for service account svc-{r.randint(1, 9)}"]
    if kind == "disk_full":
        return ["FATAL [storage] write failed: No space left on device (/var/lib/data)"]
    return ["FATAL [render-worker] Segmentation fault (signal 11)",
            "    #0 0x00007f3a in png_write_row () from libpng16.so",
            "    #1 0x00007f3b in render_thumbnail () from librender.so"]


_RECORD = re.compile(r"^\s*(\d+)\| \S+ (ERROR|CRITICAL|FATAL) \[[\w-]+\] (.*)$", re.MULTILINE)
_KIND_RULES = (
    ("oom", re.compile("OutOfMemoryError")),
    ("db_timeout", re.compile("database connection timeout")),
    ("auth_failure", re.compile("authentication failed")),
    ("disk_full", re.compile("No space left on device")),
    ("segfault", re.compile("Segmentation fault")),
)


def find_incidents(text: str) -> list[dict[str, Any]]:
    """Every incident record in ``text``: its line number and kind."""
    found = []
    for m in _RECORD.finditer(text):
        kind = next((k for k, rule in _KIND_RULES if rule.search(m.group(3))), None)
        if kind is not None:
            found.append({"line": int(m.group(1)), "kind": kind})
    return found


WORKER = rule_worker(lambda prompt: find_incidents(prompt.text))


def _log(r: random.Random, size: int) -> tuple[list[str], list[tuple[int, str]]]:
    """Numbered log lines until ``size`` tokens, and the planted incidents (first line, kind)."""
    incidents: list[tuple[int, str]] = []
    pending: list[str] = []
    clock = [8 * 3600.0]

    def line(i: int) -> str:
        clock[0] += r.uniform(0.05, 2.0)
        seconds = clock[0]
        hours, minutes = int(seconds // 3600) % 24, int(seconds // 60) % 60
        stamp = f"2024-05-14T{hours:02d}:{minutes:02d}:{seconds % 60:06.3f}Z"
        if pending:
            text = pending.pop(0)
            return f"{i + 1:>6}| {text}\n"
        if i > 2 and r.random() < 0.02:
            kind = r.choice(KINDS)
            first, *rest = _incident(r, kind)
            pending.extend(rest)
            incidents.append((i + 1, kind))
            return f"{i + 1:>6}| {stamp} {first}\n"
        return f"{i + 1:>6}| {stamp} {_ordinary(r)}\n"

    lines = fill(size, line, least=60)
    while pending:
        lines.append(line(len(lines)))
    if not incidents:  # a tiny log still has something to find
        lines += [f"{len(lines) + 1:>6}| 2024-05-14T23:59:59.000Z {_incident(r, 'disk_full')[0]}\n"]
        incidents.append((len(lines), "disk_full"))
    return lines, incidents


def _overlapping(lines: list[str]) -> list[str]:
    """Chunks that repeat the last lines of the chunk before, as ``chunk_by_tokens`` with an
    overlap does: an incident there shows in both."""
    chunks = pack(lines)
    out = [chunks[0]]
    for before, chunk in itertools.pairwise(chunks):
        out.append("".join(before.splitlines(keepends=True)[-_OVERLAP_LINES:]) + chunk)
    return out


_GOAL = (
    "Audit the application log in `data` and list every incident. Each line starts with its line "
    "number and `| `. An incident is a record at level ERROR, CRITICAL or FATAL of one of these "
    "kinds: oom (java.lang.OutOfMemoryError), db_timeout (database connection timeout), "
    "auth_failure (authentication failed), disk_full (No space left on device), segfault "
    "(Segmentation fault). Other errors, such as declined cards, are not incidents, nor are stack "
    "trace lines. Neighbouring chunks share a few lines: count an incident once. "
)

_AUDIT_TEMPLATE = Template('''SCHEMA = {
    "type": "object",
    "properties": {"incidents": {"type": "array", "items": {
        "type": "object",
        "properties": {"line": {"type": "integer"}, "kind": {"type": "string", "enum": $kinds}},
        "required": ["line", "kind"],
    }}},
    "required": ["incidents"],
}
INSTRUCTION = (
    "Find the incidents in these log lines. Each line starts with its line number and '| '. "
    "An incident is a record at level ERROR, CRITICAL or FATAL of one of these kinds: oom "
    "(java.lang.OutOfMemoryError), db_timeout (database connection timeout), auth_failure "
    "(authentication failed), disk_full (No space left on device), segfault (Segmentation "
    "fault). Declined cards are not incidents; stack-trace lines are not incidents of their "
    "own. Give each incident's line number and kind."
)


def audit(chunk):
    return tool.worker(chunk, INSTRUCTION, schema=SCHEMA, max_tokens=800)


$fan_out
by_line = {}
for report in reports:
    if isinstance(report, Failure):
        fail("a chunk could not be audited: " + report.message)
    for incident in report["incidents"]:
        by_line.setdefault(incident["line"], incident)
incidents = [{"line": n, "kind": by_line[n]["kind"]} for n in sorted(by_line)]
print(len(incidents), "incidents")
''')
_AUDIT = _AUDIT_TEMPLATE.substitute(kinds=repr(list(KINDS)), fan_out=fan_out("reports", "audit", "data"))


def _audit(seed: int, size: int) -> Case:
    r = rng("log-audit", seed, size)
    lines, truth = _log(r, size)
    want = sorted(truth)

    @when_done
    def check(answer: Any) -> Score:
        items = answer.get("incidents") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            return Score(False, 0.0, "the answer has no list of incidents")
        got = [(i.get("line"), i.get("kind")) for i in items if isinstance(i, dict)]
        found = len(set(got) & set(want))
        recall = found / len(want)
        precision = found / len(got) if got else 0.0
        if sorted(got) == want:
            return Score(True, 1.0)
        f1 = 0.0 if found == 0 else 2 * recall * precision / (recall + precision)
        detail = f"recall {recall:.2f}, precision {precision:.2f} ({len(got)} reported, {len(want)} planted)"
        return Score(False, round(f1, 4), detail)

    planted = [{"line": n, "kind": k} for n, k in want]
    return Case(
        goal=_GOAL + "Answer with an object: `incidents`, a list of `{\"line\": int, \"kind\": str}`, one "
        "per incident at the line number of its first line, ordered by line.",
        data=_overlapping(lines),
        schema={"type": "object", "required": ["incidents"]},
        check=check,
        reference=(_AUDIT + 'done({"incidents": incidents})',),
        worker=WORKER,
        wrong=(
            ("done", {"incidents": planted[1:]}),
            ("done", {"incidents": planted + planted[:1]}),  # one counted twice
        ),
        truth=planted,
    )


def _by_kind(seed: int, size: int) -> Case:
    r = rng("log-by-kind", seed, size)
    lines, truth = _log(r, size)
    counts = dict.fromkeys(KINDS, 0) | dict(Counter(k for _, k in truth))
    schema = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in KINDS},
        "required": list(KINDS),
        "additionalProperties": False,
    }
    wrong = dict(counts)
    wrong[truth[0][1]] += 1
    program = _AUDIT + \
        f"done({{kind: sum(i['kind'] == kind for i in incidents) for kind in {list(KINDS)!r}}})"
    return Case(
        goal=_GOAL + "Answer with the number of incidents of each kind: an object from kind to count, "
        "every kind included.",
        data=_overlapping(lines),
        schema=schema,
        check=expect(counts, "counts"),
        reference=(program,),
        worker=WORKER,
        wrong=(("done", wrong),),
        truth=counts,
    )


_SEED = "seed 000: the parallel log audit (PtcRunner's map-reduce example)"
TASKS = (
    Task("log-audit", "seed", "list every incident of a log once, across overlapping chunks", _SEED, _audit),
    Task("log-by-kind", "seed", "count a log's incidents by kind", _SEED, _by_kind),
)
