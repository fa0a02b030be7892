"""Any server that speaks OpenAI chat completions: OpenAI itself, vLLM, Ollama, llama.cpp."""

from __future__ import annotations

import os
import random
from typing import Any

import httpx
import trio

from ...errors import ConfigError
from ._base import Price, Reply, Request
from ._http import (
    AttemptFailed,
    PerRunClient,
    call_with_retries,
    check_retry_settings,
    is_retryable_status,
    retry_after_seconds,
    status_summary,
    token_count,
)
from ._ratelimit import account_fingerprint, observe_reply

__all__ = ["OpenAICompatProvider"]

#: No cap on the connections of the pool, and every one kept alive between requests: the run's
#: limiter already bounds the requests in flight, so the pool grows to the run's concurrency and
#: each connection is reused. httpx's default keeps 20 alive, so at concurrency 50 most requests
#: opened (and, against a real server, TLS-handshook) a connection of their own.
_POOL = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=30.0)

OPENAI_BASE_URL = "https://api.openai.com/v1"

_FIXES = {
    401: "Check the API key (OPENAI_API_KEY).",
    403: "Check that the API key may use this model.",
    404: "Check the model name and base_url.",
    413: "Send less text.",
}


class OpenAICompatProvider:
    """A model behind an OpenAI-compatible ``POST {base_url}/chat/completions``.

    Built on ``httpx`` directly, so a local server needs no vendor SDK. ``base_url`` defaults,
    as in OpenAI's own SDK, to ``OPENAI_BASE_URL`` and then to OpenAI's API. The API key comes
    from ``api_key`` or ``OPENAI_API_KEY``; it is required only for OpenAI's own ``base_url``
    (local servers usually take none). The system prompt is sent as a ``system`` message.
    The output cap is sent as ``max_completion_tokens`` to OpenAI, whose newer models refuse
    ``max_tokens``, and as ``max_tokens`` elsewhere, which is what local servers read.

    Retries, timeouts and error messages are those of ``AnthropicProvider``: 429, 5xx,
    timeouts and dropped connections are retried up to ``max_retries`` times, honouring
    ``retry-after`` up to ``max_retry_wait`` seconds; other 4xx fail at once with the server's
    message, and so does a body that is not a chat completion. Usage comes from the
    response's ``usage``; a server that sends none is measured with the runtime's tokenizer,
    and one that sends counts that are not whole numbers is refused.

    Raises:
        ConfigError: OpenAI's ``base_url`` with no API key, or a bad setting.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 2,
        timeout: float = 120.0,
        context_window: int = 128_000,
        price: Price | None = None,
        backoff: float = 1.0,
        max_retry_wait: float = 60.0,
    ) -> None:
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")
        if api_key is None and base_url == OPENAI_BASE_URL:
            raise ConfigError(
                "OPENAI_API_KEY is not set; export it or pass OpenAICompatProvider(api_key=...)."
            )
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"OpenAICompatProvider(base_url=...) must start with http:// or https://; "
                f"got {base_url!r}."
            )
        check_retry_settings(
            "OpenAICompatProvider",
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            max_retry_wait=max_retry_wait,
        )
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        #: Providers of the same account share its rate limits (see ``_ratelimit.Throttles``).
        self.rate_limit_account = "openai:" + account_fingerprint(base_url, api_key)
        self.context_window = context_window
        self.price = price
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self._url = f"{base_url}/chat/completions"
        self._max_tokens_field = (
            "max_completion_tokens" if base_url == OPENAI_BASE_URL else "max_tokens"
        )
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._rng = random.Random()
        self._clients: PerRunClient[httpx.AsyncClient] = PerRunClient(
            lambda: httpx.AsyncClient(timeout=timeout, headers=self._headers, limits=_POOL),
            lambda client: client.aclose(),
        )

    async def complete(self, request: Request) -> Reply:
        """Send the request, retrying as the class says; return the text and usage.

        Raises:
            ProviderError: a non-retryable error, or retries ran out.
        """
        return await call_with_retries(
            lambda: self._attempt(request),
            provider=self.name,
            what="openai-compatible request",
            cls_name="OpenAICompatProvider",
            max_retries=self.max_retries,
            backoff=self.backoff,
            max_retry_wait=self.max_retry_wait,
            purpose=request.purpose,
            rng=self._rng,
        )

    async def _attempt(self, request: Request) -> Reply:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self._max_tokens_field: request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        client = self._clients.get()
        timed_out = AttemptFailed(
            f"no reply within {self.timeout:g} s",
            setting=f"timeout={self.timeout:g}",
            fix="Check that the server is up, or raise OpenAICompatProvider(timeout=...) for long replies.",
        )
        # httpx's timeout covers each read; this scope bounds the whole attempt.
        with trio.move_on_after(self.timeout):
            try:
                response = await client.post(self._url, json=body)
            except httpx.TimeoutException as exc:
                raise timed_out from exc
            except httpx.TransportError as exc:
                raise AttemptFailed(
                    f"connection failed: {str(exc) or type(exc).__name__}",
                    fix="Check base_url and that the server is up.",
                ) from exc
            if response.status_code >= 400:
                raise _status_failure(response)
            observe_reply(response.headers)
            return _to_reply(request, response)
        raise timed_out

    def __repr__(self) -> str:
        return f"OpenAICompatProvider({self.model!r}, base_url={self.base_url!r})"


def _request_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("request-id") or None


def _status_failure(response: httpx.Response) -> AttemptFailed:
    status = response.status_code
    kind, message = _error_fields(response)
    # The HTTP reason names the failure; 529 has none, so the error type stands in.
    phrase = response.reason_phrase or kind.removesuffix("_error").replace("_", " ")
    summary = status_summary(status, phrase)
    if is_retryable_status(status):
        return AttemptFailed(
            summary,
            status=status,
            retry_after=retry_after_seconds(response.headers),
            fix="Try again later, or raise OpenAICompatProvider(max_retries=...).",
            request_id=_request_id(response),
        )
    if message:
        summary += f": {message}"
    return AttemptFailed(
        summary,
        status=status,
        retryable=False,
        fix=_FIXES.get(status, "Fix the request; it was not retried."),
        request_id=_request_id(response),
    )


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    """``(type, message)`` of an error, from the shapes servers use: OpenAI and llama.cpp
    ``{"error": {"type", "message"}}``, Ollama ``{"error": "..."}``, vLLM ``{"type",
    "message"}``; a body that is not JSON is the message."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text.strip()[:300]
    if not isinstance(body, dict):
        return "", ""
    error = body.get("error")
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        error = body
    return str(error.get("type") or ""), str(error.get("message") or "")


