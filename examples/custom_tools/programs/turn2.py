# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Workers find the failed payments in each chunk; the database tells who the customers are.
from collections import Counter, defaultdict

FAILURES = {
    "type": "object",
    "properties": {
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["customer_id", "reason"],
            },
        }
    },
    "required": ["failures"],
}
reports = pmap(
    lambda chunk: tool.worker(
        chunk,
        "List every failed payment in this billing log, with the customer id and the reason. "
        "Retries, tickets and payments that went through are not failures.",
        schema=FAILURES,
        max_tokens=600,
    ),
    data,
)
counts = Counter()
reasons = defaultdict(set)
for report in reports:
    for failure in report["failures"]:
        counts[int(failure["customer_id"])] += 1
        reasons[int(failure["customer_id"])].add(failure["reason"])
ids = sorted(counts)
print(len(ids), "customers with failed payments:", dict(counts))

lookups = pmap(tool.lookup_customer, ids)
problems = [r for r in lookups if isinstance(r, Failure)]
print(len(problems), "of", len(ids), "lookups failed; first:", problems[0] if problems else None)
