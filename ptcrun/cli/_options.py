"""What ``run`` and ``exec`` build from the same settings: the ``Limits``, and providers with
their request settings and prices.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

import attrs

from .._limits import Limits
from ._settings import LIMIT_FLAGS, PROVIDER_FLAGS

if TYPE_CHECKING:
    from ..runtime.providers._base import Provider

__all__ = ["build_limits", "build_provider", "price_names", "unused_prices"]

#: The clocks from the outermost in: each must fit inside the one before it.
_CLOCKS = ("run_timeout", "turn_timeout", "pmap_timeout", "call_timeout")


def build_limits(args: argparse.Namespace, base: Limits | None = None) -> Limits:
    """``base`` (the defaults, or a recorded run's limits) with the limits the settings give.

    A clock given shorter than an inner clock's value (``--turn-timeout 60``, with pmaps allowed
    300 s) lowers the inner clocks that were not given, rather than be refused.
    """
    base = base if base is not None else Limits()
    given: dict[str, Any] = {f: getattr(args, f) for f in LIMIT_FLAGS if getattr(args, f, None) is not None}
    outer = math.inf
    for clock in _CLOCKS:
        if clock not in given and getattr(base, clock) > outer:
            given[clock] = outer
        outer = given.get(clock, getattr(base, clock))
    return attrs.evolve(base, **given)


def price_names(spec: str, provider: Provider) -> list[str]:
    """The names a price may be given under for this provider, most exact first: the provider
    string as written, without its ``@URL``, its name (``openai:llama3``, ``scripted:p.json``),
    and the model alone in each (``llama3``, ``p.json``)."""
    full = [spec, spec.split("@http", 1)[0], provider.name]
    names = [*full, *(name.partition(":")[2] for name in full), str(getattr(provider, "model", "") or "")]
    return [name for name in dict.fromkeys(names) if name]


def build_provider(spec: str, args: argparse.Namespace) -> Provider:
    """The provider ``spec`` names, with the request settings and a price the settings give."""
    from ..runtime.providers._base import Price
    from ..runtime.providers._spec import parse_provider

    provider = parse_provider(spec, **{name: getattr(args, name, None) for name in PROVIDER_FLAGS})
    prices: dict[str, tuple[float, float]] = getattr(args, "prices", None) or {}
    names = set(price_names(spec, provider))
    # The prices come lowest source first, so the last that names this provider wins; a price
    # the user gives wins over the known-models table, as prices change.
    for model, pair in reversed(prices.items()):
        if model in names:
            provider.price = Price(*pair)
            break
    return provider


def unused_prices(args: argparse.Namespace, named: list[tuple[str, Provider]]) -> list[str]:
    """The ``--price`` entries (flags only: a config file may price many models) that match
    none of these providers, so a typo in a model name does not pass silently."""
    matched = {name for spec, provider in named for name in price_names(spec, provider)}
    return [entry for entry in args.price or () if entry.partition("=")[0].strip() not in matched]
