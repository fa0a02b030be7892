"""An ensemble of specialists (the third seed job): four reviewers read one pull request at once.

The pull request (one chunk, numbered lines) has problems planted for each specialist: security
(a secret in source, SQL built by concatenation), performance (a query in a loop, a sleep on the
request path), reliability (a swallowed exception, a request with no timeout) and tests (code
changed with no test). The planner runs the four specialists in parallel (``pcalls``) and
combines their findings into a verdict.
"""

from __future__ import annotations

import random
from typing import Any

from ._task import Case, Score, Task, when_done
from ._text import rng
from ._worker import Prompt, rule_worker

__all__ = ["TASKS"]

SPECIALISTS = ("security", "performance", "reliability", "tests")
#: What each specialist finds: (severity, the added line's text), one of each is planted.
_PROBLEMS: dict[str, tuple[tuple[str, str], ...]] = {
    "security": (
        ("high", 'API_KEY = "sk-live-{hex}"'),
        ("high", 'cursor.execute("SELECT * FROM orders WHERE id = " + order_id)'),
    ),
    "performance": (
        ("medium", "    customer = db.query(Customer).get(order.customer_id)  # one query per order"),
        ("medium", "    time.sleep(2)  # wait for the cache to warm up"),
    ),
    "reliability": (
        ("medium", "except Exception:  # ignore failures of the mailer"),
        ("medium", "reply = requests.get(PRICING_URL)"),
    ),
}
_BENIGN = (
    "def total(order):", "    return sum(item.price * item.quantity for item in order.items)",
    "logger = logging.getLogger(__name__)", "MAX_ITEMS = 50", "    if not order.items:",
    "        return 0", "def describe(order):", '    return f"order {order.id}: {len(order.items)} items"',
    "for order in orders:", "    pass", "import logging", "import time", "import requests",
)


def _pull_request(r: random.Random) -> tuple[str, dict[str, list[int]], str]:
    """The numbered diff, the planted lines by specialist, and the right verdict."""
    planted: dict[str, tuple[str, str]] = {}
    for name, options in _PROBLEMS.items():
        if name != "security" or r.random() < 0.6:
            planted[name] = r.choice(options)
    body = [f"+{r.choice(_BENIGN)}" for _ in range(r.randint(24, 34))]
    where: dict[str, list[int]] = {name: [] for name in SPECIALISTS}
    header = ["Title: orders: list orders with their customers and prices",
              "Description: adds the order listing used by the new dashboard.",
              "diff --git a/app/orders.py b/app/orders.py", "--- a/app/orders.py", "+++ b/app/orders.py",
              "@@ -1,3 +1,40 @@"]
    slots = sorted(r.sample(range(2, len(body)), len(planted)))
    for slot, (name, (_, text)) in zip(slots, sorted(planted.items()), strict=True):
        body[slot] = "+" + text.format(hex=f"{r.getrandbits(48):012x}")
        where[name].append(len(header) + slot + 1)
    lines = header + body
    where["tests"] = [3]  # app/orders.py changes and no test file does
    verdict = "request_changes" if any(sev == "high" for sev, _ in planted.values()) else "comment"
    text = "".join(f"{n:>4}| {line}\n" for n, line in enumerate(lines, 1))
    return text, where, verdict


def _worker(prompt: Prompt) -> Any:
    # The specialist is the one the instruction names first ("You review for security...").
    ask = prompt.instruction.lower()
    stems = {"security": "secur", "performance": "perform", "reliability": "reliab", "tests": "test"}
    named = [(ask.find(stem), name) for name, stem in stems.items() if stem in ask]
    name = min(named)[1] if named else None
    findings = []
    for line in prompt.text.splitlines():
        number, _, code = line.partition("| ")
        for specialist, options in _PROBLEMS.items():
            for severity, text in options:
                stem = text.split("{")[0]
                if specialist == name and code.startswith("+") and stem in code:
                    issue = f"{specialist}: {stem.strip()}"
                    findings.append({"line": int(number), "severity": severity, "issue": issue})
        untested = "diff --git a/tests/" not in prompt.text
        if name == "tests" and code.startswith("diff --git a/app/") and untested:
            findings.append({"line": int(number), "severity": "low", "issue": "no test covers this change"})
    return {"findings": findings}


WORKER = rule_worker(_worker)

