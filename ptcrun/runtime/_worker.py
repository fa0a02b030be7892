"""``tool.worker``: one worker-LLM call on a piece of text, under the run's budget.

The worker answers in text, or in JSON checked against a JSON Schema the program gives. A reply
that is not valid JSON for the schema gets one repair request (the error is shown to the model);
a second failure is a ``ToolError`` the program can catch.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import jsonschema

from .. import errors
from .._json import JSON, MAX_DEPTH, NotJSON, to_json
from .._limits import Limits
from .._tools import Tool
from ..prompts._render import render
from ..sandbox.host._calls import current_call
from ._budget import Ledger
from ._cache import ReplyCache
from ._counts import WorkerCounts
from ._llm import Emit, budgeted_complete
from .providers._base import Message, Provider, Request
from .providers._ratelimit import Throttle

__all__ = [
    "check_worker_arguments",
    "make_worker_tool",
    "parse_json_reply",
    "read_answer",
    "regex_keyword",
    "worker_prompt",
    "worker_request",
]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def parse_json_reply(text: str) -> JSON:
    """Parse a model's JSON answer, tolerating a code fence around it; apply the one JSON rule.

    JSON text can hold what the rule refuses (``NaN``, ``Infinity``, integers too long to write,
    nesting deeper than ``MAX_DEPTH``), so the parsed value is converted like any value that
    crosses into the sandbox: the program, the transcript and a replay see the same answer.

    Raises:
        ValueError: the text holds no JSON value, or one the rule refuses (``NotJSON``).
    """
    match = _FENCE.match(text)
    body = match.group(1) if match else text.strip()
    try:
        value = _loads(body)
    except json.JSONDecodeError:
        # A sentence before or after the JSON: take the outermost object or array.
        starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
        if not starts:
            raise ValueError("the reply holds no JSON value") from None
        start = min(starts)
        end = max(body.rfind("}"), body.rfind("]"))
        try:
            value = _loads(body[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ValueError(f"the reply is not valid JSON: {exc.msg} at character {exc.pos}") from None
    return to_json(value, what="the worker's answer")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise NotJSON(
            "the worker's answer", "", f"nested deeper than {MAX_DEPTH} levels", "flatten it"
        ) from None


def _parse_int(digits: str) -> int:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        raise NotJSON(
            "a number in the worker's answer",
            "",
            f"an integer of more than {limit} digits",
            "write it as a string",
        )
    return int(digits)


#: Schema keywords whose values are regular expressions. A program chooses the worker's schema,
#: and a catastrophic pattern would run on the host's event loop, where no clock can stop it;
#: programs check patterns themselves with `re`, in the sandbox.
_REGEX_KEYWORDS = frozenset({"pattern", "patternProperties"})


def regex_keyword(schema: Any) -> str | None:
    """The first regex keyword anywhere in ``schema``, or None."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REGEX_KEYWORDS:
                    return str(key)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A checked validator per distinct schema: a fan-out sends the same schema hundreds of times,
    and checking the schema itself costs more than validating an answer."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _check(value: Any, validator: Any) -> str | None:
    """Return what is wrong with ``value`` under the schema, or None."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
    return f"{where}: {error.message}"


def check_worker_arguments(schema: Any, max_tokens: int | None, limits: Limits) -> tuple[int, Any]:
    """The output cap a worker request gets and the validator of its answer (``None`` without a
    schema), from a program's ``schema`` and ``max_tokens``.

    Raises:
        ToolArgumentError: ``max_tokens`` out of range, a schema with a regular expression or
            that is not a JSON Schema.
    """
    if max_tokens is None:
        max_tokens = limits.worker_max_tokens
    elif max_tokens < 1 or max_tokens > limits.worker_max_tokens:
        raise errors.ToolArgumentError(
            f"tool 'worker' got max_tokens={max_tokens}; it must be between 1 and "
            f"Limits.worker_max_tokens={limits.worker_max_tokens:,}. Raise worker_max_tokens.",
            tool="worker",
        )
    if schema is None:
        return max_tokens, None
    keyword = regex_keyword(schema)
    if keyword is not None:
        raise errors.ToolArgumentError(
            f"tool 'worker' does not take schemas with {keyword!r}: a regular expression "
            "would run on the host. Drop it, and check the text in your program with re.",
            tool="worker",
        )
    try:
        return max_tokens, _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError as exc:
        raise errors.ToolArgumentError(
            f"tool 'worker' got a schema that is not a valid JSON Schema: {exc.message}",
            tool="worker",
        ) from None


def read_answer(text: str, validator: Any) -> tuple[Any, str | None]:
    """``(answer, None)`` from a worker's reply text, or ``(None, what is wrong)`` when it does
    not hold JSON matching the schema; the text itself without a schema (``validator`` None)."""
    if validator is None:
        return text, None
    try:
        value = parse_json_reply(text)
        problem = _check(value, validator)
    except ValueError as exc:
        return None, str(exc)
    return (value, None) if problem is None else (None, problem)


def worker_prompt(text: str, instruction: str, schema: Any = None) -> str:
    """The user message of a worker call: ``instruction`` on ``text``, with the schema's note."""
    schema_note = render("worker_schema_note", schema=json.dumps(schema)) if schema is not None else ""
    return render("worker_request", instruction=instruction, text=text, schema_note=schema_note)


