"""Write ``minutes.txt`` and ``ground_truth.json``: a year of meeting minutes of five teams.

Each team's minutes are one document of a dozen meetings. A meeting records decisions
(``DECISION: ...``), action items (``ACTION [open] Dana: ...`` or ``ACTION [done] ...``) and
discussion. The facts are drawn first, from a seeded generator, and the ground truth is written
from those facts, not read back from the text.

Usage::

    python examples/team_minutes/generate.py          # rewrites both files (seed 13)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEAMS = ("billing", "platform", "mobile", "search", "security")
PEOPLE = ("Ana", "Bo", "Chen", "Dana", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun")
TOPICS = ("the release train", "on-call load", "the Q3 roadmap", "flaky tests", "the vendor contract",
          "latency budgets", "the design review", "hiring", "the incident backlog", "docs debt")
VERBS = ("adopt", "drop", "postpone", "fund", "split", "merge", "freeze", "pilot")
TASKS = ("write the runbook", "file the ticket", "draft the RFC", "book the room", "update the dashboard",
         "ping legal", "rotate the keys", "benchmark the cache", "triage the bugs", "send the summary")
CHATTER = ("Discussion went long; no consensus on naming.", "Someone asked for more data first.",
           "The group reviewed last week's numbers.", "A demo was shown and well received.",
           "Concerns were raised about scope creep.", "The team agreed to revisit this later.")


def generate(seed: int = 13, meetings: int = 12) -> tuple[dict[str, list[str]], dict]:
    rng = random.Random(seed)
    documents: dict[str, list[str]] = {}
    truth: dict = {"decisions": {}, "open_actions": {}}
    for team in TEAMS:
        pages, decisions, open_actions = [], 0, []
        for number in range(1, meetings + 1):
            lines = [f"{team} team meeting {number}", f"Attendees: {', '.join(rng.sample(PEOPLE, 4))}"]
            for _ in range(rng.randint(2, 5)):
                roll = rng.random()
                if roll < 0.35:
                    decisions += 1
                    lines.append(f"DECISION: {rng.choice(VERBS)} {rng.choice(TOPICS)}.")
                elif roll < 0.7:
                    who, task = rng.choice(PEOPLE), rng.choice(TASKS)
                    status = "open" if rng.random() < 0.3 else "done"
                    lines.append(f"ACTION [{status}] {who}: {task} (m{number})")
                    if status == "open":
                        open_actions.append(f"{who}: {task} (m{number})")
                else:
                    lines.append(rng.choice(CHATTER))
            pages.append("\n".join(lines))
        documents[team] = pages
        truth["decisions"][team] = decisions
        truth["open_actions"][team] = sorted(open_actions)
    most = max(truth["decisions"].values())
    truth["most_decisions"] = sorted(t for t, n in truth["decisions"].items() if n == most)
    return documents, truth


def write(documents: dict[str, list[str]]) -> str:
    """One file: each team's document under a ``=== team ===`` line, meetings separated by
    blank lines."""
    return "".join(f"=== {team} ===\n" + "\n\n".join(pages) + "\n\n" for team, pages in documents.items())


def read(text: str) -> dict[str, list[str]]:
    """The documents of ``minutes.txt``, one chunk per meeting."""
    documents: dict[str, list[str]] = {}
    for block in text.split("=== ")[1:]:
        head, _, body = block.partition(" ===\n")
        documents[head] = [page.strip() for page in body.split("\n\n") if page.strip()]
    return documents


if __name__ == "__main__":
    docs, truth = generate()
    (HERE / "minutes.txt").write_text(write(docs), encoding="utf-8")
    (HERE / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    print({team: len(pages) for team, pages in docs.items()}, truth["most_decisions"])
