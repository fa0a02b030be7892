"""pmap(batch=True) and the result cache: requests the cache can answer are never submitted,
copies within a batch are sent once, and a batch's replies fill the cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import trio

from ptcrun import AnthropicProvider, Limits, Price, Runtime, ScriptedProvider, Transcript, tool
from ptcrun.transcript._html import render_html
from ptcrun.transcript._views import render_summary, render_tree

from .batch_runs import BATCHED, count_x
from .providers.fakeapi import FakeAPI

LIMITS = Limits(call_timeout=5, pmap_timeout=10, turn_timeout=20, run_timeout=60)


def program(body: str) -> str:
    return f"```python\n{body.strip()}\n```"


def run(api: FakeAPI, out: Path, chunks: list[str], *, planner: str = BATCHED, **options: Any):
    worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01,
                               batch_poll_max=0.05, price=Price(1.0, 5.0))
    rt = Runtime(planner=ScriptedProvider([planner]), worker=worker, limits=LIMITS, transcript_dir=out,
                 **options)
    return rt.run("How many x in each chunk?", chunks)


def events(result, kind: str) -> list[dict]:
    out = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    return [e for e in out if e["type"] == kind]


def submitted(api: FakeAPI) -> list[str]:
    """The texts of every request submitted in a batch, in order."""
    return [r["params"]["messages"][0]["content"].split("<text>\n", 1)[1].split("\n</text>", 1)[0]
            for b in api.batches.values() for r in b.requests]


def test_copies_within_a_batch_are_sent_once_and_answered_as_cached(tmp_path):
    chunks = ["x", "xx", "x", "xxx", "xx", "x"]
    with FakeAPI(reply=count_x) as api:
        result = run(api, tmp_path, chunks)
    assert result.status == "done", result.error
    assert result.answer == [1, 2, 1, 3, 2, 1]
    assert submitted(api) == ["x", "xx", "xxx"]
    # The three copies cost nothing and are marked as a live call's copies are.
    cached = [e for e in events(result, "llm.end") if e["role"] == "worker"]
    assert sorted(e["span"] for e in cached) == ["t1.m1.i2.llm1", "t1.m1.i4.llm1", "t1.m1.i5.llm1"]
    assert {e["cached"] for e in cached} == {"run"} and {e["cost"] for e in cached} == {0.0}
    assert result.cached_calls == 3
    assert result.usage.worker_calls == 3 and result.usage.worker_input_tokens == 3 * 11
    (start,) = events(result, "batch.start")
    assert start["requests"] == 3
    transcript = Transcript.load(result.transcript)
    assert "cached     3 worker requests" in render_summary(transcript)
    assert render_tree(transcript).count("cached (this run)") == 3
    assert "3 worker requests at no cost" in render_html(transcript)


def test_a_second_run_with_the_cache_file_submits_no_batch(tmp_path):
    cache = tmp_path / "cache.sqlite"
    chunks = ["x", "xx", "xxx"]
    with FakeAPI(reply=count_x) as api:
        first = run(api, tmp_path / "a", chunks, cache=cache)
        assert first.answer == [1, 2, 3] and len(api.batches) == 1
        second = run(api, tmp_path / "b", chunks, cache=cache)
        assert second.status == "done", second.error
        assert second.answer == [1, 2, 3]
        assert len(api.batches) == 1  # nothing was submitted the second time
    assert events(second, "batch.start") == []
    assert second.usage.worker_calls == 0 and second.usage.worker_input_tokens == 0
    assert second.usage.unsettled_tokens == 0
    ends = [e for e in events(second, "llm.end") if e["role"] == "worker"]
    assert [e["cached"] for e in ends] == ["disk"] * 3
    starts = [e for e in events(second, "llm.start") if e["role"] == "worker"]
    assert {e["reserved_tokens"] for e in starts} == {0}
    assert second.cached_calls == 3
    assert "cached     3 worker requests" in render_summary(Transcript.load(second.transcript))


def test_only_the_requests_the_cache_does_not_hold_are_submitted(tmp_path):
    cache = tmp_path / "cache.sqlite"
    with FakeAPI(reply=count_x) as api:
        run(api, tmp_path / "a", ["x", "xx"], cache=cache)
        result = run(api, tmp_path / "b", ["xx", "xxxx", "x", "xxxxx"], cache=cache)
    assert result.answer == [2, 4, 1, 5]
    assert submitted(api) == ["x", "xx", "xxxx", "xxxxx"]
    (start,) = events(result, "batch.start")
    assert start["requests"] == 2 and (start["first_item"], start["last_item"]) == (1, 3)
    assert set(start["keys"]) == {"i1", "i3"}
    # The batch is reserved for what it sends, and settled with what the provider reported.
    assert result.usage.worker_calls == 2 and result.usage.unsettled_tokens == 0
    assert result.cached_calls == 2


def test_a_request_answered_live_earlier_in_the_run_is_not_submitted(tmp_path):
    body = """