@functools.cache
def _worker_system() -> str:
    return render("worker_system")  # a template without values: the same text every call


def worker_request(messages: tuple[Message, ...], max_tokens: int) -> Request:
    """The request a worker call sends: the one rendering the call and its estimates share."""
    return Request(
        messages=messages,
        system=_worker_system(),
        max_tokens=max_tokens,
        purpose="worker",
        cache_system=True,
    )


def make_worker_tool(
    *,
    provider: Provider,
    ledger: Ledger,
    limits: Limits,
    emit: Emit,
    span_of_call: Callable[[dict[str, Any] | None], str],
    cache: ReplyCache | None = None,
    throttle: Throttle | None = None,
    counts: WorkerCounts | None = None,
) -> Tool:
    """Build the ``worker`` tool bound to one run's provider, ledger, transcript and cache.

    ``counts`` counts the first request of each call from its parts (the chunker's counts
    reused); without it the request is counted whole.

    The cache keeps the model's replies, not the tool's answers: the schema check and the repair
    request run again on a cached reply, so it means what a live one would.
    """

    async def worker(
        text: str,
        instruction: str,
        schema: dict | None = None,  # type: ignore[type-arg]  # the planner reads `dict`
        max_tokens: int | None = None,
    ) -> Any:
        """Ask the worker model to follow `instruction` on `text`; returns its answer.

        With `schema` (a JSON Schema), the answer is parsed JSON that matches it. `max_tokens`
        caps the answer's length (at most the run's worker_max_tokens).
        """
        max_tokens, validator = check_worker_arguments(schema, max_tokens, limits)
        messages = [Message("user", worker_prompt(text, instruction, schema))]
        call_span = span_of_call(current_call.get())
        for attempt in (1, 2):
            request = worker_request(tuple(messages), max_tokens)
            reply = await budgeted_complete(
                provider,
                request,
                ledger=ledger,
                role="worker",
                what="worker call",
                emit=emit,
                span=f"{call_span}.llm{attempt}",
                parent=call_span,
                cache=cache,
                throttle=throttle,
                input_tokens=counts.request(text, instruction, schema) if counts and attempt == 1 else None,
            )
            value, problem = read_answer(reply.text, validator)
            if problem is None:
                return value
            if attempt == 2:
                raise errors.ToolError(
                    f"tool 'worker' answered with JSON that does not match the schema, twice: {problem}",
                    tool="worker",
                )
            repair = render("worker_repair", problem=problem)
            messages += [Message("assistant", reply.text), Message("user", repair)]
        raise AssertionError("unreachable")

    return Tool.from_function(worker, name="worker")
