"""The offline stand-in for a worker model: read what a worker call asked, answer by rule.

Each task has a rule-based worker that does its job as a capable small model would, from the
same prompt the runtime sends a real one (``prompts/worker_request.md``): the instruction, the
text between ``<text>`` tags, and the JSON Schema when the program gave one. It answers in the
shape the schema asks for, so a reference program may phrase its request as a planner would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from ..runtime.providers._base import Request

__all__ = ["Prompt", "read_prompt", "rule_worker", "shaped"]

_SCHEMA_MARK = "matches this JSON Schema:\n"


@attrs.frozen
class Prompt:
    """What one worker call asked: its instruction, its text and its JSON Schema (or None)."""

    instruction: str
    text: str
    schema: Any


def read_prompt(request: Request) -> Prompt:
    """Take a worker request apart. A repair request (after a reply that did not parse) comes as
    a later message and repeats nothing, so the first message is the one read."""
    prompt = request.messages[0].content
    head, _, rest = prompt.partition("\n<text>\n")
    end = rest.rfind("\n</text>")
    text = rest[:end] if end >= 0 else rest
    instruction = head.removeprefix("## Instruction\n\n")
    schema = None
    if _SCHEMA_MARK in instruction:
        instruction, _, schema_text = instruction.partition(_SCHEMA_MARK)
        instruction = instruction[: instruction.rfind("\n\n")]
        try:
            schema = json.loads(schema_text.strip().removesuffix("## Text").strip())
        except json.JSONDecodeError:
            schema = None
    instruction = instruction.removesuffix("## Text").strip()
    return Prompt(instruction=instruction, text=text, schema=schema)


def shaped(value: Any, schema: Any) -> str:
    """``value`` as JSON text, wrapped in an object when the schema asks for one with a single
    required property (``{"codes": [...]}``) and the value is not already that object."""
    if isinstance(schema, dict) and schema.get("type") == "object" and not isinstance(value, dict):
        required = schema.get("required") or list(schema.get("properties", {}))
        if required:
            value = {required[0]: value}
    return json.dumps(value)


def rule_worker(answer: Callable[[Prompt], Any]) -> Callable[[Request], str]:
    """A ``ScriptedProvider`` function from ``answer(prompt)``, whose value is sent as JSON in the
    shape the call's schema asks for; a ``str`` from ``answer`` is sent as it is."""

    def respond(request: Request) -> str:
        prompt = read_prompt(request)
        value = answer(prompt)
        return value if isinstance(value, str) else shaped(value, prompt.schema)

    return respond
