"""pmap(batch=True): worker requests through Anthropic's Message Batches API, against a local fake
of that API (create, retrieve, results as JSONL, cancel) driven by the official SDK."""

from __future__ import annotations

import json

import pytest

from ptcrun import Limits, OpenAICompatProvider, Runtime, ScriptedProvider
from ptcrun.runtime import _batch_send, _batches

from .batch_runs import batched_run
from .providers.fakeapi import FakeAPI

FAST = {"call_timeout": 5, "pmap_timeout": 10, "turn_timeout": 20, "run_timeout": 60}


def events(result, kind: str | None = None) -> list[dict]:
    out = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    return out if kind is None else [e for e in out if e["type"] == kind]


def program(body: str) -> str:
    return f"```python\n{body.strip()}\n```"


def test_answers_come_back_in_input_order_at_the_batch_price(tmp_path):
    chunks = ["x" * i for i in range(7)]
    result, api = batched_run(tmp_path, chunks)
    assert result.status == "done", result.error
    # The fake API streams results in reverse; each slot still gets its own item's answer.
    assert result.answer == list(range(7))
    assert len(api.batches) == 1
    (start,) = events(result, "batch.start")
    assert start["requests"] == 7 and (start["first_item"], start["last_item"]) == (0, 6)
    assert start["span"] == "t1.m1.b1" and start["parent"] == "t1.m1"
    assert sorted(e["item"] for e in events(result, "batch.result")) == list(range(7))
    (end,) = events(result, "batch.end")
    assert end["status"] == "ended" and end["succeeded"] == 7 and end["polls"] >= 2
    # Usage is what the API reported; the cost is half the list price (1 and 5 USD per Mtok).
    assert (result.usage.worker_input_tokens, result.usage.worker_output_tokens) == (7 * 11, 7 * 3)
    assert result.usage.worker_calls == 7 and result.usage.unsettled_tokens == 0
    assert end["cost"] == pytest.approx(7 * (11 * 1.0 + 3 * 5.0) / 1e6 / 2)
    # The batch entries were Messages API requests of the worker's prompt, with the schema's note.
    sent = next(iter(api.batches.values())).requests
    assert [r["custom_id"] for r in sent] == [f"i{i}" for i in range(7)]
    assert "<text>\nxx\n</text>" in sent[2]["params"]["messages"][0]["content"]
    assert sent[0]["params"]["model"] == "claude-haiku-4-5" and "extra_body" not in sent[0]["params"]


def test_each_request_that_fails_is_a_failure_in_its_own_slot(tmp_path):
    outcomes = {
        "i1": ("errored", "prompt is too long"),
        "i2": ("canceled",),
        "i3": ("expired",),
        "i4": ("succeeded", "not a number"),
    }

    def outcome(custom_id, params):
        return outcomes.get(custom_id, ("succeeded", "5"))

    body = """
answers = pmap(lambda c: tool.worker(c, "How many x?", schema={"type": "integer"}), data, batch=True)
done([a if not isinstance(a, Failure) else [a.kind, a.message] for a in answers])
"""
    result, _ = batched_run(tmp_path, ["a", "b", "c", "d", "e", "f"], program=program(body), batch_outcome=outcome)
    assert result.status == "done", result.error
    answers = result.answer
    assert answers[0] == 5 and answers[5] == 5
    assert answers[1][0] == "ProviderError" and "invalid_request_error: prompt is too long" in answers[1][1]
    assert answers[2][0] == "ProviderError" and "cancelled before this request ran" in answers[2][1]
    assert answers[3][0] == "ProviderError" and "expired (24 hours)" in answers[3][1]
    assert answers[4][0] == "ToolError" and "does not match the schema" in answers[4][1]
    assert "no repair request" in answers[4][1]
    assert result.failed_calls == {"ProviderError": 3, "ToolError": 1}
    (end,) = events(result, "batch.end")
    assert (end["succeeded"], end["errored"], end["canceled"], end["expired"]) == (3, 1, 1, 1)
    statuses = {e["item"]: e["status"] for e in events(result, "batch.result")}
    assert statuses == {0: "succeeded", 1: "errored", 2: "canceled", 3: "expired", 4: "succeeded", 5: "succeeded"}
    # Only the requests the model answered are charged: two good replies and the bad JSON one.
    assert result.usage.worker_calls == 3 and result.usage.worker_input_tokens == 3 * 11


