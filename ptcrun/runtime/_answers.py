"""Check a ``done()`` answer against the user's output schema: a JSON Schema or a Python type."""

from __future__ import annotations

from typing import Any

import attrs
import jsonschema

from .. import _hints
from ..errors import ConfigError

__all__ = ["AnswerCheck"]


@attrs.frozen
class AnswerCheck:
    """How answers are checked. ``schema`` is the JSON Schema shown to the planner, if any."""

    schema: dict[str, Any] | None = None
    hint: Any = None

    @classmethod
    def build(cls, schema: Any) -> AnswerCheck:
        """Accept ``None``, a JSON Schema dict, or a type hint such as ``list[str]``.

        Raises:
            ConfigError: the schema is not a valid JSON Schema, or the type is one no JSON
                answer could match.
        """
        if schema is None:
            return cls()
        if isinstance(schema, dict):
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ConfigError(f"schema is not a valid JSON Schema: {exc.message}") from None
            return cls(schema=schema)
        bad = _hints.unsupported(schema)
        if bad is not None:
            raise ConfigError(
                f"schema {_hints.type_name(schema)} cannot be checked: {_hints.type_name(bad)} is not a "
                "JSON type. Use str, int, float, bool, None, list[...], dict[str, ...], Literal[...] "
                "or a JSON Schema dict."
            )
        return cls(schema={"description": f"a value of Python type {_hints.type_name(schema)}"}, hint=schema)

    def problem(self, answer: Any) -> str | None:
        """What is wrong with ``answer``, or ``None`` when it matches."""
        if self.hint is not None:
            try:
                _hints.coerce(answer, self.hint, "answer")
            except _hints.Mismatch as exc:
                return f"{exc.path} is {exc.value!r}, which is not {_hints.type_name(self.hint)}"
            return None
        if self.schema is None:
            return None
        try:
            jsonschema.validate(answer, self.schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
            return f"{where}: {exc.message}"
        return None
