"""Claude through the Anthropic Messages API, with our retry policy."""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

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
from ._models import lookup_model
from ._ratelimit import account_fingerprint, observe_reply

if TYPE_CHECKING:
    import anthropic

    from ._batches import AnthropicBatches

T = TypeVar("T")

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
    A server that asks to wait more than ``max_retry_wait`` seconds (``math.inf``: no cap)
    is not waited for: the request fails at once, saying so. Other 4xx fail at once with the
    API's own message, and so does a reply that is not a Messages API message.

    ``timeout`` bounds each attempt, in seconds; with the defaults a server that never
    answers is given up after three attempts of two minutes, inside the planner's turn clock.
    ``base_url`` (else ``ANTHROPIC_BASE_URL``) points at another server speaking the
    Messages API. With ``request.cache_system`` the system prompt is sent as a cached block
    (``cache_control: ephemeral``). The reply's ``input_tokens`` counts all input, cached or
    not; the cache counts say which part.

    ``context_window`` and ``price`` default to the known-models table, then to
    200,000 tokens and no price.

    A program's ``pmap(..., batch=True)`` sends its worker requests through the Message
    Batches API instead, at half ``price``; a batch is asked how it stands after
    ``batch_poll`` seconds, then half as long again each time, at most every
    ``batch_poll_max`` seconds.

    Raises:
        ConfigError: no API key was given and ``ANTHROPIC_API_KEY`` is not set; a base URL
            that is not http(s); a bad retry setting.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 120.0,
        context_window: int | None = None,
        price: Price | None = None,
        backoff: float = 1.0,
        max_retry_wait: float = 60.0,
        batch_poll: float = 5.0,
        batch_poll_max: float = 60.0,
    ) -> None:
        api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise ConfigError(
                "ANTHROPIC_API_KEY is not set; export it or pass AnthropicProvider(api_key=...)."
            )
        # Checked here, not left to the SDK: it would read ANTHROPIC_BASE_URL itself, and an
        # ftp:// or bare host:port would fail only at the first request, as a connection error.
        base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"AnthropicProvider(base_url=...) must start with http:// or https://; got "
                f"{base_url!r} (from ANTHROPIC_BASE_URL or the argument)."
            )
        check_retry_settings(
            "AnthropicProvider",
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            max_retry_wait=max_retry_wait,
        )
        for name, value in (("batch_poll", batch_poll), ("batch_poll_max", batch_poll_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"AnthropicProvider({name}=...) must be seconds > 0; got {value!r}.")
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
        self.base_url = base_url
        #: Providers of the same account share its rate limits (see ``_ratelimit.Throttles``).
        self.rate_limit_account = "anthropic:" + account_fingerprint(base_url, api_key)
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.batch_poll = float(batch_poll)
        self.batch_poll_max = max(float(batch_poll_max), self.batch_poll)
        self._rng = random.Random()
        self._clients: PerRunClient[anthropic.AsyncAnthropic] = PerRunClient(
            lambda: anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                timeout=timeout,
                http_client=anthropic.DefaultAsyncHttpxClient(timeout=timeout, limits=_pool()),
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
            max_retry_wait=self.max_retry_wait,
            purpose=request.purpose,
            rng=self._rng,
        )

    def _params(self, request: Request, *, batch: bool = False) -> dict[str, Any]:
        """The Messages API parameters of ``request`` (``batch``: as a batch entry carries them)."""
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
            # field, so it is sent only when asked for, as given. A batch entry is plain JSON.
            if batch:
                params["temperature"] = request.temperature
            else:
                params["extra_body"] = {"temperature": request.temperature}
        return params

    def _client(self) -> anthropic.AsyncAnthropic:
        """The SDK client of the current trio run."""
        return self._clients.get()

    def _batch_engine(self) -> AnthropicBatches:
        """This model's Message Batches API (see :mod:`._batches`)."""
        from ._batches import AnthropicBatches

        return AnthropicBatches(self)

    async def _sdk_call(self, call: Callable[[], Awaitable[T]], *, what: str = "an API reply") -> T:
        """Await one SDK call within ``timeout``; its failures become :class:`AttemptFailed`
        for the retry loop, as a Messages request's do."""
        import anthropic

        timed_out = AttemptFailed(
            f"no reply within {self.timeout:g} s",
            setting=f"timeout={self.timeout:g}",
            fix="Check that the server is up, or raise AnthropicProvider(timeout=...) for long replies.",
        )
        # The SDK's own timeout covers each read; this scope bounds the whole attempt.
        with trio.move_on_after(self.timeout):
            try:
                return await call()
            except anthropic.APIStatusError as exc:
                raise _status_failure(exc) from exc
            except anthropic.APITimeoutError as exc:
                raise timed_out from exc
            except anthropic.APIConnectionError as exc:
                cause = exc.__cause__ or exc  # the SDK's own text is only "Connection error."
                raise AttemptFailed(
                    f"connection failed: {str(cause) or type(cause).__name__}",
                    fix="Check base_url and that the server is up.",
                ) from exc
            except anthropic.APIError as exc:  # e.g. a response the SDK refused to read
                raise AttemptFailed(
                    f"reply is not {what}: {_describe(exc)}",
                    retryable=False,
                    fix="Check that base_url serves the Anthropic Messages API.",
                ) from exc
        raise timed_out

    async def _attempt(self, request: Request) -> Reply:
        params = self._params(request)
        client = self._clients.get()
        # The raw response keeps the status, the request id and the rate-limit headers; its
        # body has been read by then. The body is read as JSON, not built into the SDK's
        # models: a reply needs four fields, each checked here, and building the models cost
        # a tenth of a request's CPU.
        raw = await self._sdk_call(
            lambda: client.messages.with_raw_response.create(**params), what="a Messages API message"
        )
        status, request_id = raw.status_code, raw.headers.get("request-id")
        observe_reply(raw.headers)
        body = raw.http_response.content
        try:
            try:
                data = json.loads(body)
            except ValueError:  # not JSON, or bytes that are not text
                kind = raw.headers.get("content-type") or "no content-type"
                raise ValueError(f"the body is not JSON ({kind}): {body[:80]!r}") from None
            return reply_from_json(data)
        except ValueError as exc:
            raise AttemptFailed(
                f"{status} reply is not a Messages API message: {exc}",
                status=status,
                retryable=False,
                fix="Check that base_url serves the Anthropic Messages API.",
                request_id=request_id,
            ) from exc

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.model!r})"