def test_a_cancel_the_provider_refuses_is_never_reported_as_a_cancel(tmp_path):
    body = """
answers = pmap(lambda c: tool.worker(c, "How many x?"), data, batch=True, timeout=0.5)
done([a if not isinstance(a, Failure) else a.kind for a in answers])
"""
    result, api = batched_run(tmp_path, ["x", "xx"], program=program(body), batch_polls=10**9,
                              refuse_cancels=True)
    assert result.answer == ["TimeLimitExceeded"] * 2
    assert list(api.cancels) == list(api.batches)
    (end,) = events(result, "batch.end")
    message = end["error"]["message"]
    assert "not confirmed cancelled: the provider refused the cancel" in message
    assert "cannot be canceled" in message and "cancelled at the provider" not in message


def test_an_expired_batch_leaves_a_failure_in_every_slot(tmp_path):
    result, _ = batched_run(tmp_path, ["x", "xx"], expire_batches=True)
    assert result.answer == ["ProviderError", "ProviderError"]
    (end,) = events(result, "batch.end")
    assert end["expired"] == 2 and end["succeeded"] == 0
    assert result.usage.worker_calls == 0 and result.usage.unsettled_tokens == 0


def test_a_clock_cancels_the_batch_at_the_provider_and_the_result_says_so(tmp_path):
    body = """
answers = pmap(lambda c: tool.worker(c, "How many x?"), data, batch=True, timeout=0.5)
done([a if not isinstance(a, Failure) else a.kind for a in answers])
"""
    result, api = batched_run(tmp_path, ["x", "xx", "xxx"], program=program(body), batch_polls=10**9)
    assert result.status == "done", result.error
    assert result.answer == ["TimeLimitExceeded"] * 3
    assert list(api.cancels) == list(api.batches)  # the one batch was cancelled at the provider
    (end,) = events(result, "batch.end")
    assert end["status"] == "canceled" and end["canceled"] == 3
    assert "cancelled at the provider" in end["error"]["message"]
    (pmap_end,) = events(result, "pmap.end")
    assert pmap_end["timed_out"] and pmap_end["failed"] == 3
    assert result.failed_calls == {"TimeLimitExceeded": 3}
    # The provider may bill what it processed before the cancel: the reservation stays charged.
    (start,) = events(result, "batch.start")
    assert result.usage.unsettled_tokens == start["reserved_tokens"] > 0


def test_the_whole_batch_is_reserved_before_anything_is_submitted(tmp_path):
    body = """
try:
    pmap(lambda c: tool.worker(c, "How many x?"), data, batch=True)
except BudgetExceeded as e:
    done(str(e))
"""
    # Each request reserves about 1,100 tokens (1,024 of output); 40 cannot fit in 20,000.
    limits = Limits(max_tokens=20_000, feedback_reserve_tokens=0, max_turns=1, **FAST)
    result, api = batched_run(tmp_path, [f"chunk {i}" for i in range(40)], program=program(body), limits=limits)
    assert result.status == "done", result.error
    assert "a batch of 40 worker requests needs" in result.answer
    assert api.batches == {}  # nothing was submitted


def test_the_reservation_is_each_request_worst_case_and_is_settled_with_the_reported_usage(tmp_path):
    result, _ = batched_run(tmp_path, ["x" * 50, "y" * 500])
    (start,) = events(result, "batch.start")
    # Input counted with a margin, plus every request's whole output allowance (1,024 tokens).
    assert 2 * 1024 < start["reserved_tokens"] < 2 * 1024 + 2 * 600
    assert result.usage.worker_input_tokens == 22 and result.usage.unsettled_tokens == 0


