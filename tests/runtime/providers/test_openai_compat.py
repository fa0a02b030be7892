"""OpenAICompatProvider against a local chat-completions server, under trio."""

import socket

import pytest
import trio

from ptcrun import Message, OpenAICompatProvider, Provider, Reply, Request
from ptcrun.errors import ConfigError, ProviderError

from .fakeservers import Answer, FakeServer, openai_completion, openai_error


def ask(text: str = "hi", **options) -> Request:
    return Request(messages=(Message("user", text),), **options)


@pytest.fixture
def server():
    with FakeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def no_key_from_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def provider_for(server: FakeServer, **options) -> OpenAICompatProvider:
    options.setdefault("backoff", 0.0)
    return OpenAICompatProvider("local-model", base_url=server.url + "/v1", **options)


async def test_reply_text_and_usage_are_parsed(server):
    server.queue(
        openai_completion("hello", prompt_tokens=40, completion_tokens=2, cached_tokens=32)
    )
    reply = await provider_for(server).complete(ask("say hello", max_tokens=50))
    # prompt_tokens already includes the cached part, as the budget needs.
    assert reply == Reply(
        text="hello",
        input_tokens=40,
        output_tokens=2,
        cache_read_tokens=32,
        model="fake-model",
        stop_reason="stop",
    )
    (received,) = server.received
    assert received.path == "/v1/chat/completions"
    assert received.body == {
        "model": "local-model",
        "messages": [{"role": "user", "content": "say hello"}],
        "max_tokens": 50,
    }


async def test_system_prompt_is_a_system_message(server):
    conversation = (Message("user", "q"), Message("assistant", "a"), Message("user", "q2"))
    await provider_for(server).complete(
        Request(messages=conversation, system="You work.", temperature=0.2)
    )
    body = server.received[0].body
    assert body["messages"] == [
        {"role": "system", "content": "You work."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "q2"},
    ]
    assert body["temperature"] == 0.2


async def test_missing_usage_is_counted_with_the_runtime_tokenizer(server):
    from ptcrun.corpus._tokens import count_tokens

    server.queue(openai_completion("four score and seven", prompt_tokens=None))
    reply = await provider_for(server).complete(ask("how many years?", system="Be exact."))
    assert reply.input_tokens == count_tokens("Be exact.") + count_tokens("how many years?")
    assert reply.output_tokens == count_tokens("four score and seven")


async def test_api_key_is_sent_as_a_bearer_token(server, monkeypatch):
    await provider_for(server, api_key="sk-given").complete(ask())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    await provider_for(server).complete(ask())
    given, from_env = (r.headers.get("authorization") for r in server.received)
    assert (given, from_env) == ("Bearer sk-given", "Bearer sk-env")


async def test_local_server_needs_no_api_key(server):
    await provider_for(server).complete(ask())
    assert "authorization" not in server.received[0].headers


def test_openai_itself_needs_an_api_key():
    with pytest.raises(ConfigError) as info:
        OpenAICompatProvider("gpt-4o-mini")
    assert str(info.value) == (
        "OPENAI_API_KEY is not set; export it or pass OpenAICompatProvider(api_key=...)."
    )


async def test_rate_limit_waits_retry_after_then_succeeds(server):
    server.queue(openai_error(429, "slow down", retry_after="1"), openai_completion("ok"))
    reply = await provider_for(server).complete(ask())
    assert reply.text == "ok"
    first, second = server.received
    assert second.at - first.at >= 1.0


async def test_unavailable_every_time_fails_after_all_attempts(server):
    server.queue(*[openai_error(503, "busy")] * 3)
    with pytest.raises(ProviderError) as info:
        await provider_for(server, max_retries=2).complete(ask())
    assert str(info.value) == (
        "openai-compatible request failed after 3 attempts: 503 service unavailable "
        "(OpenAICompatProvider(max_retries=2)). Try again later, or raise "
        "OpenAICompatProvider(max_retries=...)."
    )
    assert (info.value.status, info.value.provider) == (503, "openai:local-model")
    assert len(server.received) == 3


