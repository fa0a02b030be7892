"""Connections are reused: a fan-out at concurrency C opens C connections, however many calls."""

from __future__ import annotations

import pytest
import trio

from ptcrun import AnthropicProvider, OpenAICompatProvider
from ptcrun.runtime.providers._base import Message, Request

from .fakeapi import FakeAPI


async def _fan_out(provider, calls: int, concurrency: int) -> None:
    limiter = trio.CapacityLimiter(concurrency)
    request = Request(messages=[Message("user", "hi")], max_tokens=5)

    async def one() -> None:
        async with limiter:
            await provider.complete(request)

    async with trio.open_nursery() as nursery:
        for _ in range(calls):
            nursery.start_soon(one)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_connections_opened_equal_the_concurrency(kind):
    # Above both clients' defaults for idle connections kept (httpx 20, the Anthropic SDK 100).
    concurrency = 120
    with FakeAPI(latency=0.5) as api:
        if kind == "openai":
            provider = OpenAICompatProvider("m", base_url=api.url + "/v1")
        else:
            provider = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url)
        with trio.fail_after(60):
            await _fan_out(provider, 2 * concurrency, concurrency)
        assert api.requests == 2 * concurrency
        assert api.peak == concurrency
        assert api.connections == concurrency, (api.connections, api.peak)
