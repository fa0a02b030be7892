"""Review sentiment (the second seed job): classify every product review, results in order.

Each chunk is one review. A review's words carry its sentiment (praise, complaints, or plain
facts for a neutral one) without naming it; the rule-based worker reads those words.
"""

from __future__ import annotations

import random
import re
from string import Template
from typing import Any

from ..corpus._tokens import count_tokens
from ._programs import fan_out
from ._task import Case, Score, Task, expect, when_done
from ._text import filler, rng
from ._worker import rule_worker

__all__ = ["TASKS"]

SENTIMENTS = ("positive", "negative", "neutral")
_PHRASES = {
    "positive": ("I am delighted with it", "it exceeded every expectation", "worth every penny",
                 "I would buy it again tomorrow", "my whole family loves it"),
    "negative": ("it broke within a week", "a complete waste of money", "I regret buying it",
                 "support never answered my emails", "it stopped working after two days"),
    "neutral": ("it arrived on the stated date", "it does what the box says", "the colour is as pictured",
                "it weighs about what I expected", "the manual is twelve pages long"),
}
_PRODUCTS = ("wireless earbuds", "coffee grinder", "hiking backpack", "desk chair", "smart bulb", "air fryer")
_RULES = tuple((s, re.compile(re.escape(p))) for s, phrases in _PHRASES.items() for p in phrases)


def sentiment_of(text: str) -> str:
    """A review's sentiment, by its phrases."""
    return next((s for s, rule in _RULES if rule.search(text)), "neutral")


def _reviews(r: random.Random, size: int) -> tuple[list[str], list[str]]:
    chunks: list[str] = []
    labels: list[str] = []
    total = 0
    while total < size or len(chunks) < 6:
        label = r.choice(SENTIMENTS)
        product = r.choice(_PRODUCTS)
        text = (f"Review {len(chunks) + 1}: {product}\n{filler(r, 1)} Honestly, {r.choice(_PHRASES[label])}. "
                f"{filler(r, 1)}\n")
        chunks.append(text)
        labels.append(label)
        total += count_tokens(text)
    return chunks, labels


WORKER = rule_worker(lambda prompt: {"sentiment": sentiment_of(prompt.text)})

_CLASSIFY = Template('''SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"],
}
INSTRUCTION = (
    "Classify the sentiment of this product review as positive, negative or neutral. "
    "A review that only states facts is neutral."
)


def classify(review):
    return tool.worker(review, INSTRUCTION, schema=SCHEMA, max_tokens=60)


$fan_out
if any(isinstance(v, Failure) for v in verdicts):
    fail("some reviews could not be classified")
sentiments = [v["sentiment"] for v in verdicts]
print(len(sentiments), "reviews classified")
''').substitute(fan_out=fan_out("verdicts", "classify", "data"))
_GOAL = (
    "Each chunk of `data` is one product review, starting with `Review N:` and the product. "
    "Classify each review's sentiment as positive, negative or neutral (a review that only states "
    "facts is neutral). "
)


def _in_order(seed: int, size: int) -> Case:
    r = rng("review-order", seed, size)
    chunks, labels = _reviews(r, size)
    swapped = list(labels)
    i = next(i for i in range(1, len(labels)) if labels[i] != labels[0])
    swapped[0], swapped[i] = swapped[i], swapped[0]

    @when_done
    def check(answer: Any) -> Score:
        if not isinstance(answer, list) or len(answer) != len(labels):
            return Score(False, 0.0, f"expected a list of {len(labels)} sentiments")
        right = sum(a == b for a, b in zip(answer, labels, strict=True))
        if right == len(labels):
            return Score(True, 1.0)
        return Score(False, round(right / len(labels), 4), f"{len(labels) - right} of {len(labels)} wrong")

    return Case(
        goal=_GOAL + "Answer with the list of sentiments, one per review, in the order of `data`.",
        data=chunks,
        schema={"type": "array", "items": {"type": "string", "enum": list(SENTIMENTS)}},
        check=check,
        reference=(_CLASSIFY + "done(sentiments)",),
        worker=WORKER,
        wrong=(("done", swapped), ("done", labels[:-1])),
        truth=labels,
    )


def _summary(seed: int, size: int) -> Case:
    r = rng("review-summary", seed, size)
    chunks, labels = _reviews(r, size)
    counts = {s: labels.count(s) for s in SENTIMENTS}
    wrong = dict(counts)
    wrong["positive"] += 1
    return Case(
        goal=_GOAL + "Answer with how many reviews have each sentiment: an object from sentiment to count, "
        "every sentiment included.",
        data=chunks,
        schema={
            "type": "object",
            "properties": {s: {"type": "integer"} for s in SENTIMENTS},
            "required": list(SENTIMENTS),
            "additionalProperties": False,
        },
        check=expect(counts, "counts"),
        reference=(_CLASSIFY + f"done({{s: sentiments.count(s) for s in {list(SENTIMENTS)!r}}})",),
        worker=WORKER,
        wrong=(("done", wrong),),
        truth=counts,
    )



_SEED = "seed 001: product review sentiment, in parallel, results in input order"
TASKS = (
    Task("review-order", "seed", "each review's sentiment, in the order of the reviews", _SEED, _in_order),
    Task("review-summary", "seed", "how many reviews have each sentiment", _SEED, _summary),
)
