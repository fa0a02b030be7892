# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Four specialists read the same diff at the same time (pcalls), then one synthesis call turns
# their findings into a single review. A specialist that fails is reported, not fatal.
import json

FINDINGS = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "severity": {"type": "string", "enum": ["high", "medium", "low"]},
                    "issue": {"type": "string"},
                },
                "required": ["line", "severity", "issue"],
            },
        }
    },
    "required": ["findings"],
}
COMMON = (
    " Each line starts with its line number and '| '. Report only real problems in the lines the "
    "diff adds, each with the line number, a severity (high, medium, low) and the issue in one "
    "sentence. With none, answer {\"findings\": []}."
)
SPECIALISTS = {
    "security": "You review code for security: injection, secrets in source, missing access checks." + COMMON,
    "performance": "You review code for performance: queries in loops, needless work, unbounded memory." + COMMON,
    "reliability": "You review code for reliability: swallowed errors, missing timeouts, unhandled failures." + COMMON,
    "tests": "You review code for tests: is the changed behaviour covered by tests in the diff? Point at the changed file." + COMMON,
}


def reviewer(name):
    return lambda: tool.worker(pr, SPECIALISTS[name], schema=FINDINGS, max_tokens=700)


names = list(SPECIALISTS)
reviews = pcalls(*[reviewer(name) for name in names])
findings = {}
failed = []
for name, review in zip(names, reviews, strict=True):
    if isinstance(review, Failure):
        failed.append(name)
        print(name, "failed:", review.message[:100])
    else:
        findings[name] = review["findings"]
        print(f"{name}: {len(review['findings'])} findings", [f["line"] for f in review["findings"]])

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["approve", "comment", "request_changes"]},
        "summary": {"type": "string"},
    },
    "required": ["verdict", "summary"],
}
review = tool.worker(
    json.dumps(findings),
    "Combine these code review findings (specialist name to findings) into one verdict: "
    "approve, comment or request_changes (any high-severity finding requests changes), and a "
    "summary of a few sentences that says what to fix first.",
    schema=VERDICT,
    max_tokens=500,
)
print("verdict:", review["verdict"], "-", review["summary"][:160])
done({"verdict": review["verdict"], "summary": review["summary"], "findings": findings, "failed": failed})
