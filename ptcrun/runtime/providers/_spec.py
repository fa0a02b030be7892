"""Provider strings, as the command line and config files name a model."""

from __future__ import annotations

import re
from typing import Any

from ...errors import ConfigError
from ._base import Provider

__all__ = ["parse_provider"]

FORMS = (
    "anthropic:MODEL or anthropic:MODEL@BASE_URL (e.g. anthropic:claude-haiku-4-5), "
    "openai:MODEL or openai:MODEL@BASE_URL (e.g. openai:llama3@http://localhost:11434/v1), "
    "scripted:FILE (a .json list of replies or a .py file defining respond(request))"
)

#: What a base URL starts with: a scheme and "://".
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: What follows an "@" when it names a server without a scheme: localhost, a port, a path
#: after a dotted name, or an IP address. Model names ("team@llama3.1:8b") match none.
_HOST_LIKE = re.compile(r"@(localhost\b|[\w.-]+:\d+(/|$)|[\w.-]+\.[\w-]+/|[\d.]+$)")


def parse_provider(
    spec: str,
    *,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_retry_wait: float | None = None,
) -> Provider:
    """Build the provider a string names.

    Accepted forms: ``anthropic:MODEL``, ``anthropic:MODEL@BASE_URL``, ``openai:MODEL``,
    ``openai:MODEL@BASE_URL`` and ``scripted:FILE``. The base URL is what follows the "@" that
    starts an ``http://`` or ``https://`` URL, so model names may hold an "@" themselves. A
    string that names a URL of another scheme, or a host with no scheme, is refused rather
    than read as part of a model name: the request would otherwise go to the provider's
    default server (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, else the vendor's).

    ``base_url`` points an ``anthropic:`` or ``openai:`` provider at another server; it may not
    be given twice (in the string and as the argument). ``timeout``, ``max_retries`` and
    ``max_retry_wait``, when given, are passed to an HTTP provider and ignored by a scripted
    one, which neither waits nor retries.

    Raises:
        ConfigError: the string has none of these forms, or the provider refused its
            settings (a missing API key, a missing script file).
    """
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if not sep or not rest:
        raise ConfigError(f"provider {spec!r} is not understood; use one of: {FORMS}.")
    if kind == "scripted":
        from ._scripted import ScriptedProvider

        if base_url is not None:
            raise ConfigError(f"provider {spec!r} is scripted and takes no base_url.")
        return ScriptedProvider.from_file(rest)
    if kind not in ("anthropic", "openai"):
        raise ConfigError(f"provider kind {kind!r} in {spec!r} is not known; use one of: {FORMS}.")
    model, url = _split_url(spec, rest)
    if url is not None and base_url is not None:
        raise ConfigError(
            f"provider {spec!r} gives a base URL and base_url={base_url!r} gives another; give one."
        )
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("base_url", url or base_url),
            ("timeout", timeout),
            ("max_retries", max_retries),
            ("max_retry_wait", max_retry_wait),
        )
        if value is not None
    }
    if kind == "anthropic":
        from ._anthropic import AnthropicProvider

        return AnthropicProvider(model, **options)
    from ._openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(model, **options)


def _split_url(spec: str, rest: str) -> tuple[str, str | None]:
    """``(model, base URL or None)`` from what follows ``anthropic:`` or ``openai:``.

    The URL starts at the first "@" followed by a scheme, so an "@" in the model name or in
    the URL itself (``user@host``) stays where it belongs.
    """
    kind = spec.partition(":")[0].strip()
    at = next((i for i, c in enumerate(rest) if c == "@" and _SCHEME.match(rest, i + 1)), None)
    model, url = (rest[:at], rest[at + 1 :]) if at is not None else (rest, None)
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"provider {spec!r} names the base URL {url!r}, which is not http:// or https://; "
            f"give the server's http(s) URL, e.g. {kind}:{model or 'MODEL'}@http://127.0.0.1:8000/v1."
        )
    if url is None and _HOST_LIKE.search(rest):
        model, _, host = rest.rpartition("@")
        raise ConfigError(
            f"provider {spec!r} ends in {host!r}, which reads as a server with no http:// or "
            f"https://; write {kind}:{model}@http://{host}."
        )
    if not model:
        raise ConfigError(f"provider {spec!r} names no model; use one of: {FORMS}.")
    return model, url