def test_more_requests_than_one_batch_takes_go_in_several(tmp_path, monkeypatch):
    monkeypatch.setattr(_batch_send, "MAX_BATCH_REQUESTS", 3)
    result, api = batched_run(tmp_path, ["x" * i for i in range(8)])
    assert result.answer == list(range(8))
    assert [len(b.requests) for b in api.batches.values()] == [3, 3, 2]
    starts = events(result, "batch.start")
    assert [(s["first_item"], s["last_item"]) for s in starts] == [(0, 2), (3, 5), (6, 7)]
    assert [e["span"] for e in events(result, "batch.end")] == ["t1.m1.b1", "t1.m1.b2", "t1.m1.b3"]


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        ("lambda c: tool.worker(c, 'a') + '!'", "used its tool.worker answer"),
        ("lambda c: [tool.worker(c, 'a'), tool.worker(c, 'b')]", "called tool.worker twice"),
        ("lambda c: tool.lookup(c)", "called tool.lookup"),
        ("lambda c: len([tool.worker(c, 'a')])", "returned something other than its tool.worker answer"),
        ("lambda c: pmap(lambda d: d, [c])", "cannot run a pmap or pcalls of its own"),
    ],
)
def test_a_function_of_another_shape_is_refused_with_what_to_do(tmp_path, fn, message):
    body = f"""
try:
    pmap({fn}, data, batch=True)
except ValueError as e:
    done(str(e))
"""

    def lookup(text: str) -> str:
        """Look a text up."""
        return text

    with FakeAPI() as api:
        from ptcrun import AnthropicProvider

        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01)
        rt = Runtime(planner=ScriptedProvider([program(body)]), worker=worker, tools=[lookup],
                     limits=Limits(**FAST), transcript_dir=tmp_path)
        result = rt.run("g", ["x", "y"])
    assert result.status == "done", result.error
    assert message in result.answer
    assert api.batches == {}


def test_items_that_raise_or_ask_nothing_keep_their_own_slots(tmp_path):
    body = """
def ask(c):
    if c == "boom":
        raise KeyError("no such thing")
    if c == "skip":
        return "kept"
    return tool.worker(c, "How many x?", schema={"type": "integer"})

out = pmap(ask, data, batch=True)
done([o if not isinstance(o, Failure) else o.kind for o in out])
"""
    result, api = batched_run(tmp_path, ["xx", "boom", "skip", "x"], program=program(body))
    assert result.answer == [2, "KeyError", "kept", 1]
    assert len(next(iter(api.batches.values())).requests) == 2


def test_a_worker_without_a_batch_engine_is_refused_clearly(tmp_path):
    body = """
try:
    pmap(lambda c: tool.worker(c, "a"), data, batch=True)
except ToolError as e:
    done(str(e))
"""
    worker = OpenAICompatProvider("m", base_url="http://127.0.0.1:9/v1")
    rt = Runtime(planner=ScriptedProvider([program(body)]), worker=worker, limits=Limits(**FAST),
                 transcript_dir=tmp_path)
    result = rt.run("g", ["x"])
    assert result.status == "done", result.error
    assert "Message Batches API" in result.answer and "Drop batch=True" in result.answer


def test_fail_fast_and_a_non_bool_batch_are_refused(tmp_path):
    body = """
out = []
for kwargs in [{"fail_fast": True}, {}]:
    try:
        pmap(lambda c: tool.worker(c, "a"), data, batch=kwargs.get("fail_fast", 1), **kwargs)
    except (ValueError, TypeError) as e:
        out.append(str(e))
done(out)
"""
    result, _ = batched_run(tmp_path, ["x"], program=program(body))
    assert "takes no fail_fast=True" in result.answer[0]
    assert "batch= takes True or False" in result.answer[1]


@pytest.mark.parametrize(
    "attack",
    [
        "tool._batch(op='run', batch=1)",
        "getattr(tool, '_batch')(op='run', batch=1)",
        "tool.__getattr__('_batch')",
    ],
)
def test_a_program_cannot_reach_the_batch_engine_directly(tmp_path, attack):
    body = f"""
try:
    {attack}
    done("reached")
except Exception as e:
    done(type(e).__name__)
"""
    result, api = batched_run(tmp_path, ["x"], program=program(body))
    assert result.answer != "reached"
    assert api.batches == {} and api.requests == 0


def test_every_view_shows_the_batch_and_how_its_requests_ended(tmp_path):
    from ptcrun import Transcript
    from ptcrun.transcript._html import render_html
    from ptcrun.transcript._views import render_summary, render_tree

    def outcome(custom_id, params):
        return ("errored", "overloaded") if custom_id == "i1" else ("succeeded", "1")

    result, api = batched_run(tmp_path, ["x", "y", "z"], batch_outcome=outcome)
    (batch_id,) = api.batches
    transcript = Transcript.load(result.transcript)
    summary = render_summary(transcript)
    assert "batches    1 batch of 3 worker requests: 2 succeeded, 1 errored, $" in summary
    assert "at the batch price" in summary
    tree = render_tree(transcript)
    assert f"batch {batch_id}: 3 requests (items 0-2), 2 succeeded, 1 errored  ended" in tree
    page = render_html(transcript)
    assert f'data-batch="{batch_id}"' in page and "3 requests (items 0-2) · ended" in page


