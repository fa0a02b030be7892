"""The result cache: identical worker requests answered once, within a run and from a file."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import trio

from ptcrun import Limits, Price, Reply, Request, Runtime, ScriptedProvider, Transcript, errors
from ptcrun.runtime._cache import DiskCache, ReplyCache, request_key
from ptcrun.runtime.providers._base import Message
from ptcrun.transcript._html import render_html
from ptcrun.transcript._views import render_show, render_summary, render_tree


def block(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def count_errors(request: Request) -> str:
    return str(request.messages[0].content.split("<text>", 1)[1].count("ERROR"))


LIMITS = {"call_timeout": 10, "pmap_timeout": 20, "turn_timeout": 30, "run_timeout": 60}
FAN_OUT = """
counts = pmap(lambda c: tool.worker(c, "Count ERROR lines.", schema={"type": "integer"}), data)
print(counts)
done(sum(counts))
"""
# Three distinct chunks, five chunks in all.
CHUNKS = ["ERROR a", "ERROR b\nERROR c", "ERROR a", "fine", "ERROR a"]


def runtime(worker, tmp_path, *, program=FAN_OUT, cache=None, **limits) -> Runtime:
    return Runtime(
        planner=ScriptedProvider([block(program)]),
        worker=worker,
        limits=Limits(**{**LIMITS, **limits}),
        transcript_dir=tmp_path / "runs",
        cache=cache,
    )


def llm_ends(result) -> list[dict]:
    events = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    return [e for e in events if e["type"] == "llm.end" and e["role"] == "worker"]


# -- within a run --------------------------------------------------------------------------


def test_identical_requests_in_a_run_are_sent_once_and_cost_nothing(tmp_path):
    worker = ScriptedProvider(count_errors)
    result = runtime(worker, tmp_path).run("Count the errors.", CHUNKS)
    assert result.status == "done" and result.answer == 5
    assert result.turns[0].output == "[1, 2, 1, 0, 1]\n"
    assert len(worker.requests) == 3  # one per distinct chunk
    assert result.usage.worker_calls == 3
    assert result.cached_calls == 2
    ends = llm_ends(result)
    cached = [e for e in ends if e["cached"] is not None]
    assert [e["cached"] for e in cached] == ["run", "run"]
    assert all(e["input_tokens"] == e["output_tokens"] == 0 for e in cached)
    assert sum(e["input_tokens"] for e in ends) == result.usage.worker_input_tokens
    assert all(e["cached"] is None and e["input_tokens"] > 0 for e in ends if e not in cached)
    events = [json.loads(line) for line in result.transcript.read_text().splitlines()]
    assert sorted(str(e["cached"]) for e in events if e["type"] == "call.end") == ["None"] * 3 + ["run"] * 2


def test_concurrent_identical_calls_share_one_request_in_flight(tmp_path):
    in_flight, most = 0, 0

    async def slow(request: Request) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await trio.sleep(0.2)
        in_flight -= 1
        return "same"

    worker = ScriptedProvider(slow)
    program = 'print(pmap(lambda i: tool.worker("one text", "Say it."), range(12)))\ndone(1)'
    result = runtime(worker, tmp_path, program=program, max_concurrency=12).run("Ask twelve times.", ["x"])
    assert result.turns[0].output == str(["same"] * 12) + "\n"
    assert len(worker.requests) == 1 and most == 1
    assert result.cached_calls == 11
    assert [e["cached"] for e in llm_ends(result)].count("run") == 11


def test_a_failed_request_is_not_shared_the_next_identical_call_sends_it_again(tmp_path):
    seen = 0

    async def fails_first(request: Request) -> str:
        nonlocal seen
        seen += 1
        await trio.sleep(0.1)
        if seen == 1:
            raise RuntimeError("overloaded")
        return "fine"

    worker = ScriptedProvider(fails_first)
    program = 'print(pmap(lambda i: tool.worker("one text", "Say it."), range(4)))\ndone(1)'
    result = runtime(worker, tmp_path, program=program, max_concurrency=4).run("Ask four times.", ["x"])
    output = result.turns[0].output
    assert output.count("'fine'") == 3 and output.count("Failure(") == 1
    assert len(worker.requests) == 2  # the failure, then one live request the other two share
    assert result.cached_calls == 2
    assert result.failed_calls == {"ProviderError": 1}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('tool.worker("ERROR a", "Count ERROR lines.")', 'tool.worker("ERROR a", "Count errors.")'),
        ('tool.worker("ERROR a", "Count.")', 'tool.worker("ERROR a ", "Count.")'),
        ('tool.worker("ERROR a", "Count.")', 'tool.worker("ERROR a", "Count.", max_tokens=50)'),
        ('tool.worker("ERROR a", "Count.", schema={"type": "integer"})',
         'tool.worker("ERROR a", "Count.", schema={"type": "number"})'),
        ('tool.worker("ERROR a", "Count.")', 'tool.worker("ERROR a", "Count.", schema={"type": "integer"})'),
    ],
    ids=["instruction", "text", "max_tokens", "schema", "schema-or-none"],
)
def test_calls_that_differ_in_what_decides_the_answer_are_both_sent(tmp_path, first, second):
    worker = ScriptedProvider(lambda request: "1")
    program = f"a = {first}\nb = {second}\ndone([a, b])"
    result = runtime(worker, tmp_path, program=program).run("Count.", ["x"])
    assert result.status == "done"
    assert len(worker.requests) == 2
    assert result.cached_calls == 0


def test_the_key_covers_provider_url_system_messages_output_limit_and_temperature():
    class Remote:
        def __init__(self, name: str, base_url: str) -> None:
            self.name, self.base_url, self.context_window, self.price = name, base_url, 1000, None

        async def complete(self, request: Request) -> Reply:
            raise AssertionError

    base = Request(messages=[Message("user", "hi")], system="sys", max_tokens=10)
    here = Remote("openai:m", "http://a/v1")
    key = request_key(here, base)
    changed = [
        request_key(Remote("openai:other", "http://a/v1"), base),
        request_key(Remote("openai:m", "http://b/v1"), base),
        request_key(here, Request(messages=[Message("user", "hi!")], system="sys", max_tokens=10)),
        request_key(here, Request(messages=[Message("user", "hi")], system="sys2", max_tokens=10)),
        request_key(here, Request(messages=[Message("user", "hi")], system="sys", max_tokens=11)),
        request_key(here, Request(messages=[Message("user", "hi")], system="sys", max_tokens=10, temperature=0.0)),
        request_key(here, Request(messages=[Message("user", "hi"), Message("assistant", "x")], system="sys",
                                  max_tokens=10)),
    ]
    assert len({key, *changed}) == len(changed) + 1
    # What changes the price or the bookkeeping, not the answer, is left out.
    assert request_key(here, Request(messages=[Message("user", "hi")], system="sys", max_tokens=10,
                                     cache_system=True)) == key


def test_cached_calls_are_marked_in_show_tree_and_summary(tmp_path):
    result = runtime(ScriptedProvider(count_errors), tmp_path).run("Count the errors.", CHUNKS)
    t = Transcript.load(result.transcript)
    assert t.cached_calls == 2
    assert sorted(c.cached or "-" for c in t.calls) == ["-", "-", "-", "run", "run"]
    shown = render_show(t, calls=True)
    assert shown.count("ok, cached (this run)") == 2
    assert "5 calls (2 cached)" in shown
    assert "cached     2 worker requests answered by the result cache, at no cost" in render_summary(t)
    assert render_tree(t).count("0 → 0 tokens cached (this run)") == 2


# -- across runs, from a file --------------------------------------------------------------


def test_a_second_run_with_the_cache_file_sends_no_worker_request(tmp_path):
    cache = tmp_path / "replies.sqlite"
    price = Price(input_per_mtok=1.0, output_per_mtok=5.0)
    cold_worker = ScriptedProvider(count_errors, price=price)
    cold = runtime(cold_worker, tmp_path, cache=cache).run("Count the errors.", CHUNKS)
    warm_worker = ScriptedProvider(count_errors, price=price)
    warm = runtime(warm_worker, tmp_path, cache=cache).run("Count the errors.", CHUNKS)
    assert warm.answer == cold.answer == 5
    assert warm.turns[0].output == cold.turns[0].output
    assert len(cold_worker.requests) == 3 and warm_worker.requests == []
    assert warm.usage.worker_tokens == 0 and warm.usage.worker_calls == 0
    assert warm.usage.planner_tokens == cold.usage.planner_tokens > 0
    assert warm.cached_calls == 5
    sources = sorted(e["cached"] for e in llm_ends(warm))
    assert sources == ["disk", "disk", "disk", "run", "run"]
    assert all(e["cost"] == 0.0 for e in llm_ends(warm))
    t = Transcript.load(warm.transcript)
    assert "cached (disk)" in render_show(t, calls=True)
    page = render_html(t)
    assert "5 calls (5 cached)" in page and "cached (disk), at no cost" in page
    assert len(re.findall(r'class="bar call ok[^"]* cached"', page)) == 5
    assert "<b>cached</b>5 worker requests at no cost" in page


def test_cached_calls_reserve_nothing_so_a_budget_too_small_for_them_still_fits(tmp_path):
    cache = tmp_path / "replies.sqlite"
    cold = runtime(ScriptedProvider(count_errors), tmp_path, cache=cache).run("Count the errors.", CHUNKS)
    # Enough for the planner's two turns, not for one more worker call.
    tight = cold.usage.planner_tokens * 2 + 4_000 + 1_500
    starved = runtime(ScriptedProvider(count_errors), tmp_path, max_tokens=tight).run("Count the errors.", CHUNKS)
    assert starved.failed_calls, "the budget must be too small for live worker calls"
    warm = runtime(ScriptedProvider(count_errors), tmp_path, cache=cache, max_tokens=tight)
    result = warm.run("Count the errors.", CHUNKS)
    assert result.status == "done" and result.answer == 5 and not result.failed_calls


def test_a_failed_call_is_not_kept_and_is_sent_again_next_run(tmp_path):
    cache = tmp_path / "replies.sqlite"

    def flaky(request: Request) -> str:
        if "ERROR b" in request.messages[0].content:
            raise RuntimeError("overloaded")
        return count_errors(request)

    program = FAN_OUT.replace("sum(counts)", "sum(c for c in counts if isinstance(c, int))")
    cold = runtime(ScriptedProvider(flaky), tmp_path, program=program, cache=cache).run("Count.", CHUNKS)
    assert cold.answer == 3 and cold.failed_calls == {"ProviderError": 1}
    warm_worker = ScriptedProvider(count_errors)
    warm = runtime(warm_worker, tmp_path, program=program, cache=cache).run("Count.", CHUNKS)
    assert warm.answer == 5 and not warm.failed_calls
    assert len(warm_worker.requests) == 1 and "ERROR b" in warm_worker.requests[0].messages[0].content


def test_a_cached_reply_is_checked_and_repaired_as_a_live_one(tmp_path):
    cache = tmp_path / "replies.sqlite"
    replies = iter(["three", "3"])
    cold_worker = ScriptedProvider(lambda request: next(replies))
    program = 'done(tool.worker("ERROR x", "Count.", schema={"type": "integer"}))'
    cold = runtime(cold_worker, tmp_path, program=program, cache=cache).run("Count.", ["x"])
    assert cold.answer == 3 and len(cold_worker.requests) == 2  # the reply and its repair
    warm_worker = ScriptedProvider(lambda request: "unused")
    warm = runtime(warm_worker, tmp_path, program=program, cache=cache).run("Count.", ["x"])
    assert warm.answer == 3 and warm_worker.requests == []
    call = Transcript.load(warm.transcript).calls[0]
    assert [r.cached for r in call.llm] == ["disk", "disk"] and call.cached == "disk"
    (end,) = [e for e in map(json.loads, warm.transcript.read_text().splitlines()) if e["type"] == "call.end"]
    assert end["cached"] == "disk"
    cold_end = [e for e in map(json.loads, cold.transcript.read_text().splitlines()) if e["type"] == "call.end"]
    assert cold_end[0]["cached"] is None


def test_a_call_whose_repair_was_sent_is_not_marked_cached(tmp_path):
    cache = tmp_path / "replies.sqlite"
    program = 'done(tool.worker("ERROR x", "Count.", schema={"type": "integer"}))'
    runtime(ScriptedProvider(["three", "3"]), tmp_path, program=program, cache=cache).run("Count.", ["x"])
    db = sqlite3.connect(cache)
    assert db.execute("SELECT count(*) FROM replies").fetchone() == (2,)
    db.execute("DELETE FROM replies WHERE reply LIKE '%\"3\"%'")  # the repair's reply only
    db.commit()
    db.close()
    worker = ScriptedProvider(["3"])
    result = runtime(worker, tmp_path, program=program, cache=cache).run("Count.", ["x"])
    assert result.answer == 3 and len(worker.requests) == 1
    call = Transcript.load(result.transcript).calls[0]
    assert [r.cached for r in call.llm] == ["disk", None] and call.cached is None
    (end,) = [e for e in map(json.loads, result.transcript.read_text().splitlines()) if e["type"] == "call.end"]
    assert end["cached"] is None


def test_another_model_does_not_get_this_models_replies(tmp_path):
    cache = tmp_path / "replies.sqlite"
    runtime(ScriptedProvider(count_errors, name="small"), tmp_path, cache=cache).run("Count.", CHUNKS)
    other = ScriptedProvider(count_errors, name="large")
    result = runtime(other, tmp_path, cache=cache).run("Count.", CHUNKS)
    assert len(other.requests) == 3 and result.cached_calls == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database, it is a text file\n" * 100, "it is not a SQLite database"),
        (None, "it holds another format"),
    ],
    ids=["not-sqlite", "another-database"],
)
def test_a_file_that_is_not_a_ptcrun_cache_is_refused_before_the_run(tmp_path, content, message):
    cache = tmp_path / "replies.sqlite"
    if content is None:
        db = sqlite3.connect(cache)
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('format', 'someone-else')")
        db.commit()
        db.close()
    else:
        cache.write_bytes(content)
    worker = ScriptedProvider(count_errors)
    with pytest.raises(errors.ConfigError, match=message) as caught:
        runtime(worker, tmp_path, cache=cache).run("Count.", CHUNKS)
    assert "delete it" in str(caught.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert worker.requests == []


@pytest.mark.parametrize(
    "entry",
    ["[1, 2]", '{"text": 7}', '{"text": "1", "model": "m", "stop_reason": ["end"]}', "{"],
    ids=["a-list", "text-not-a-string", "stop-reason-not-a-string", "not-json"],
)
def test_a_damaged_entry_stops_the_cache_with_a_warning_and_the_run_goes_on_live(tmp_path, entry):
    cache = tmp_path / "replies.sqlite"
    runtime(ScriptedProvider(count_errors), tmp_path, cache=cache).run("Count the errors.", CHUNKS)
    db = sqlite3.connect(cache)
    db.execute("UPDATE replies SET reply = ?", (entry,))
    db.commit()
    db.close()
    worker = ScriptedProvider(count_errors)
    result = runtime(worker, tmp_path, cache=cache).run("Count the errors.", CHUNKS)
    assert result.answer == 5
    assert len(worker.requests) == 3
    assert any("failed under the run" in w and "without it" in w for w in result.warnings)


def test_a_cache_file_that_fails_under_the_run_is_dropped_with_a_warning(tmp_path):
    disk = DiskCache.open(tmp_path / "replies.sqlite")
    warnings: list[str] = []
    cache = ReplyCache(disk=disk, warn=warnings.append)
    provider = ScriptedProvider(["live"])
    request = Request(messages=[Message("user", "hi")])

    async def ask() -> tuple[str | None, str | None]:
        async with cache.claim(provider, request) as claim:
            if claim.hit is None:
                claim.keep(Reply(text="live", input_tokens=1, output_tokens=1))
        return claim.source, (claim.hit or claim.reply).text  # type: ignore[union-attr]

    disk._db.execute("DROP TABLE replies")
    assert trio.run(ask) == (None, "live")
    assert len(warnings) == 1 and "OperationalError" in warnings[0]
    assert trio.run(ask) == ("run", "live")  # the run's own answers are still shared
    disk.close()


def test_keys_of_messages_that_read_the_same_when_joined_differ():
    provider = ScriptedProvider(["x"])
    split = [
        [Message("user", "ab"), Message("assistant", "c")],
        [Message("user", "a"), Message("assistant", "bc")],
        [Message("user", 'a", "assistant", "bc')],
        [Message("user", "abc")],
    ]
    keys = {request_key(provider, Request(messages=messages)) for messages in split}
    assert len(keys) == len(split)


# -- the command line ------------------------------------------------------------------------

PLANNER_FILE = json.dumps([block(FAN_OUT)])
WORKER_FILE = '''
def respond(request):
    return str(request.messages[0].content.split("<text>", 1)[1].count("ERROR"))
'''


@pytest.fixture
def command(tmp_path):
    (tmp_path / "planner.json").write_text(PLANNER_FILE)
    (tmp_path / "worker.py").write_text(WORKER_FILE)
    (tmp_path / "log.txt").write_text("\n".join(CHUNKS) + "\n")  # six lines, four distinct
    return [
        "run", str(tmp_path / "log.txt"), "--goal", "Count the errors.", "--chunk-lines", "1",
        "--planner", f"scripted:{tmp_path / 'planner.json'}", "--worker", f"scripted:{tmp_path / 'worker.py'}",
        "--out", str(tmp_path / "runs"), "--quiet",
    ]


def test_cli_cache_answers_the_second_run_from_the_file(command, tmp_path):
    from tests.clirun import run_cli

    flags = ["--cache", str(tmp_path / "replies.sqlite")]
    code, out, err = run_cli([*command, *flags, "--json"])
    cold = json.loads(out)
    assert code == 0, err
    code, out, err = run_cli([*command, *flags])
    assert code == 0, err
    assert "cached     6 worker requests answered by the result cache, at no cost" in out
    code, out, err = run_cli([*command, *flags, "--json"])
    warm = json.loads(out)
    assert warm["answer"] == cold["answer"] == 5
    assert warm["cached_calls"] == 6 and warm["usage"]["worker_calls"] == 0
    assert cold["usage"]["worker_calls"] == 4 and cold["cached_calls"] == 2


def test_cli_cache_that_is_not_a_cache_exits_2_naming_the_flag(command, tmp_path):
    from tests.clirun import run_cli

    bad = tmp_path / "notes.txt"
    bad.write_text("my notes\n" * 200)
    code, _, err = run_cli([*command, "--cache", str(bad)])
    assert code == 2
    assert f"--cache {str(bad)!r} is not a ptcrun reply cache" in err
    assert "or pass --cache another path" in err
    assert bad.read_text() == "my notes\n" * 200


def test_two_processes_worth_of_connections_share_one_file(tmp_path):
    path = tmp_path / "replies.sqlite"
    first, second = DiskCache.open(path), DiskCache.open(path)
    reply = Reply(text="héllo\n", input_tokens=9, output_tokens=2, model="m", stop_reason="end_turn")
    first.put("k1", "scripted", reply)
    assert second.get("k1") == Reply(text="héllo\n", input_tokens=0, output_tokens=0, model="m",
                                     stop_reason="end_turn")
    second.put("k1", "scripted", Reply(text="again", input_tokens=1, output_tokens=1))
    assert first.get("k1").text == "again"  # type: ignore[union-attr]
    assert first.get("k2") is None
    first.close()
    second.close()


def test_when_the_request_in_flight_is_cancelled_a_waiting_call_sends_it():
    cache = ReplyCache()
    provider = ScriptedProvider(["x"])
    request = Request(messages=[Message("user", "hi")])
    sent: list[str] = []
    got: dict[str, str] = {}

    async def ask(name: str, latency: float) -> None:
        async with cache.claim(provider, request) as claim:
            if claim.hit is None:
                sent.append(name)
                await trio.sleep(latency)
                claim.keep(Reply(text=f"from {name}", input_tokens=1, output_tokens=1))
        got[name] = (claim.hit or claim.reply).text  # type: ignore[union-attr]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(0.1):  # the first request is cancelled in flight
                nursery.start_soon(ask, "second", 0.01)  # starts once the first is in flight
                await ask("first", 10)
        assert sent == ["first", "second"]
        assert got == {"second": "from second"}
        assert cache.hits == {"run": 0, "disk": 0, "resume": 0}

    trio.run(main)


def test_messages_name_the_flags_on_the_command_line():
    from ptcrun.cli._parser import in_cli_words

    assert in_cli_words("cache='a.sqlite' is not a cache; pass cache= another path.") == (
        "--cache 'a.sqlite' is not a cache; pass --cache another path."
    )
    assert in_cli_words("resume='runs/x' is a run of another goal; use cache=.") == (
        "--resume 'runs/x' is a run of another goal; use --cache."
    )
    assert in_cli_words("Request(cache_system=True)") == "Request(cache_system=True)"


def test_a_run_keeps_its_replies_in_bounded_memory_the_oldest_dropped_first(monkeypatch):
    from ptcrun.runtime import _cache

    monkeypatch.setattr(_cache, "MEMORY_CHARS", 3 * (1_000 + 256))
    cache = ReplyCache()
    provider = ScriptedProvider(["x"])
    sent: list[int] = []

    async def ask(n: int) -> str:
        async with cache.claim(provider, Request(messages=[Message("user", str(n))])) as claim:
            if claim.hit is None:
                sent.append(n)
                claim.keep(Reply(text=str(n) * 1_000, input_tokens=1, output_tokens=1))
        return (claim.hit or claim.reply).text[:1]  # type: ignore[union-attr]

    async def main() -> None:
        for n in (1, 2, 3, 4, 2, 3, 4, 1):
            assert await ask(n) == str(n)

    trio.run(main)
    assert sent == [1, 2, 3, 4, 1]  # 1 was the oldest when 4 came in