first = tool.worker("xx", "How many x?", schema={"type": "integer"})
answers = pmap(lambda c: tool.worker(c, "How many x?", schema={"type": "integer"}), data, batch=True)
done([first, answers])
"""
    with FakeAPI(reply=count_x) as api:
        result = run(api, tmp_path, ["x", "xx", "xxx"], planner=program(body))
    assert result.answer == [2, [1, 2, 3]]
    assert submitted(api) == ["x", "xxx"] and api.requests == 1  # the one live request
    cached = [e for e in events(result, "llm.end") if e.get("cached")]
    assert [(e["span"], e["cached"]) for e in cached] == [("t1.m1.i1.llm1", "run")]


def test_a_batch_that_errs_is_not_cached_and_is_sent_again(tmp_path):
    cache = tmp_path / "cache.sqlite"

    def outcome(custom_id, params):
        return ("errored", "overloaded") if custom_id == "i1" else ("succeeded", count_x(params))

    with FakeAPI(reply=count_x, batch_outcome=outcome) as api:
        first = run(api, tmp_path / "a", ["x", "xx", "xx"], cache=cache)
        # The copy of the failed request gets its error: the batch answered it once.
        assert first.answer == [1, "ProviderError", "ProviderError"]
        api.batch_outcome = None
        second = run(api, tmp_path / "b", ["x", "xx", "xx"], cache=cache)
    assert second.answer == [1, 2, 2]
    assert submitted(api) == ["x", "xx", "xx"]  # the first batch's two, then the failed one again
    assert second.cached_calls == 2


def test_a_schema_mismatch_from_the_cache_is_a_failure_as_from_the_batch(tmp_path):
    cache = tmp_path / "cache.sqlite"
    with FakeAPI(reply=lambda params: "many") as api:
        first = run(api, tmp_path / "a", ["x", "x"], cache=cache)
        second = run(api, tmp_path / "b", ["x"], cache=cache)
    assert first.answer == ["ToolError", "ToolError"]
    assert second.answer == ["ToolError"] and len(api.batches) == 1


# -- the cache's side: a batch's claim on many keys at once -----------------------------------


def test_a_batch_claim_sorts_its_keys_into_hits_owned_and_waiting(tmp_path):
    import trio

    from ptcrun import Reply, ScriptedProvider
    from ptcrun.runtime._cache import DiskCache, ReplyCache

    disk = DiskCache.open(tmp_path / "c.sqlite")
    disk.put("on-disk", "p", Reply(text="from disk", input_tokens=5, output_tokens=5))
    cache = ReplyCache(replayed={"recorded": Reply(text="replayed", input_tokens=0, output_tokens=0)},
                       disk=disk)
    provider = ScriptedProvider(["x"])

    async def main() -> None:
        async with cache.claim_batch(provider, ["earlier"]) as first:
            assert first.owned == ["earlier"]
            first.keep("earlier", Reply(text="kept", input_tokens=1, output_tokens=1))
        in_flight = trio.Event()
        release = trio.Event()

        async def other_batch() -> None:
            async with cache.claim_batch(provider, ["busy"]) as claim:
                assert claim.owned == ["busy"]
                in_flight.set()
                await release.wait()
                claim.keep("busy", Reply(text="from the other batch", input_tokens=1, output_tokens=1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_batch)
            await in_flight.wait()
            keys = ["earlier", "on-disk", "recorded", "busy", "new", "new"]
            async with cache.claim_batch(provider, keys) as claim:
                assert {k: (r.text, s) for k, (r, s) in claim.hits.items()} == {
                    "earlier": ("kept", "run"), "on-disk": ("from disk", "disk"),
                    "recorded": ("replayed", "resume"),
                }
                assert claim.owned == ["new"] and list(claim.waiting) == ["busy"]
                claim.keep("new", Reply(text="new reply", input_tokens=1, output_tokens=1))
            release.set()
            await claim.waiting["busy"].wait()
        async with cache.claim_batch(provider, ["busy", "new"]) as again:
            assert {k: s for k, (_, s) in again.hits.items()} == {"busy": "run", "new": "run"}
        assert cache.hits == {"run": 3, "disk": 1, "resume": 1}

    trio.run(main)
    # What the batch received went to the file; what it was answered from stays as it was.
    assert disk.get("new").text == "new reply"  # type: ignore[union-attr]
    assert disk.get_many(["new", "busy", "missing"]).keys() == {"new", "busy"}
    disk.close()


def test_two_batches_in_flight_together_send_their_common_requests_once(tmp_path):
    body = """