def test_a_run_clock_cancels_the_batch_and_the_run_ends_timeout(tmp_path):
    body = """
answers = pmap(lambda c: tool.worker(c, "How many x?"), data, batch=True)
done(answers)
"""
    limits = Limits(call_timeout=1, pmap_timeout=1.5, turn_timeout=1.5, run_timeout=1.5)
    result, api = batched_run(tmp_path, ["x", "xx"], program=program(body), batch_polls=10**9, limits=limits)
    assert result.status == "timeout"
    assert list(api.cancels) == list(api.batches) and len(api.batches) == 1
    (end,) = events(result, "batch.end")
    assert end["status"] == "canceled"
    assert result.usage.unsettled_tokens > 0


# -- a child that does not play by the rules: the host checks every step it is sent ----------


def _engine():
    from ptcrun import AnthropicProvider
    from ptcrun.runtime._budget import Ledger
    from ptcrun.runtime._counts import WorkerCounts

    worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url="http://127.0.0.1:9")
    return _batches.BatchEngine(provider=worker, ledger=Ledger(10**6), limits=Limits(max_pmap_items=10),
                                emit=lambda event: None, pmap_span=lambda pmap: f"t1.m{pmap}",
                                counts=WorkerCounts())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "add", "batch": "1", "requests": []}, "names no batch"),
        ({"op": "add", "batch": 1, "requests": "x"}, "sent no requests"),
        ({"op": "add", "batch": 1, "requests": [[0, "text", {}]]}, r"not \[index, args, kwargs\]"),
        ({"op": "add", "batch": 1, "requests": [[True, [], {}]]}, r"not \[index, args, kwargs\]"),
        ({"op": "add", "batch": 1, "requests": [[10, ["t", "i"], {}]]}, "out of range"),
        ({"op": "add", "batch": 1, "requests": [[-1, ["t", "i"], {}]]}, "out of range"),
        ({"op": "add", "batch": 1, "requests": [[0, ["t", "i"], {}]] * 2}, "two batch requests"),
        ({"op": "add", "batch": 1, "requests": [[i, ["t", "i"], {}] for i in range(11)]}, "Limits.max_pmap_items"),
        ({"op": "run", "batch": 7}, "no batch to run"),
        ({"op": "take", "batch": 7, "start": 0}, "no batch results"),
        ({"op": "drop", "batch": 1}, "is not known"),
    ],
)
async def test_the_host_refuses_batch_steps_that_break_the_rules(kwargs, message):
    from ptcrun import errors

    with pytest.raises(errors.PtcrunError, match=message):
        await _engine()(kwargs, 1)


async def test_a_bad_request_fills_its_own_slot_with_an_argument_error():
    engine = _engine()
    requests = [
        [0, ["t", "i"], {"max_tokens": 10**9}],
        [1, ["t"], {}],
        [2, ["t", "i"], {"colour": "red"}],
        [3, ["t", "i"], {"schema": {"type": "string", "pattern": "(a+)+$"}}],
        [4, [1, "i"], {}],
    ]
    await engine({"op": "add", "batch": 1, "first": True, "requests": requests}, 1)
    collected = engine._collected[1]
    kinds = {index: item.entry[3]["type"] for index, item in collected.requests.items()}
    assert kinds == dict.fromkeys(range(5), "ToolArgumentError")
    # Nothing valid is left to send, so running it submits nothing and returns the five errors.
    assert await engine({"op": "run", "batch": 1}, 1) == {"count": 5}
    taken = await engine({"op": "take", "batch": 1, "start": 0}, 1)
    assert [entry[0] for entry in taken] == [0, 1, 2, 3, 4] and not any(entry[1] for entry in taken)