_REFERENCE = '''FINDINGS = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "line": {"type": "integer"},
            "severity": {"type": "string", "enum": ["high", "medium", "low"]},
            "issue": {"type": "string"},
        },
        "required": ["line", "severity", "issue"],
    }}},
    "required": ["findings"],
}
COMMON = (
    " Each line starts with its number and '| '. Report only real problems, each with its line "
    "number, a severity (high, medium, low) and the issue in one sentence. With none, answer "
    '{"findings": []}.'
)
SPECIALISTS = {
    "security": "security: review this pull request for secrets in source, injection, "
    "missing access checks." + COMMON,
    "performance": "performance: review this pull request for queries in loops, needless "
    "waits, unbounded memory." + COMMON,
    "reliability": "reliability: review this pull request for swallowed errors, missing "
    "timeouts, unhandled failures." + COMMON,
    "tests": "tests: review whether this pull request adds tests for the code it changes; "
    "point at the changed file's diff line." + COMMON,
}
pr = data[0]
names = list(SPECIALISTS)


def reviewer(name):
    return lambda: tool.worker(pr, SPECIALISTS[name], schema=FINDINGS, max_tokens=700)


reviews = pcalls(*[reviewer(n) for n in names])
findings = {}
for name, review in zip(names, reviews):
    if isinstance(review, Failure):
        fail(f"the {name} reviewer failed: {review.message}")
    findings[name] = review["findings"]
    print(name, [f["line"] for f in review["findings"]])
severities = [f["severity"] for fs in findings.values() for f in fs]
verdict = "request_changes" if "high" in severities else ("comment" if severities else "approve")
done({"verdict": verdict, "findings": findings})
'''

_MAX_EXTRA = 2


def _case(seed: int, size: int) -> Case:
    r = rng("ensemble-review", seed, 0)
    text, where, verdict = _pull_request(r)

    @when_done
    def check(answer: Any) -> Score:
        if not isinstance(answer, dict) or not isinstance(answer.get("findings"), dict):
            return Score(False, 0.0, "the answer has no findings by specialist")
        found = missed = 0
        problems = []
        for name in SPECIALISTS:
            items = answer["findings"].get(name) or []
            lines = {f.get("line") if isinstance(f, dict) else f for f in items}
            # The missing test may be pointed at any line of the changed file's diff header.
            accepted = {n: {3, 4, 5, 6} if name == "tests" else {n} for n in where[name]}
            unmatched = [n for n, ok in accepted.items() if not lines & ok]
            found += len(where[name]) - len(unmatched)
            missed += len(unmatched)
            if unmatched:
                problems.append(f"{name} missed line {unmatched}")
            extra = lines - set().union(*accepted.values()) if accepted else lines
            if len(extra) > _MAX_EXTRA:
                problems.append(f"{name} reported {len(extra)} lines with no problem")
        if answer.get("verdict") != verdict:
            problems.append(f"verdict {answer.get('verdict')!r}, expected {verdict!r}")
        if not problems:
            return Score(True, 1.0)
        share = 0.8 * found / (found + missed) + 0.2 * (answer.get("verdict") == verdict)
        return Score(False, round(0.99 * share, 4), "; ".join(problems))

    every = list(range(1, len(text.splitlines()) + 1))
    planted = {
        name: [{"line": n, "severity": "high", "issue": "planted"} for n in where[name]]
        for name in SPECIALISTS
    }
    missing = {**planted, "reliability": []}
    wrong_verdict = "approve" if verdict != "approve" else "comment"
    return Case(
        goal="Review the pull request in `data` (one chunk: title, description and diff; each line starts "
        "with its number and `| `) with four specialist reviewers working in parallel on the same text: "
        "security, performance, reliability (error handling, timeouts) and tests (is the change tested?). "
        "Then combine their findings. Answer with an object: `verdict` (`approve`, `comment` or "
        "`request_changes`: a security problem is of high severity and requests changes, any other "
        "problem is of medium or low severity and asks for a comment), and `findings` (specialist name "
        'to a list of `{"line": int, "severity": "high" | "medium" | "low", "issue": str}`).',
        data=[text],
        schema={"type": "object", "required": ["verdict", "findings"]},
        check=check,
        reference=(_REFERENCE,),
        worker=WORKER,
        wrong=(
            ("done", {"verdict": verdict, "findings": missing}),
            ("done", {"verdict": wrong_verdict, "findings": planted}),
            ("done", {"verdict": verdict, "findings": dict.fromkeys(SPECIALISTS, every)}),
        ),
        truth={"verdict": verdict, "lines": where},
    )


TASKS = (
    Task(
        "ensemble-review", "seed", "four specialists review one pull request in parallel, then a verdict",
        "seed 002: an ensemble of agents in parallel (asyncio.gather over specialists)", _case, scales=False,
    ),
)
