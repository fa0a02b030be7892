"""AnthropicProvider against a local Messages-API server, under trio."""

import socket

import pytest
import trio

from ptcrun import AnthropicProvider, Message, Price, Provider, Reply, Request
from ptcrun.errors import ConfigError, ProviderError
from ptcrun.runtime.providers._http import retry_after_seconds
from ptcrun.runtime.providers._models import KNOWN_MODELS

from .fakeservers import Answer, FakeServer, anthropic_error, anthropic_message

MODEL = "claude-haiku-4-5"


def ask(text: str = "hi", **options) -> Request:
    return Request(messages=(Message("user", text),), **options)


@pytest.fixture
def server():
    with FakeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def no_base_url_from_environment(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def provider_for(server: FakeServer, **options) -> AnthropicProvider:
    options.setdefault("backoff", 0.0)
    return AnthropicProvider(MODEL, api_key="test-key", base_url=server.url, **options)


async def test_reply_text_and_usage_are_parsed(server):
    server.queue(
        anthropic_message(
            "hello",
            input_tokens=10,
            output_tokens=2,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=5,
            model="claude-haiku-4-5-20251001",
        )
    )
    reply = await provider_for(server).complete(ask("say hello", max_tokens=50))
    # input_tokens is everything the model read: uncached, cache reads and cache writes.
    assert reply == Reply(
        text="hello",
        input_tokens=115,
        output_tokens=2,
        cache_read_tokens=100,
        cache_write_tokens=5,
        model="claude-haiku-4-5-20251001",
        stop_reason="end_turn",
    )
    (received,) = server.received
    assert received.path == "/v1/messages"
    assert received.body["model"] == MODEL
    assert received.body["max_tokens"] == 50
    assert received.body["messages"] == [{"role": "user", "content": "say hello"}]
    assert "system" not in received.body and "temperature" not in received.body


async def test_system_prompt_is_sent_with_cache_control_when_cached(server):
    provider = provider_for(server)
    await provider.complete(ask(system="You plan.", cache_system=True, temperature=0.0))
    await provider.complete(ask(system="You work."))
    cached, plain = (r.body for r in server.received)
    assert cached["system"] == [
        {"type": "text", "text": "You plan.", "cache_control": {"type": "ephemeral"}}
    ]
    assert cached["temperature"] == 0.0
    assert plain["system"] == "You work."


async def test_rate_limit_waits_retry_after_then_succeeds(server):
    server.queue(anthropic_error(429, "rate_limit_error", retry_after="1"), anthropic_message("ok"))
    reply = await provider_for(server).complete(ask())
    assert reply.text == "ok"
    first, second = server.received
    assert second.at - first.at >= 1.0


async def test_backoff_waits_when_the_server_names_no_delay(server):
    server.queue(anthropic_error(500, "api_error"), anthropic_message("ok"))
    reply = await provider_for(server, backoff=0.2).complete(ask())
    assert reply.text == "ok"
    first, second = server.received
    # The first wait is backoff * [0.5, 1] seconds.
    assert second.at - first.at >= 0.1


async def test_overloaded_every_time_fails_after_all_attempts(server):
    server.queue(*[anthropic_error(529, "overloaded_error")] * 3)
    with pytest.raises(ProviderError) as info:
        await provider_for(server, max_retries=2).complete(ask())
    assert str(info.value) == (
        "anthropic request failed after 3 attempts: 529 overloaded "
        "(AnthropicProvider(max_retries=2)). Try again later, or raise "
        "AnthropicProvider(max_retries=...)."
    )
    assert (info.value.status, info.value.provider) == (529, "anthropic:claude-haiku-4-5")
    assert len(server.received) == 3


async def test_bad_request_fails_at_once_with_the_api_message(server):
    server.queue(anthropic_error(400, "invalid_request_error", "max_tokens: must be at least 1"))
    with pytest.raises(ProviderError) as info:
        await provider_for(server).complete(ask())
    assert str(info.value) == (
        "anthropic request failed: 400 invalid request: max_tokens: must be at least 1. "
        "Fix the request; it was not retried."
    )
    assert info.value.status == 400
    assert len(server.received) == 1


async def test_bad_api_key_names_the_variable(server):
    server.queue(anthropic_error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(
        ProviderError,
        match=r"401 authentication: invalid x-api-key\. Check the API key \(ANTHROPIC_API_KEY\)\.$",
    ):
        await provider_for(server).complete(ask())
    assert len(server.received) == 1


async def test_reply_that_is_not_a_message_fails_at_once(server):
    server.queue(Answer(body={"hello": "world"}))
    with pytest.raises(ProviderError, match="reply is not a Messages API message") as info:
        await provider_for(server).complete(ask())
    assert str(info.value).endswith("Check that base_url serves the Anthropic Messages API.")
    assert len(server.received) == 1


async def test_a_message_without_its_type_field_is_read_and_another_type_is_refused(server):
    # Some servers that speak the Messages API leave "type" out; the fields a reply needs are there.
    untyped = anthropic_message("fine")
    del untyped.body["type"]
    server.queue(untyped)
    assert (await provider_for(server).complete(ask())).text == "fine"
    other = anthropic_message("no")
    other.body["type"] = "error"
    server.queue(other)
    with pytest.raises(ProviderError, match="its type is 'error', not 'message'"):
        await provider_for(server).complete(ask())


async def test_slow_reply_times_out_and_is_retried(server):
    server.queue(Answer(delay=10), anthropic_message("late but fine"))
    reply = await provider_for(server, timeout=0.3, max_retries=1).complete(ask())
    assert reply.text == "late but fine"
    assert len(server.received) == 2


async def test_slow_reply_every_time_names_the_timeout(server):
    server.queue(Answer(delay=10), Answer(delay=10))
    with pytest.raises(ProviderError) as info:
        await provider_for(server, timeout=0.3, max_retries=1).complete(ask())
    assert str(info.value) == (
        "anthropic request failed after 2 attempts: no reply within 0.3 s "
        "(AnthropicProvider(timeout=0.3, max_retries=1)). Check that the server is up, or raise "
        "AnthropicProvider(timeout=...) for long replies."
    )
    assert info.value.status is None


async def test_refused_connection_is_retried_then_reported():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AnthropicProvider(
        MODEL, api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=1, backoff=0.0
    )
    with pytest.raises(
        ProviderError, match=r"^anthropic request failed after 2 attempts: connection failed"
    ):
        await provider.complete(ask())


async def test_cancelling_a_call_abandons_it(server):
    server.queue(Answer(delay=10))
    with trio.move_on_after(0.3) as scope:
        await provider_for(server, timeout=60).complete(ask())
    assert scope.cancelled_caught
    assert len(server.received) == 1


def test_one_provider_serves_several_trio_runs(server):
    provider = provider_for(server)
    server.queue(anthropic_message("one"), anthropic_message("two"))
    texts = [trio.run(provider.complete, ask()).text for _ in range(2)]
    assert texts == ["one", "two"]


def test_missing_api_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        AnthropicProvider(MODEL)
    assert str(info.value) == (
        "ANTHROPIC_API_KEY is not set; export it or pass AnthropicProvider(api_key=...)."
    )


async def test_api_key_from_the_environment_is_sent(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key-from-env")
    await AnthropicProvider(MODEL, base_url=server.url).complete(ask())
    headers = server.received[0].headers
    assert "key-from-env" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


def test_known_model_brings_its_price_and_context_window():
    provider = AnthropicProvider("claude-haiku-4-5-20251001", api_key="k")
    assert isinstance(provider, Provider)
    assert provider.name == "anthropic:claude-haiku-4-5-20251001"
    assert provider.price == KNOWN_MODELS["claude-haiku-4-5"].price
    assert provider.context_window == 200_000


def test_unknown_model_has_no_price_unless_given():
    assert AnthropicProvider("claude-future-9", api_key="k").price is None
    price = Price(2.0, 8.0)
    provider = AnthropicProvider("claude-future-9", api_key="k", price=price, context_window=50_000)
    assert (provider.price, provider.context_window) == (price, 50_000)


def test_cost_charges_cached_input_at_cache_prices():
    price = Price(
        input_per_mtok=3.0, output_per_mtok=15.0, cache_read_per_mtok=0.3, cache_write_per_mtok=3.75
    )
    reply = Reply(
        "x",
        input_tokens=1_000_000,
        output_tokens=100_000,
        cache_read_tokens=500_000,
        cache_write_tokens=200_000,
    )
    # 300k uncached * 3 + 500k * 0.3 + 200k * 3.75 + 100k * 15, per million
    assert price.cost(reply) == pytest.approx(0.9 + 0.15 + 0.75 + 1.5)
    assert Price(3.0, 15.0).cost(reply) == pytest.approx(3.0 + 1.5)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers, seconds):
    assert retry_after_seconds(headers) == seconds


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"max_retries": -1}, "AnthropicProvider(max_retries=...) must be a whole number >= 0"),
        ({"timeout": 0}, "AnthropicProvider(timeout=...) must be seconds > 0; got 0."),
        ({"backoff": -1.0}, "AnthropicProvider(backoff=...) must be seconds >= 0; got -1.0."),
        (
            {"max_retry_wait": -1},
            "AnthropicProvider(max_retry_wait=...) must be seconds >= 0 (math.inf for no cap); got -1.",
        ),
    ],
)
def test_bad_retry_settings_are_refused(setting, message):
    with pytest.raises(ConfigError) as info:
        AnthropicProvider(MODEL, api_key="k", **setting)
    assert message in str(info.value)
