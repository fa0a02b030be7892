"""What a run tells about itself under load: calls overlapping, the parallel speed-up, retries,
and tools the planner would have to guess at."""

from __future__ import annotations

import threading
import time
import warnings

import attrs
import pytest

from ptcrun import Limits, OpenAICompatProvider, Runtime, ScriptedProvider, Transcript
from ptcrun.errors import ConfigError
from ptcrun.transcript._views import render_show, render_summary, render_tree

from .providers.fakeservers import FakeServer, openai_completion, openai_error

FAN_OUT = """Counting per chunk in parallel.
```python
counts = pmap(lambda c: tool.worker(c, "Count the lines."), data)
done(len(counts))
```"""


class InFlight:
    """A blocking worker ``respond`` that records how many calls were inside it at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, request: object) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1
        return "1"


def fan_out(tmp_path, worker, concurrency: int, chunks: int = 8) -> Transcript:
    rt = Runtime(planner=ScriptedProvider([FAN_OUT]), worker=ScriptedProvider(worker),
                 limits=Limits(max_concurrency=concurrency), transcript_dir=tmp_path)
    result = rt.run("How many chunks?", [f"chunk {i}" for i in range(chunks)])
    assert result.status == "done", result.error
    assert result.transcript is not None
    return Transcript.load(result.transcript)


def test_a_blocking_scripted_worker_runs_at_the_configured_concurrency(tmp_path):
    worker = InFlight(0.2)
    started = time.monotonic()
    fan_out(tmp_path, worker, concurrency=4)
    assert worker.most == 4
    assert time.monotonic() - started < 8 * 0.2  # not one at a time


def test_a_serial_run_shows_no_parallel_speedup(tmp_path):
    t = fan_out(tmp_path, InFlight(0.05), concurrency=1, chunks=5)
    assert t.parallel_speedup is not None
    assert round(t.parallel_speedup, 1) == 1.0
    assert "parallel speed-up 1.0x (sum of call times / time with a call running)" in render_summary(t)


def test_a_parallel_run_shows_its_calls_overlapping(tmp_path):
    t = fan_out(tmp_path, InFlight(0.2), concurrency=4)
    assert t.parallel_speedup is not None and t.parallel_speedup > 2.5


def test_a_retried_worker_request_is_recorded_with_its_reason(tmp_path):
    rate_limited = attrs.evolve(openai_error(429, "slow down", retry_after="0"), headers={
        "retry-after": "0", "x-request-id": "req_429"})
    with FakeServer() as api:
        api.queue(rate_limited, openai_completion("1"))
        worker = OpenAICompatProvider("small", base_url=api.url + "/v1", backoff=0.01)
        rt = Runtime(planner=ScriptedProvider([FAN_OUT]), worker=worker,
                     limits=Limits(max_concurrency=1), transcript_dir=tmp_path)
        result = rt.run("How many chunks?", ["one chunk"])
    assert result.status == "done", result.error
    assert result.transcript is not None
    t = Transcript.load(result.transcript)
    retries = [e for e in t.events if e["type"] == "llm.retry"]
    assert len(retries) == 1
    assert retries[0]["span"] == "t1.c1.llm1"
    assert retries[0]["attempt"] == 1 and retries[0]["status"] == 429
    assert retries[0]["reason"] == "429 rate limited" and retries[0]["request_id"] == "req_429"
    assert retries[0]["wait"] == 0
    (call,) = t.calls
    assert call.retries == 1 and call.llm[0].retries[0]["request_id"] == "req_429"
    assert "ok, 1 retry" in render_show(t, calls=True)
    assert "↻ retried 1× (429 rate limited, waited 0.0 ms, request id req_429)" in render_tree(t)


def fx_rate(currency):  # type: ignore[no-untyped-def]
    return 1.0


def test_an_undocumented_tool_is_warned_about_or_refused(tmp_path):
    with pytest.warns(UserWarning, match=r"tool 'fx_rate' has no docstring and no type hints for "
                      r"currency and no return type hint; the planner will see only "
                      r"`tool\.fx_rate\(currency\)`"):
        Runtime(planner=ScriptedProvider(["done(1)"]), tools=[fx_rate], transcript_dir=None)
    with pytest.raises(ConfigError, match="strict_tools=True"):
        Runtime(planner=ScriptedProvider(["done(1)"]), tools=[fx_rate], transcript_dir=None,
                strict_tools=True)


def test_a_documented_tool_passes_quietly():
    def fx(currency: str) -> float:
        """The exchange rate of currency to USD."""
        return 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Runtime(planner=ScriptedProvider(["done(1)"]), tools=[fx], transcript_dir=None,
                strict_tools=True)