ask = lambda c: tool.worker(c, "How many x?", schema={"type": "integer"})
left, right = pcalls(lambda: pmap(ask, data[:3], batch=True), lambda: pmap(ask, data[1:], batch=True))
done([left, right])
"""
    with FakeAPI(reply=count_x) as api:
        result = run(api, tmp_path, ["x", "xx", "xxx", "xxxx"], planner=program(body))
    assert result.status == "done", result.error
    assert result.answer == [[1, 2, 3], [2, 3, 4]]
    # Whichever batch claimed "xx" and "xxx" first sent them; the other waited and was answered.
    assert sorted(submitted(api)) == ["x", "xx", "xxx", "xxxx"] and len(api.batches) == 2
    assert result.cached_calls == 2 and result.usage.worker_calls == 4


def test_a_live_call_identical_to_a_batched_request_is_sent_not_held_for_the_batch(tmp_path):
    # A batch is answered in minutes to hours: a live call waiting for it would run out its
    # clock and fail without ever being sent, its error telling to raise call_timeout.
    body = """
ask = lambda c: tool.worker(c, "How many x?", schema={"type": "integer"})
left, right = pcalls(lambda: pmap(ask, data, batch=True), lambda: [tool.submitted(), ask(data[0])][1])
done([left, right])
"""
    limits = Limits(call_timeout=1, pmap_timeout=30, turn_timeout=40, run_timeout=60)
    polled = threading.Event()
    with FakeAPI(reply=count_x, batch_polls=40, on_batch=lambda step: polled.set()) as api:

        async def submitted_batch() -> None:
            """Wait until the batch is at the provider."""
            await trio.to_thread.run_sync(polled.wait, 10)

        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01,
                                   batch_poll_max=0.05, price=Price(1.0, 5.0))
        rt = Runtime(planner=ScriptedProvider([program(body)]), worker=worker, limits=limits,
                     tools=[tool(submitted_batch, name="submitted")], transcript_dir=tmp_path)
        result = rt.run("How many x in each chunk?", ["x", "xx"])
    assert result.status == "done", result.error
    assert result.answer == [[1, 2], 1]
    assert result.failed_calls == {} and not result.partial
    assert api.requests == 1  # the live call went out on its own
    assert sorted(submitted(api)) == ["x", "xx"]