def _pool() -> Any:
    """The SDK's connection limits with every connection kept alive between requests.

    The run's limiter bounds the requests in flight, so the pool grows to the run's concurrency
    and reuses each connection; the SDK's default keeps 100 alive, and above that concurrency
    requests would open connections of their own. Built from the SDK's own ``Limits`` class,
    since the SDK may bundle its own copy of httpx.
    """
    import anthropic

    default = anthropic.DEFAULT_CONNECTION_LIMITS
    return type(default)(max_connections=None, max_keepalive_connections=None, keepalive_expiry=30.0)


def _status_failure(exc: anthropic.APIStatusError) -> AttemptFailed:
    status = exc.status_code
    kind, message = _error_fields(exc.body)
    request_id = exc.response.headers.get("request-id") or None
    # "overloaded_error" reads "529 overloaded". The generic "api_error", or no type at all (an
    # HTML page from a proxy), says less than the HTTP reason ("503 service unavailable").
    reason = str(getattr(exc.response, "reason_phrase", "") or "")
    if kind and kind != "api_error":
        phrase = kind.removesuffix("_error").replace("_", " ")
    else:
        phrase = reason or kind.replace("_", " ")
    summary = status_summary(status, phrase)
    if is_retryable_status(status):
        return AttemptFailed(
            summary,
            status=status,
            retry_after=retry_after_seconds(exc.response.headers),
            fix="Try again later, or raise AnthropicProvider(max_retries=...).",
            request_id=request_id,
        )
    if message and message != kind:
        summary += f": {message}"
    return AttemptFailed(
        summary,
        status=status,
        retryable=False,
        fix=_FIXES.get(status, "Fix the request; it was not retried."),
        request_id=request_id,
    )


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _error_fields(body: object) -> tuple[str, str]:
    """``(error.type, error.message)`` from an API error body, blank when absent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("type") or ""), str(error.get("message") or "")


def to_reply(message: object) -> Reply:
    """The reply a parsed Messages API body holds.

    The SDK builds its models without checking types, so each field used is checked here.

    Raises:
        ValueError: the body is not a message, or a field has the wrong type.
    """
    import anthropic

    if not isinstance(message, anthropic.types.Message):
        raise ValueError(f"the body is a {type(message).__name__}: {str(message)[:120]!r}")
    usage = message.usage
    return _reply(
        lambda field: getattr(usage, field, None),
        message.content,
        lambda block, field: getattr(block, field, None),
        message.model,
        message.stop_reason,
    )


def reply_from_json(body: object) -> Reply:
    """The reply a Messages API body holds, as the JSON it was sent in.

    Raises:
        ValueError: the body is not a message, or a field it needs has the wrong type.
    """
    if not isinstance(body, dict):
        raise ValueError(f"the body is a JSON {type(body).__name__}, not an object: {str(body)[:120]!r}")
    # Some servers that speak the API leave "type" out; one that names another type is refused.
    if body.get("type", "message") != "message":
        raise ValueError(f"its type is {body.get('type')!r}, not 'message': {json.dumps(body)[:120]!r}")
    usage = body.get("usage")
    if not isinstance(usage, dict):
        raise ValueError(f"usage is a {type(usage).__name__}, not an object")
    return _reply(
        usage.get,
        body.get("content"),
        lambda block, field: block.get(field) if isinstance(block, dict) else None,
        body.get("model"),
        body.get("stop_reason"),
    )


def _reply(
    usage: Callable[[str], object],
    content: object,
    field_of: Callable[[object, str], object],
    model: object,
    stop_reason: object,
) -> Reply:
    """The reply of a message's usage, content blocks, model and stop reason, each checked,
    read through ``usage(name)`` and ``field_of(block, name)`` (a parsed model or its JSON)."""
    cache_read = token_count(usage("cache_read_input_tokens") or 0, "usage.cache_read_input_tokens")
    cache_write = token_count(usage("cache_creation_input_tokens") or 0, "usage.cache_creation_input_tokens")
    input_tokens = token_count(usage("input_tokens"), "usage.input_tokens")
    output_tokens = token_count(usage("output_tokens"), "usage.output_tokens")
    if not isinstance(content, list):
        raise ValueError(f"content is a {type(content).__name__}, not a list of blocks")
    texts = []
    for block in content:
        if field_of(block, "type") == "text":
            text = field_of(block, "text")
            if not isinstance(text, str):
                raise ValueError(f"a text block's text is a {type(text).__name__}, not a string")
            texts.append(text)
    return Reply(
        text="".join(texts),
        # The API reports cached input apart from input_tokens; the budget charges all of it.
        input_tokens=input_tokens + cache_read + cache_write,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        model=model if isinstance(model, str) else "",
        stop_reason=stop_reason if isinstance(stop_reason, str) else None,
    )
