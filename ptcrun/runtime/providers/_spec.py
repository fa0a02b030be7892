"""Provider strings, as the command line and config files name a model."""

from __future__ import annotations

from ...errors import ConfigError
from ._base import Provider

__all__ = ["parse_provider"]

FORMS = (
    "anthropic:MODEL (e.g. anthropic:claude-haiku-4-5), "
    "openai:MODEL or openai:MODEL@BASE_URL (e.g. openai:llama3@http://localhost:11434/v1), "
    "scripted:FILE (a .json list of replies or a .py file defining respond(request))"
)


def parse_provider(spec: str, *, base_url: str | None = None) -> Provider:
    """Build the provider a string names.

    Accepted forms: ``anthropic:MODEL``, ``openai:MODEL``, ``openai:MODEL@BASE_URL`` and
    ``scripted:FILE``. ``base_url`` points an ``anthropic:`` or ``openai:`` provider at
    another server; it may not be given twice (in the string and as the argument).

    Raises:
        ConfigError: the string has none of these forms, or the provider refused its
            settings (a missing API key, a missing script file).
    """
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if not sep or not rest:
        raise ConfigError(f"provider {spec!r} is not understood; use one of: {FORMS}.")
    if kind == "anthropic":
        from ._anthropic import AnthropicProvider

        return AnthropicProvider(rest, base_url=base_url)
    if kind == "openai":
        from ._openai_compat import OpenAICompatProvider

        # Split at the URL, not the first "@": some model names contain one.
        at = rest.find("@http")
        model, url = (rest[:at], rest[at + 1 :]) if at >= 0 else (rest, None)
        if not model:
            raise ConfigError(f"provider {spec!r} names no model; use one of: {FORMS}.")
        if url is not None and base_url is not None:
            raise ConfigError(
                f"provider {spec!r} gives a base URL and base_url={base_url!r} gives another; "
                f"give one."
            )
        url = url or base_url
        if url is None:
            return OpenAICompatProvider(model)
        return OpenAICompatProvider(model, base_url=url)
    if kind == "scripted":
        from ._scripted import ScriptedProvider

        if base_url is not None:
            raise ConfigError(f"provider {spec!r} is scripted and takes no base_url.")
        return ScriptedProvider.from_file(rest)
    raise ConfigError(f"provider kind {kind!r} in {spec!r} is not known; use one of: {FORMS}.")