async def test_overloaded_is_retried_and_reported_by_its_type(server):
    server.queue(*[openai_error(529, "Overloaded", kind="overloaded_error")] * 2)
    with pytest.raises(ProviderError) as info:
        await provider_for(server, max_retries=1).complete(ask())
    assert str(info.value) == (
        "openai-compatible request failed after 2 attempts: 529 overloaded "
        "(OpenAICompatProvider(max_retries=1)). Try again later, or raise "
        "OpenAICompatProvider(max_retries=...)."
    )
    assert info.value.status == 529


async def test_bad_request_fails_at_once_with_the_server_message(server):
    server.queue(openai_error(400, "max_tokens is too large: 999999"))
    with pytest.raises(ProviderError) as info:
        await provider_for(server).complete(ask())
    assert str(info.value) == (
        "openai-compatible request failed: 400 bad request: max_tokens is too large: 999999. "
        "Fix the request; it was not retried."
    )
    assert info.value.status == 400
    assert len(server.received) == 1


async def test_ollama_style_error_names_the_model(server):
    server.queue(Answer(status=404, body={"error": "model 'local-model' not found"}))
    with pytest.raises(ProviderError) as info:
        await provider_for(server).complete(ask())
    assert str(info.value) == (
        "openai-compatible request failed: 404 not found: model 'local-model' not found. "
        "Check the model name and base_url."
    )


async def test_reply_that_is_not_a_completion_fails_at_once(server):
    server.queue(Answer(body={"hello": "world"}))
    with pytest.raises(ProviderError, match="reply is not a chat completion") as info:
        await provider_for(server).complete(ask())
    assert "Check that base_url serves an OpenAI-compatible /chat/completions." in str(info.value)
    assert len(server.received) == 1


async def test_slow_reply_times_out_and_is_retried(server):
    server.queue(Answer(delay=10), openai_completion("late but fine"))
    reply = await provider_for(server, timeout=0.3, max_retries=1).complete(ask())
    assert reply.text == "late but fine"
    assert len(server.received) == 2


async def test_slow_reply_every_time_names_the_timeout(server):
    server.queue(Answer(delay=10), Answer(delay=10))
    with pytest.raises(ProviderError) as info:
        await provider_for(server, timeout=0.3, max_retries=1).complete(ask())
    assert str(info.value) == (
        "openai-compatible request failed after 2 attempts: no reply within 0.3 s "
        "(OpenAICompatProvider(timeout=0.3, max_retries=1)). Check that the server is up, or "
        "raise OpenAICompatProvider(timeout=...) for long replies."
    )


async def test_refused_connection_is_retried_then_reported():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAICompatProvider(
        "m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.0
    )
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask())
    assert str(info.value).startswith(
        "openai-compatible request failed after 2 attempts: connection failed: "
    )
    assert str(info.value).endswith(
        "(OpenAICompatProvider(max_retries=1)). Check base_url and that the server is up."
    )


async def test_cancelling_a_call_abandons_it(server):
    server.queue(Answer(delay=10))
    with trio.move_on_after(0.3) as scope:
        await provider_for(server, timeout=60).complete(ask())
    assert scope.cancelled_caught
    assert len(server.received) == 1


def test_one_provider_serves_several_trio_runs(server):
    provider = provider_for(server)
    server.queue(openai_completion("one"), openai_completion("two"))
    assert [trio.run(provider.complete, ask()).text for _ in range(2)] == ["one", "two"]


def test_provider_reports_its_settings():
    provider = OpenAICompatProvider(
        "llama3", base_url="http://127.0.0.1:11434/v1/", context_window=8192
    )
    assert isinstance(provider, Provider)
    assert (provider.name, provider.base_url) == ("openai:llama3", "http://127.0.0.1:11434/v1")
    assert (provider.context_window, provider.price) == (8192, None)


def test_base_url_must_be_http():
    with pytest.raises(
        ConfigError, match="must start with http:// or https://; got 'localhost:8000'"
    ):
        OpenAICompatProvider("m", base_url="localhost:8000")


def test_bad_retry_settings_are_refused():
    with pytest.raises(ConfigError, match=r"OpenAICompatProvider\(max_retries=\.\.\.\) must be"):
        OpenAICompatProvider("m", base_url="http://127.0.0.1:1/v1", max_retries=1.5)
