"""Resume and pmap(batch=True): a run killed before its batch was submitted, while it was polled,
or after its results were read is resumed to the same answer, and no request is paid twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ptcrun import AnthropicProvider, Limits, Price, Runtime, ScriptedProvider, Transcript
from ptcrun.runtime._resume import load_recorded
from ptcrun.transcript._views import render_summary, render_tree

from .batch_runs import count_x
from .providers.fakeapi import FakeAPI

FAN_OUT = """```python
answers = pmap(lambda c: tool.worker(c, "How many x?", schema={"type": "integer"}), data, batch=True)
print(answers)
```"""
DONE = """```python
done(sum(answers))
```"""
GOAL = "How many x in all?"
CHUNKS = ["x", "xx", "xxx", "x"]  # the last is a copy of the first: the batch sends it once
LIMITS = {"call_timeout": 30, "pmap_timeout": 60, "turn_timeout": 90, "run_timeout": 120}

# The run, in a process of its own so that it can be killed for real.
SCRIPT = f"""
import os, signal, sys
from ptcrun import AnthropicProvider, Limits, Price, Runtime, ScriptedProvider

FAN_OUT, DONE = {FAN_OUT!r}, {DONE!r}


def planner(request):
    turn = (len(request.messages) + 1) // 2
    if os.environ.get("KILL_AT") == f"planner{{turn}}":
        os.kill(os.getpid(), signal.SIGKILL)
    return FAN_OUT if turn == 1 else DONE


worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=sys.argv[1], batch_poll=0.05,
                           batch_poll_max=0.05, price=Price(1.0, 5.0))
rt = Runtime(planner=ScriptedProvider(planner), worker=worker, limits=Limits(**{LIMITS!r}),
             transcript_dir=sys.argv[2])
