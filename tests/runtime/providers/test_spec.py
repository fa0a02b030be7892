import json
import re

import pytest

from ptcrun import AnthropicProvider, Message, OpenAICompatProvider, Request, ScriptedProvider
from ptcrun.errors import ConfigError
from ptcrun.runtime.providers._spec import parse_provider

from .fakeservers import FakeServer, anthropic_message


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def test_anthropic_model():
    provider = parse_provider("anthropic:claude-haiku-4-5")
    assert isinstance(provider, AnthropicProvider)
    assert provider.name == "anthropic:claude-haiku-4-5"


async def test_anthropic_base_url_option_is_used():
    with FakeServer() as server:
        server.queue(anthropic_message("from the local server"))
        provider = parse_provider("anthropic:claude-haiku-4-5", base_url=server.url)
        reply = await provider.complete(Request(messages=(Message("user", "hi"),)))
    assert reply.text == "from the local server"
    assert server.received[0].body["model"] == "claude-haiku-4-5"


def test_openai_model_at_base_url():
    provider = parse_provider("openai:llama3.1:8b@http://127.0.0.1:11434/v1")
    assert isinstance(provider, OpenAICompatProvider)
    assert (provider.model, provider.base_url) == ("llama3.1:8b", "http://127.0.0.1:11434/v1")


def test_openai_model_with_base_url_option():
    provider = parse_provider("openai:qwen", base_url="http://127.0.0.1:8000/v1")
    assert (provider.model, provider.base_url) == ("qwen", "http://127.0.0.1:8000/v1")


def test_openai_model_name_may_contain_an_at_sign():
    provider = parse_provider("openai:team@model@http://127.0.0.1:8000/v1")
    assert (provider.model, provider.base_url) == ("team@model", "http://127.0.0.1:8000/v1")


def test_openai_without_base_url_means_openai_and_needs_its_key():
    with pytest.raises(ConfigError, match=r"^OPENAI_API_KEY is not set"):
        parse_provider("openai:gpt-4o-mini")


def test_base_url_given_twice_is_refused():
    with pytest.raises(
        ConfigError, match=re.escape("gives a base URL and base_url='http://b/v1' gives another; give one.")
    ):
        parse_provider("openai:m@http://a/v1", base_url="http://b/v1")


async def test_scripted_json_file(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["done(1)"]))
    provider = parse_provider(f"scripted:{path}")
    assert isinstance(provider, ScriptedProvider)
    assert (await provider.complete(Request(messages=(Message("user", "go"),)))).text == "done(1)"


def test_scripted_python_file(tmp_path):
    path = tmp_path / "planner.py"
    path.write_text("def respond(request):\n    return 'done(2)'\n")
    assert isinstance(parse_provider(f"scripted:{path}"), ScriptedProvider)


def test_scripted_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="scripted provider file not found"):
        parse_provider(f"scripted:{tmp_path / 'none.json'}")


@pytest.mark.parametrize(
    "spec", ["", "claude-haiku-4-5", "anthropic:", "anthropic:  ", "gpt:4o", "openai:@http://x/v1"]
)
def test_unknown_forms_list_the_accepted_ones(spec):
    with pytest.raises(ConfigError) as info:
        parse_provider(spec)
    message = str(info.value)
    assert repr(spec) in message
    for form in ("anthropic:MODEL", "openai:MODEL@BASE_URL", "scripted:FILE"):
        assert form in message
