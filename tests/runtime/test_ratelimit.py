"""Rate limits steer how many worker requests are in flight: back off on limits, recover after."""

from __future__ import annotations

import io
import json

import attrs

from ptcrun import AnthropicProvider, Limits, OpenAICompatProvider, Runtime, ScriptedProvider, Transcript
from ptcrun.runtime.providers._base import Message, Request
from ptcrun.runtime.providers._ratelimit import Throttle, steering
from ptcrun.transcript._progress import LineProgress
from ptcrun.transcript._views import render_summary

from .providers.fakeapi import FakeAPI
from .providers.fakeservers import FakeServer, anthropic_message, openai_completion


def _changes(throttle_events: list) -> list[tuple[int, int, str]]:
    return [(c.previous, c.allowed, c.reason) for c in throttle_events]


async def test_a_429_halves_the_width_once_per_round_and_replies_grow_it_back():
    seen: list = []
    throttle = Throttle(8, on_change=seen.append)
    throttle.observe_failure(0, 429, None)
    assert throttle.allowed == 4
    # Another 429 from a request sent before the cut is old news: no second cut.
    throttle.observe_failure(0, 429, None)
    assert throttle.allowed == 4
    throttle.observe_failure(1, 529, None)
    assert throttle.allowed == 2
    # Errors that are not limits do not steer.
    throttle.observe_failure(2, 500, None)
    assert throttle.allowed == 2
    for _ in range(40):
        throttle.observe_reply(2, {})
    assert throttle.allowed == 8  # back to the ceiling, never above
    assert _changes(seen)[:2] == [(8, 4, "429 rate limited"), (4, 2, "529 overloaded")]
    assert all(reason == "recovered" for _, _, reason in _changes(seen)[2:])
    assert [allowed for _, allowed, _ in _changes(seen)[2:]] == [3, 4, 5, 6, 7, 8]


async def test_the_width_never_drops_below_one_and_retry_after_holds_growth():
    throttle = Throttle(3)
    for round in range(5):
        throttle.observe_failure(round, 429, None)
    assert throttle.allowed == 1
    throttle.observe_failure(throttle._round, 429, 30.0)
    for _ in range(10):
        throttle.observe_reply(0, {})
    assert throttle.allowed == 1  # the server asked for 30 s: no growth before then