def test_the_line_progress_tells_the_batch_as_it_goes(tmp_path):
    import io

    from ptcrun import AnthropicProvider
    from ptcrun.transcript._progress import LineProgress

    from .batch_runs import BATCHED, count_x

    out = io.StringIO()
    with FakeAPI(reply=count_x) as api:
        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01)
        rt = Runtime(planner=ScriptedProvider([BATCHED]), worker=worker, limits=Limits(**FAST),
                     transcript_dir=tmp_path, observers=[LineProgress(out)])
        result = rt.run("g", ["x", "xx"])
    (batch_id,) = api.batches
    assert result.answer == [1, 2]
    said = out.getvalue()
    assert f"turn 1: batch {batch_id} submitted: 2 worker requests (items 0-1)" in said
    assert "turn 1: batch t1.m1.b1 ended: 2 succeeded (" in said


async def test_a_body_streams_exactly_its_size_of_valid_json_and_entries_share_their_common_part():
    from ptcrun import AnthropicProvider
    from ptcrun.runtime._worker import worker_prompt, worker_request
    from ptcrun.runtime.providers._base import Message
    from ptcrun.runtime.providers._batches import AnthropicBatches, BatchBody

    api = AnthropicBatches(AnthropicProvider("claude-haiku-4-5", api_key="k", base_url="http://127.0.0.1:9"))
    texts = ["a", "ü \"quoted\"\n", "x" * 3_000_000, "\ud800 lone"]
    requests = [worker_request((Message("user", worker_prompt(t, "Count.")),), 64) for t in texts]
    entries = [api.entry(f"i{n}", r) for n, r in enumerate(requests)]
    assert len({id(tail) for _, tail in entries}) == 1  # one shared copy of the common part
    body = BatchBody(entries)
    streamed = b"".join([chunk async for chunk in body.stream()])
    assert len(streamed) == body.size
    sent = json.loads(streamed)["requests"]
    assert [e["custom_id"] for e in sent] == ["i0", "i1", "i2", "i3"]
    assert sent[1]["params"]["messages"][0]["content"] == requests[1].messages[0].content
    assert sent[0]["params"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    # The request read back from its entry is the one encoded (the transcript records it).
    assert [AnthropicBatches.request_of(e) for e in entries] == requests


def test_a_reply_cut_at_its_output_limit_says_so_in_the_transcript_and_on_resume(tmp_path):
    from ptcrun import AnthropicProvider
    from ptcrun.runtime._resume import load_recorded

    def outcome(custom_id, params):
        return ("succeeded", "a long answer, cut", "max_tokens") if custom_id == "i0" else ("succeeded", "fine")

    body = """
done(pmap(lambda c: tool.worker(c, "Describe."), data, batch=True))
"""
    result, api = batched_run(tmp_path, ["a", "b"], program=program(body), batch_outcome=outcome)
    assert result.answer == ["a long answer, cut", "fine"]
    # As llm.end records a live reply's stop_reason, batch.result records a batched one's.
    stops = {e["item"]: e["stop_reason"] for e in events(result, "batch.result")}
    assert stops == {0: "max_tokens", 1: "end_turn"}
    first = json.loads(result.transcript.read_text().splitlines()[0])
    recorded = load_recorded(result.transcript, goal=first["goal"], data_summary=first["data"],
                             planner=ScriptedProvider(["x"]),
                             worker=AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url))
    assert sorted(r.stop_reason or "" for r in recorded.worker.values()) == ["end_turn", "max_tokens"]


def test_a_batch_that_cannot_be_reserved_counts_its_requests_as_failed_even_when_caught(tmp_path):
    # The program goes on after the refused batch: its answer was built without those calls,
    # and the run must say so (as a live pmap's failed items do), not end clean.
    from ptcrun import Transcript
    from ptcrun.transcript._views import render_summary, render_tree

    body = """
try:
    pmap(lambda c: tool.worker(c, "How many x?"), data, batch=True)
except BudgetExceeded:
    done("a guess")
"""
    limits = Limits(max_tokens=20_000, feedback_reserve_tokens=0, max_turns=1, **FAST)
    result, api = batched_run(tmp_path, [f"chunk {i}" for i in range(40)], program=program(body), limits=limits)
    assert result.status == "done" and result.answer == "a guess"
    assert api.batches == {}
    assert result.failed_calls == {"BudgetExceeded": 40} and result.partial
    transcript = Transcript.load(result.transcript)
    assert "40 of 40 calls failed" in render_summary(transcript)
    assert "pmap m1: 40 items, 0 ok, 40 failed" in render_tree(transcript)
