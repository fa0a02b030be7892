"""Known models: context windows and list prices, so costs can be reported without setup.

This is a small convenience table, not a source of truth: prices change. A provider given
``price=`` or ``context_window=`` uses those instead, and a model missing here gets no price
(costs are not reported) and the provider's default context window. To correct or extend the
table for a whole program, assign to ``KNOWN_MODELS[name]`` before building providers.
"""

from __future__ import annotations

import re

import attrs

from ._base import Price

__all__ = ["KNOWN_MODELS", "ModelInfo", "lookup_model"]


@attrs.frozen
class ModelInfo:
    """What the runtime needs to know about a model ahead of a call."""

    #: Tokens the model accepts, input and output together.
    context_window: int
    price: Price | None = None


def _claude(input: float, output: float) -> ModelInfo:
    # Anthropic prices cache reads at 0.1x input and 5-minute cache writes at 1.25x input.
    return ModelInfo(
        context_window=200_000,
        price=Price(
            input,
            output,
            cache_read_per_mtok=round(input * 0.1, 6),
            cache_write_per_mtok=round(input * 1.25, 6),
        ),
    )


#: Standard (not batch) Anthropic API list prices in USD per million tokens, with the default
#: 200k-token context window. Names are the API aliases; dated ids resolve to them.
KNOWN_MODELS: dict[str, ModelInfo] = {
    "claude-opus-4-6": _claude(5.0, 25.0),
    "claude-opus-4-5": _claude(5.0, 25.0),
    "claude-opus-4-1": _claude(15.0, 75.0),
    "claude-sonnet-4-6": _claude(3.0, 15.0),
    "claude-sonnet-4-5": _claude(3.0, 15.0),
    "claude-haiku-4-5": _claude(1.0, 5.0),
}

_DATE_SUFFIX = re.compile(r"-\d{8}$")


def lookup_model(model: str) -> ModelInfo | None:
    """The table's entry for ``model`` (a dated id such as ``claude-haiku-4-5-20251001`` finds
    its alias), or ``None``."""
    return KNOWN_MODELS.get(model) or KNOWN_MODELS.get(_DATE_SUFFIX.sub("", model))
