# ruff: noqa: F821  (data, tool, pmap, done, ... are the sandbox's builtins)
# Classify every review in parallel, four at a time. pmap keeps the input order, and a review
# whose call fails leaves a Failure in its slot instead of stopping the others.
from collections import Counter

SCHEMA = {
    "type": "object",
    "properties": {
        "review": {"type": "integer"},
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "reason": {"type": "string"},
    },
    "required": ["review", "sentiment", "reason"],
}
INSTRUCTION = (
    "Classify the sentiment of this product review as positive, negative or neutral. "
    "A review that only states facts is neutral. Give the review's number and a short reason."
)


def classify(review):
    return tool.worker(review, INSTRUCTION, schema=SCHEMA, max_tokens=200)


verdicts = pmap(classify, data, concurrency=4)
results = []
errors = []
for number, verdict in enumerate(verdicts, 1):
    if isinstance(verdict, Failure):
        results.append({"review": number, "sentiment": None, "error": verdict.message})
        errors.append({"review": number, "kind": verdict.kind, "message": verdict.message})
    else:
        results.append({"review": number, "sentiment": verdict["sentiment"], "reason": verdict["reason"]})
counts = Counter(r["sentiment"] for r in results if r["sentiment"])
summary = {s: counts[s] for s in ("positive", "neutral", "negative")}
print("classified", len(data) - len(errors), "of", len(data), "- summary:", summary)
for e in errors:
    print("   review", e["review"], "failed:", e["kind"], e["message"][:100])
done({"results": results, "summary": summary, "errors": errors})