async def test_low_remaining_headers_cut_the_width_before_any_429():
    throttle = Throttle(10)
    low = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "3"}
    seen: list = []
    throttle._on_change = seen.append
    throttle.observe_reply(0, low)
    assert throttle.allowed == 5
    assert seen[0].reason == "3 of 50 requests left"
    throttle.observe_reply(1, {"x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "900"})
    assert throttle.allowed == 2
    throttle.observe_reply(2, {"x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "90000"})
    assert throttle.allowed == 2  # 2 + 1/2: the whole number moves after two replies


async def test_providers_read_the_headers_of_their_replies():
    low = {"anthropic-ratelimit-tokens-limit": "1000", "anthropic-ratelimit-tokens-remaining": "10"}
    request = Request(messages=[Message("user", "hi")], max_tokens=5)
    with FakeServer() as server:
        server.queue(attrs.evolve(anthropic_message(), headers=low),
                     attrs.evolve(openai_completion(), headers={"x-ratelimit-limit-requests": "100",
                                                                "x-ratelimit-remaining-requests": "1"}))
        anthropic = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=server.url)
        openai = OpenAICompatProvider("m", base_url=server.url + "/v1")
        throttle = Throttle(16)
        with steering(throttle):
            await anthropic.complete(request)
            assert throttle.allowed == 8
            await openai.complete(request)
            assert throttle.allowed == 4


PROGRAM = """```python
answers = pmap(lambda c: tool.worker(c, "Say ok."), data)
done(sum(1 for a in answers if a == "ok"))
```"""


def test_a_fan_out_into_a_rate_limited_provider_backs_off_instead_of_storming(tmp_path):
    # The server takes 4 requests at a time and turns the rest away with a 429; the run may send
    # 40 at a time. Without steering each request retries on its own and keeps coming back while
    # 36 others do: measured, about 4 429s per request (475 for 120), and some requests ran out
    # of retries. Steered, the first round's 36 and about one per growth back to 5.
    items = 120
    with FakeAPI(latency=0.1, allow_in_flight=4, retry_after=0.05) as api:
        worker = OpenAICompatProvider("m", base_url=api.url + "/v1", max_retries=20, backoff=0.01)
        progress = io.StringIO()
        rt = Runtime(planner=ScriptedProvider([PROGRAM]), worker=worker, transcript_dir=tmp_path,
                     limits=Limits(max_concurrency=40, call_timeout=60, pmap_timeout=120),
                     observers=[LineProgress(progress)])
        result = rt.run("Say ok to each.", [f"chunk {i}" for i in range(items)])
    assert result.status == "done", result.error
    assert result.answer == items
    assert api.limited < items, api.limited
    events = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    changes = [e for e in events if e["type"] == "concurrency.change"]
    assert changes and changes[0]["previous"] == 40 and changes[0]["allowed"] == 20
    assert changes[0]["reason"] == "429 rate limited" and changes[0]["ceiling"] == 40
    assert min(c["allowed"] for c in changes) <= 4
    assert all(1 <= c["allowed"] <= 40 for c in changes)
    # Steering came back up after the limits: some changes are recoveries.
    assert any(c["reason"] == "recovered" for c in changes)
    transcript = Transcript.load(result.transcript)
    assert transcript.status == "done"
    # Every view says so.
    from ptcrun.transcript._html import render_html

    summary = render_summary(transcript)
    provider = changes[0]["provider"]
    assert f"rate limits steered the requests in flight to {provider} {len(changes):,} times" in summary
    assert "down to " in summary and "of 40 (429 rate limited)" in summary
    assert f"turn 1: requests in flight to {provider} 40 -> 20 of 40 (429 rate limited)" in progress.getvalue()
    page = render_html(transcript)
    assert f"requests allowed in flight to {provider} (429 rate limited)" in page


# -- the planner spends the same limits as the workers of its account ------------------------


class _PlannerLimited(FakeAPI):
    """Answers the planner (the request whose system prompt is not the worker's) with the
    program, after a 429 for its first attempt; the workers with ``ok``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(reply=self._reply, **kwargs)
        self.planner_attempts = 0

    @staticmethod
    def _reply(params: dict) -> str:
        return PROGRAM if _is_planner(params) else "ok"

    async def _answer(self, path, params):
        if _is_planner(params):
            self.planner_attempts += 1
            if self.planner_attempts == 1:
                self.limited += 1
                body = {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
                return 429, body, {"retry-after": "0.01"}, "application/json"
        return await super()._answer(path, params)


def _is_planner(params: dict) -> bool:
    return "<text>" not in params["messages"][0]["content"]


def _run_with(planner_key: str, tmp_path):
    with _PlannerLimited(latency=0.05) as api:
        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, max_retries=3,
                                   backoff=0.01)
        planner = AnthropicProvider("claude-sonnet-4-5", api_key=planner_key, base_url=api.url,
                                    max_retries=3, backoff=0.01)
        rt = Runtime(planner=planner, worker=worker, transcript_dir=tmp_path,
                     limits=Limits(max_concurrency=8, call_timeout=30, pmap_timeout=60))
        result = rt.run("Say ok to each.", [f"chunk {i}" for i in range(24)])
    events = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    return result, api, [e for e in events if e["type"] == "concurrency.change"]


def test_a_429_to_the_planner_narrows_the_workers_of_the_same_account(tmp_path):
    result, api, changes = _run_with("k", tmp_path)
    assert result.status == "done" and result.answer == 24, result.error
    assert api.planner_attempts == 2
    first = changes[0]
    assert (first["previous"], first["allowed"], first["reason"]) == (8, 4, "429 rate limited")
    assert first["provider"] == "anthropic:claude-haiku-4-5, anthropic:claude-sonnet-4-5"
    # The summary names the account, not the workers: the planner's 429 did this.
    summary = render_summary(Transcript.load(result.transcript))
    assert ("rate limits steered the requests in flight to anthropic:claude-haiku-4-5 and "
            "anthropic:claude-sonnet-4-5 ") in summary
    # The planner's 429 came before any worker request: the fan-out started at the cut width
    # and grew back by one a round, never reaching the 8 that max_concurrency allows.
    assert api.peak < 8


def test_another_accounts_planner_leaves_the_workers_width_alone(tmp_path):
    result, api, changes = _run_with("another key", tmp_path)
    assert result.status == "done" and result.answer == 24, result.error
    assert [(c["provider"], c["allowed"]) for c in changes] == [("anthropic:claude-sonnet-4-5", 4)]
    assert api.peak == 8
