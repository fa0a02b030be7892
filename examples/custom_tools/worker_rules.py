"""The offline worker of the custom-tools example: failed payments found by pattern.

It stands in for the model behind ``tool.worker`` when the example runs offline: it reads the
chunk of billing log out of the worker prompt and reports every failed payment as
``{"failures": [{"customer_id", "reason"}]}``. Retries, tickets and payments that went through
are not failures.

Also usable as ``--worker scripted:examples/custom_tools/worker_rules.py`` (no latency then).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import read_worker_prompt  # examples/ is not a package

_FAILED = re.compile(r"payment failed customer=(?P<customer>\d+)\b.*?\breason=(?P<reason>\w+)")


def respond(request: Any) -> str:
    """Answer one worker request of the example."""
    text = read_worker_prompt(request).text
    failures = [{"customer_id": m["customer"], "reason": m["reason"]} for m in _FAILED.finditer(text)]
    return json.dumps({"failures": failures})
