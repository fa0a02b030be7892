"""Claude through the Anthropic Messages API, with our retry policy."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

import trio

from ...errors import ConfigError
from ._base import (
    AttemptFailed,
    PerRunClient,
    Price,
    Reply,
    Request,
    call_with_retries,
    check_retry_settings,
    is_retryable_status,
    retry_after_seconds,
)
from ._models import lookup_model

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicProvider"]

#: Context window assumed for a model that is not in the known-models table.
DEFAULT_CONTEXT_WINDOW = 200_000

_FIXES = {
    401: "Check the API key (ANTHROPIC_API_KEY).",
    403: "Check that the API key may use this model.",
    404: "Check the model name and base_url.",
    413: "Send less text.",
}


class AnthropicProvider:
    """A Claude model through the official ``anthropic`` SDK.

    The SDK's own retries are off; this provider retries instead, so every provider fails
    the same way: rate limits (429), overload (529), server errors (5xx), timeouts and
    dropped connections are retried up to ``max_retries`` times, waiting what the server's
    ``retry-after`` asks or else an exponential backoff from ``backoff`` seconds with jitter.
    Other 4xx fail at once with the API's own message.

    ``timeout`` bounds each attempt, in seconds. With ``request.cache_system`` the system
    prompt is sent as a cached block (``cache_control: ephemeral``). The reply's
    ``input_tokens`` counts all input, cached or not; the cache counts say which part.

    ``context_window`` and ``price`` default to the known-models table, then to
    200,000 tokens and no price.

    Raises:
        ConfigError: no API key was given and ``ANTHROPIC_API_KEY`` is not set.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 4,
        timeout: float = 120.0,
        context_window: int | None = None,
        price: Price | None = None,
        backoff: float = 1.0,
    ) -> None:
        api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise ConfigError(
                "ANTHROPIC_API_KEY is not set; export it or pass AnthropicProvider(api_key=...)."
            )
        check_retry_settings(
            "AnthropicProvider", max_retries=max_retries, timeout=timeout, backoff=backoff
        )
        # Importing the SDK takes seconds; do it here, before the event loop runs, rather than
        # at module import (most programs never build this provider) or inside the first call
        # (where it would stall every other task).
        import anthropic

        known = lookup_model(model)
        self.model = model
        self.name = f"anthropic:{model}"
        self.context_window = context_window or (
            known.context_window if known else DEFAULT_CONTEXT_WINDOW
        )
        self.price = price if price is not None else (known.price if known else None)
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self._rng = random.Random()
        self._clients: PerRunClient[anthropic.AsyncAnthropic] = PerRunClient(
            lambda: anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
            ),
            lambda client: client.close(),
        )

    async def complete(self, request: Request) -> Reply:
        """Send the request, retrying as the class says; return the text and real usage.

        Raises:
            ProviderError: a non-retryable error, or retries ran out.
        """
        return await call_with_retries(
            lambda: self._attempt(request),
            provider=self.name,
            what="anthropic request",
            cls_name="AnthropicProvider",
            max_retries=self.max_retries,
            backoff=self.backoff,
            rng=self._rng,
        )

    async def _attempt(self, request: Request) -> Reply:
        import anthropic

        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.system:
            if request.cache_system:
                params["system"] = [
                    {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
                ]
            else:
                params["system"] = request.system
        if request.temperature is not None:
            # Through extra_body: recent SDKs dropped the keyword, and some models refuse the
            # field, so it is sent only when asked for, as given.
            params["extra_body"] = {"temperature": request.temperature}
        client = self._clients.get()
        timed_out = AttemptFailed(
            f"no reply within {self.timeout:g} s", setting=f"timeout={self.timeout:g}"
        )
        # The SDK's own timeout covers each read; this scope bounds the whole attempt.
        with trio.move_on_after(self.timeout):
            try:
                message = await client.messages.create(**params)
            except anthropic.APIStatusError as exc:
                raise _status_failure(exc) from exc
            except anthropic.APITimeoutError as exc:
                raise timed_out from exc
            except anthropic.APIConnectionError as exc:
                cause = exc.__cause__ or exc  # the SDK's own text is only "Connection error."
                raise AttemptFailed(
                    f"connection failed: {str(cause) or type(cause).__name__}"
                ) from exc
            except anthropic.APIError as exc:  # e.g. a body the SDK could not parse
                raise _unreadable(exc) from exc
            try:
                return _to_reply(message)
            except (AttributeError, TypeError) as exc:  # the SDK does not check a body's shape
                raise _unreadable(exc) from exc
        raise timed_out

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.model!r})"


def _status_failure(exc: anthropic.APIStatusError) -> AttemptFailed:
    status = exc.status_code
    kind, message = _error_fields(exc.body)
    # "overloaded_error" reads "529 overloaded"; the bare "api_error" keeps its noun.
    name = kind.removesuffix("_error").replace("_", " ") if kind != "api_error" else "api error"
    summary = f"{status} {name}" if name else str(status)
    if is_retryable_status(status):
        return AttemptFailed(
            summary, status=status, retry_after=retry_after_seconds(exc.response.headers)
        )
    if message and message != kind:
        summary += f": {message}"
    return AttemptFailed(
        summary,
        status=status,
        retryable=False,
        fix=_FIXES.get(status, "Fix the request; it was not retried."),
    )


def _unreadable(exc: Exception) -> AttemptFailed:
    return AttemptFailed(
        f"reply is not a Messages API message ({type(exc).__name__}: {exc})",
        retryable=False,
        fix="Check that base_url serves the Anthropic Messages API.",
    )


def _error_fields(body: object) -> tuple[str, str]:
    """``(error.type, error.message)`` from an API error body, blank when absent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("type") or ""), str(error.get("message") or "")


def _to_reply(message: anthropic.types.Message) -> Reply:
    usage = message.usage
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Reply(
        text="".join(block.text for block in message.content if block.type == "text"),
        # The API reports cached input apart from input_tokens; the budget charges all of it.
        input_tokens=usage.input_tokens + cache_read + cache_write,
        output_tokens=usage.output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        model=message.model,
        stop_reason=message.stop_reason,
    )
