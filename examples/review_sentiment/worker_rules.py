"""The offline worker of the review example: sentiment from a word list, as a model would answer.

It stands in for the small model behind ``tool.worker`` when the example runs offline: it reads
the review out of the worker prompt, counts positive and negative words (a "not" or "n't" just
before a word turns it around) and answers with the JSON the program's schema asks for:
``{"sentiment": ..., "reason": ...}``.

Also usable as ``--worker scripted:examples/review_sentiment/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

POSITIVE = frozenset({
    "excellent", "great", "love", "loved", "amazing", "fantastic", "perfect", "perfectly", "happy",
    "best", "recommend", "comfortable", "sturdy", "solid", "joy", "bright",
})
NEGATIVE = frozenset({
    "disappointed", "disappointing", "terrible", "waste", "broke", "broken", "stopped", "poor",
    "flimsy", "grainy", "sags", "returned", "worst", "useless", "refund",
})
_WORD = re.compile(r"[a-z']+")
_NUMBER = re.compile(r"Review (\d+)\b")


def classify(text: str) -> dict[str, str]:
    """Sentiment of one review by word list: more positive words than negative is positive."""
    words = _WORD.findall(text.lower())
    positive, negative = [], []
    for i, word in enumerate(words):
        flipped = i > 0 and (words[i - 1] == "not" or words[i - 1].endswith("n't"))
        if word in POSITIVE:
            (negative if flipped else positive).append(word)
        elif word in NEGATIVE:
            (positive if flipped else negative).append(word)
    if len(positive) > len(negative):
        return {"sentiment": "positive", "reason": f"praise: {', '.join(positive)}"}
    if len(negative) > len(positive):
        return {"sentiment": "negative", "reason": f"complaints: {', '.join(negative)}"}
    return {"sentiment": "neutral", "reason": "factual, neither praise nor complaint"}


def respond(request: Any) -> str:
    """Answer one worker request of the review example."""
    text = read_worker_prompt(request).text
    number = _NUMBER.match(text.strip())
    return json.dumps({"review": int(number.group(1)) if number else 0, **classify(text)})