rt.run({GOAL!r}, {CHUNKS!r})
"""


def planner(request) -> str:
    return FAN_OUT if len(request.messages) == 1 else DONE


def resume(api: FakeAPI, folder: Path, out: Path):
    worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01,
                               batch_poll_max=0.05, price=Price(1.0, 5.0))
    rt = Runtime(planner=ScriptedProvider(planner), worker=worker, limits=Limits(**LIMITS), transcript_dir=out)
    return rt.run(GOAL, CHUNKS, resume=folder)


def killed(api: FakeAPI, tmp_path: Path, *, kill_at: str = "", kill_on: str = "") -> Path:
    """Run the script against ``api`` until it is SIGKILLed, at the planner's turn ``kill_at`` or
    when the fake API is first asked the batch step ``kill_on``; return its run folder."""
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, api.url, str(out)],
                               env={**os.environ, "KILL_AT": kill_at}, stderr=subprocess.PIPE, text=True)

    def on_batch(step: str) -> object:
        if step == kill_on:
            api.on_batch = None
            process.kill()
            process.wait()
            return "drop"
        return None

    api.on_batch = on_batch if kill_on else None
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err
    (folder,) = [f for f in out.iterdir() if not f.name.startswith(".")]
    assert Transcript.load(folder).status == "incomplete"
    return folder


def events(path: Path, kind: str) -> list[dict]:
    out = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in out if e["type"] == kind]


def submitted(api: FakeAPI) -> list[str]:
    return sorted(r["params"]["messages"][0]["content"].split("<text>\n", 1)[1].split("\n</text>", 1)[0]
                  for b in api.batches.values() for r in b.requests)


def test_killed_before_the_batch_was_submitted_submits_it_on_resume(tmp_path):
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="create")
        assert api.batches == {}  # the create was cut off before the API took it
        result = resume(api, folder, tmp_path / "runs")
    assert result.status == "done", result.error
    assert result.answer == 7
    assert submitted(api) == ["x", "xx", "xxx"]
    assert result.replayed == {"planner": 1, "worker": 0}
    assert result.usage.worker_calls == 3


def test_killed_while_the_batch_was_polled_reads_that_batch_instead_of_paying_again(tmp_path):
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        (start,) = events(folder / "transcript.jsonl", "batch.start")
        assert list(api.batches) == [start["batch_id"]] and events(folder / "transcript.jsonl", "batch.end") == []
        result = resume(api, folder, tmp_path / "runs")
        # The batch it read has the killed run's custom_ids, so each result names its key, and
        # a resume of the resumed run replays them all.
        again = resume(api, result.transcript.parent, tmp_path / "again")
    assert result.status == "done", result.error
    assert result.answer == 7
    # One batch was ever created: the resumed run read the one the killed run had submitted.
    assert list(api.batches) == [start["batch_id"]] and submitted(api) == ["x", "xx", "xxx"]
    (again_start,) = events(result.transcript, "batch.start")
    assert again_start["batch_id"] == start["batch_id"] and again_start["resumed"] is True
    assert again_start["requests"] == 3
    (end,) = events(result.transcript, "batch.end")
    assert end["status"] == "ended" and end["succeeded"] == 3
    # Its requests are charged once, to the run that read them.
    assert result.usage.worker_calls == 3 and result.usage.unsettled_tokens == 0
    assert result.replayed == {"planner": 1, "worker": 0}
    assert f"batch {start['batch_id']}: 3 requests" in render_tree(Transcript.load(result.transcript))
    assert all(e["key"] for e in events(result.transcript, "batch.result"))
    assert again.answer == 7 and again.replayed == {"planner": 2, "worker": 4}
    assert again.usage.total_tokens == 0


def test_killed_after_the_results_were_read_replays_them(tmp_path):
    with FakeAPI(reply=count_x) as api:
        folder = killed(api, tmp_path, kill_at="planner2")
        assert len(events(folder / "transcript.jsonl", "batch.result")) == 3
        result = resume(api, folder, tmp_path / "runs")
    assert result.status == "done", result.error
    assert result.answer == 7
    assert len(api.batches) == 1  # nothing submitted on resume
    assert events(result.transcript, "batch.start") == []
    assert result.replayed == {"planner": 1, "worker": 4}
    assert result.usage.worker_calls == 0 and result.usage.total_tokens == result.usage.planner_input_tokens + \
        result.usage.planner_output_tokens
    ends = [e for e in events(result.transcript, "llm.end") if e["role"] == "worker"]
    assert sorted(e["span"] for e in ends) == [f"t1.m1.i{i}.llm1" for i in range(4)]
    assert {e["cached"] for e in ends} == {"resume"}


def test_killed_while_the_results_were_read_replays_those_and_reads_the_rest(tmp_path):
    with FakeAPI(reply=count_x) as api:
        folder = killed(api, tmp_path, kill_at="planner2")
        # As a kill in the middle of reading the results leaves it: two results read, no end.
        file = folder / "transcript.jsonl"
        lines = file.read_text().splitlines(keepends=True)
        cut = [i for i, line in enumerate(lines) if '"batch.result"' in line][1] + 1
        file.write_text("".join(lines[:cut]))
        recorded = load_recorded(folder, goal=GOAL, data_summary=json.loads(lines[0])["data"],
                                 planner=ScriptedProvider(planner), worker=_worker(api))
        (unread,) = recorded.batches.values()
        assert len(unread) == 1
        result = resume(api, folder, tmp_path / "runs")
    assert result.answer == 7
    assert len(api.batches) == 1
    (start,) = events(result.transcript, "batch.start")
    assert start["resumed"] and start["requests"] == 1
    # The two results read are replayed; the third is read from the batch, its copy from it.
    assert result.replayed["worker"] == 2 and result.usage.worker_calls == 1 and result.cached_calls == 1


def _worker(api: FakeAPI) -> AnthropicProvider:
    return AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url)


def test_a_batch_the_provider_no_longer_knows_is_submitted_anew(tmp_path):
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        api.batches.clear()  # gone from the provider (or another API key's)
        result = resume(api, folder, tmp_path / "runs")
    assert result.answer == 7
    (start,) = events(result.transcript, "batch.start")
    assert not start["resumed"] and submitted(api) == ["x", "xx", "xxx"]


@pytest.mark.parametrize("field", ["keys", "provider"])
def test_a_batch_recorded_without_keys_or_for_another_worker_is_not_read(tmp_path, field):
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        file = folder / "transcript.jsonl"
        changed = []
        for line in file.read_text().splitlines():
            event = json.loads(line)
            if event["type"] == "batch.start":
                event[field] = None if field == "keys" else "anthropic:another-model"
            changed.append(json.dumps(event) + "\n")
        file.write_text("".join(changed))
        result = resume(api, folder, tmp_path / "runs")
    assert result.answer == 7
    assert len(api.batches) == 2  # without the keys it cannot know the requests are the same


@pytest.mark.parametrize("ended", ["expired", "canceled"])
def test_requests_an_unread_batch_never_ran_are_submitted_anew_on_resume(tmp_path, ended):
    # A run resumed a day later finds its batch expired (or cancelled at the console): its
    # requests never ran and cost nothing, so the resumed run sends them, not their failures.
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        (old,) = api.batches
        api.batch_outcome = lambda custom_id, params: (ended,)

        def on_batch(step: str) -> None:
            if step == "create":
                api.batch_outcome = None  # the new batch runs

        api.on_batch = on_batch
        result = resume(api, folder, tmp_path / "runs")
    assert result.status == "done", result.error
    assert result.answer == 7
    assert result.failed_calls == {} and not result.partial
    assert len(api.batches) == 2 and sorted(r["custom_id"] for r in api.batches[old].requests) == ["i0", "i1", "i2"]
    first, again = events(result.transcript, "batch.start")
    assert first["batch_id"] == old and first["resumed"] and not again["resumed"] and again["requests"] == 3
    ends = events(result.transcript, "batch.end")
    assert [(e["status"], e[ended], e["succeeded"]) for e in ends] == [("ended", 3, 0), ("ended", 0, 3)]
    # Charged once, for the requests that ran.
    assert result.usage.worker_calls == 3 and result.usage.unsettled_tokens == 0
    # The summary says why there are twice as many requests as were asked.
    summary = render_summary(Transcript.load(result.transcript))
    assert f"2 batches of 6 worker requests: 3 succeeded, 3 {ended}" in summary
    assert "1 was the resumed run's, read by its id; what did not succeed there was sent again" in summary


def test_a_clock_while_the_resent_requests_run_cancels_only_the_batch_still_running(tmp_path):
    with FakeAPI(reply=count_x, batch_polls=3) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        (old,) = api.batches
        api.expire_batches = True

        def on_batch(step: str) -> None:
            if step == "create":
                api.expire_batches, api.batch_polls = False, 10**6  # the new batch never ends

        api.on_batch = on_batch
        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01,
                                   batch_poll_max=0.05, price=Price(1.0, 5.0))
        limits = Limits(**{**LIMITS, "call_timeout": 1, "pmap_timeout": 1})
        rt = Runtime(planner=ScriptedProvider(planner), worker=worker, limits=limits,
                     transcript_dir=tmp_path / "runs")
        result = rt.run(GOAL, CHUNKS, resume=folder)
    (new,) = set(api.batches) - {old}
    assert api.cancels == [new]  # the batch read to its end is not cancelled
    ends = {e["span"]: e["status"] for e in events(result.transcript, "batch.end")}
    starts = {e["span"]: e["batch_id"] for e in events(result.transcript, "batch.start")}
    assert len(events(result.transcript, "batch.end")) == len(ends) == 2  # one end per batch
    assert {starts[span]: status for span, status in ends.items()} == {old: "ended", new: "canceled"}
    assert result.failed_calls == {"TimeLimitExceeded": 4}  # the clock, said as such


def test_a_resumed_batch_the_budget_cannot_hold_is_cancelled_at_the_provider(tmp_path):
    # The killed run's batch runs on at the provider; a resume with too small a budget for it
    # must not leave it there to be billed.
    with FakeAPI(reply=count_x, batch_polls=50) as api:
        folder = killed(api, tmp_path, kill_on="retrieve")
        (start,) = events(folder / "transcript.jsonl", "batch.start")
        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=api.url, batch_poll=0.01,
                                   batch_poll_max=0.05, price=Price(1.0, 5.0))
        rt = Runtime(planner=ScriptedProvider(planner), worker=worker, transcript_dir=tmp_path / "runs",
                     limits=Limits(**{**LIMITS, "max_tokens": 6_000}))
        result = rt.run(GOAL, CHUNKS, resume=folder)
        cancels = list(api.cancels)
    assert cancels == [start["batch_id"]]
    (end,) = events(result.transcript, "batch.end")
    assert end["status"] == "error"
    assert end["error"]["type"] == "BudgetExceeded"
    assert end["error"]["message"].endswith(f"batch {start['batch_id']} was cancelled at the provider")
    assert result.failed_calls  # the pmap's requests failed: never a silent partial answer
