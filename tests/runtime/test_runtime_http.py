"""A whole run over HTTP: an Anthropic planner and an OpenAI-compatible worker, both served by
local fake APIs, through the real SDK, retries, budget and sandbox."""

from __future__ import annotations

from ptcrun import AnthropicProvider, Limits, OpenAICompatProvider, Price, Runtime

from .providers.fakeservers import FakeServer, anthropic_message, openai_completion, openai_error

PROGRAM = """Counting per chunk in parallel.
```python
counts = pmap(lambda c: tool.worker(c, "How many ERROR lines? Answer with a number.", schema={"type": "integer"}), data)
print(counts)
done(sum(counts))
```"""


def test_a_run_over_http_with_a_rate_limited_worker(tmp_path):
    with FakeServer() as planner_api, FakeServer() as worker_api:
        planner_api.queue(anthropic_message(PROGRAM, input_tokens=900, output_tokens=60))
        # The worker API turns the first request away once; the provider waits and retries.
        worker_api.queue(
            openai_error(429, "rate limited", retry_after="0"),
            openai_completion("2", prompt_tokens=120, completion_tokens=1),
            openai_completion("2", prompt_tokens=120, completion_tokens=1),
            openai_completion("2", prompt_tokens=120, completion_tokens=1),
        )
        planner = AnthropicProvider(
            "claude-sonnet-4-6", api_key="test-key", base_url=planner_api.url,
            price=Price(input_per_mtok=3.0, output_per_mtok=15.0),
        )
        worker = OpenAICompatProvider(
            "small-model", base_url=worker_api.url + "/v1", backoff=0.01,
            price=Price(input_per_mtok=0.25, output_per_mtok=1.25),
        )
        rt = Runtime(planner=planner, worker=worker, limits=Limits(max_concurrency=1), transcript_dir=tmp_path)
        result = rt.run("How many ERROR lines?", ["ERROR a\nERROR b", "ERROR c\nERROR d", "x\nERROR e\nERROR f"])

    assert result.status == "done", result.error
    assert result.answer == 6
    assert result.turns[0].output == "[2, 2, 2]\n"
    # Usage is what the APIs reported, not local estimates; cost follows the prices given.
    assert result.usage.planner_input_tokens == 900 and result.usage.planner_output_tokens == 60
    assert result.usage.worker_input_tokens == 360 and result.usage.worker_output_tokens == 3
    expected_cost = (900 * 3.0 + 60 * 15.0 + 360 * 0.25 + 3 * 1.25) / 1e6
    assert abs(result.usage.cost - expected_cost) < 1e-12
    # The planner's system prompt was sent once per request, marked for caching.
    system = planner_api.received[0].body["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    assert len(worker_api.received) == 4  # three chunks, one retried