def _to_reply(request: Request, response: httpx.Response) -> Reply:
    try:
        return _read_completion(request, response)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        problem = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        raise AttemptFailed(
            f"{response.status_code} reply is not a chat completion ({problem[:200]}): "
            f"{response.text[:200]!r}",
            status=response.status_code,
            retryable=False,
            fix="Check that base_url serves an OpenAI-compatible /chat/completions.",
            request_id=_request_id(response),
        ) from exc


def _read_completion(request: Request, response: httpx.Response) -> Reply:
    """The reply a chat completion body holds, every field used checked for its type.

    Raises:
        ValueError: the body is not JSON, or a field is missing or of the wrong type.
    """
    try:
        data = response.json()
    except ValueError as exc:  # json.JSONDecodeError, or bytes that are not text
        raise ValueError(f"the body is not JSON: {exc}") from exc
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("it has no choices[0]")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("choices[0] has no message")
    text = _text_of(message.get("content"))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    input_tokens = usage.get("prompt_tokens")
    output_tokens = usage.get("completion_tokens")
    if input_tokens is None or output_tokens is None:
        from ...corpus._tokens import count_tokens  # written beside the budget; imported when needed

        input_tokens = count_tokens(request.system) + sum(
            count_tokens(m.content) for m in request.messages
        )
        output_tokens = count_tokens(text)
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    finish = choice.get("finish_reason")
    return Reply(
        text=text,
        input_tokens=token_count(input_tokens, "usage.prompt_tokens"),
        output_tokens=token_count(output_tokens, "usage.completion_tokens"),
        cache_read_tokens=token_count(cached or 0, "usage.prompt_tokens_details.cached_tokens"),
        model=str(data.get("model") or ""),
        stop_reason=finish if isinstance(finish, str) else None,
    )


def _text_of(content: object) -> str:
    """A message's text: a string, nothing (a reply of tool calls only), or a list of parts
    of which the ``text`` ones count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        texts = [p for p in parts if isinstance(p, str)]
        if len(texts) == len(parts):
            return "".join(texts)
    raise ValueError(f"choices[0].message.content is a {type(content).__name__}, not text")
