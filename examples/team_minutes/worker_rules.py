"""The offline worker of the team minutes example: one meeting read by rule.

It stands in for the model behind ``tool.worker`` when the example runs offline: it counts the
``DECISION:`` lines of the meeting it is given and lists the open action items.

Also usable as ``--worker scripted:examples/team_minutes/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

_OPEN = re.compile(r"^ACTION \[open\] (?P<item>.+)$")


def respond(request: Any) -> str:
    text = read_worker_prompt(request).text
    lines = [line.strip() for line in text.splitlines()]
    decisions = sum(1 for line in lines if line.startswith("DECISION:"))
    open_actions = [m["item"] for line in lines if (m := _OPEN.match(line))]
    return json.dumps({"decisions": decisions, "open_actions": open_actions})
