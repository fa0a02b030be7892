import json

import pytest
import trio
import trio.lowlevel

from ptcrun import Message, Provider, Reply, Request, ScriptedProvider
from ptcrun.errors import ConfigError, ProviderError


def ask(text: str = "hi", **options) -> Request:
    return Request(messages=(Message("user", text),), **options)


def count_tokens(text: str) -> int:
    from ptcrun.corpus._tokens import count_tokens

    return count_tokens(text)


async def test_list_replies_come_in_order_and_the_last_repeats():
    provider = ScriptedProvider(["one", "two", "three"])
    texts = [(await provider.complete(ask())).text for _ in range(5)]
    assert texts == ["one", "two", "three", "three", "three"]


async def test_concurrent_requests_take_replies_in_arrival_order(autojump_clock):
    # With seed 0 the first request waits longer (8.6 s) than the second (7.8 s), so it
    # finishes last, yet it still gets the first reply.
    provider = ScriptedProvider(["first", "second"], latency=(1.0, 10.0), seed=0)
    got, finished = {}, []

    async def call(i):
        got[i] = (await provider.complete(ask(str(i)))).text
        finished.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(2):
            nursery.start_soon(call, i)
            await trio.lowlevel.checkpoint()  # start them in a known order
    assert finished == [1, 0]
    assert got == {0: "first", 1: "second"}


async def test_function_provider_answers_each_request():
    provider = ScriptedProvider(lambda request: request.messages[-1].content.upper())
    assert (await provider.complete(ask("abc"))).text == "ABC"
    assert (await provider.complete(ask("xyz"))).text == "XYZ"


async def test_async_function_provider_is_awaited():
    async def respond(request):
        await trio.lowlevel.checkpoint()
        return f"system was {request.system!r}"

    reply = await ScriptedProvider(respond).complete(ask(system="be brief"))
    assert reply.text == "system was 'be brief'"


async def test_blocking_functions_overlap_beyond_trios_default_thread_cap():
    # trio runs at most 40 threads at once unless told otherwise; a run's concurrency may be
    # higher, and the provider must not quietly lower it.
    import threading
    import time

    inside = 0
    most = 0
    lock = threading.Lock()

    def respond(request: Request) -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.3)
        with lock:
            inside -= 1
        return "ok"

    provider = ScriptedProvider(respond)
    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(provider.complete, ask())
    assert most == 64


async def test_function_may_return_a_whole_reply_with_its_own_usage():
    given = Reply("x", input_tokens=7, output_tokens=9, cache_read_tokens=2, model="m")
    assert await ScriptedProvider(lambda request: given).complete(ask()) == given


async def test_function_returning_another_type_is_a_provider_error():
    provider = ScriptedProvider(lambda request: 42, name="scripted")
    with pytest.raises(ProviderError, match="must return str or Reply; got int") as info:
        await provider.complete(ask())
    assert info.value.provider == "scripted"


async def test_usage_counts_system_and_messages_in_and_reply_out():
    provider = ScriptedProvider(["the answer is 42"])
    request = Request(
        messages=(
            Message("user", "question one"),
            Message("assistant", "ok"),
            Message("user", "q2"),
        ),
        system="You are terse.",
    )
    reply = await provider.complete(request)
    expected_input = sum(map(count_tokens, ["You are terse.", "question one", "ok", "q2"]))
    assert reply.input_tokens == expected_input
    assert reply.output_tokens == count_tokens("the answer is 42")
    assert reply.stop_reason == "end_turn"
    assert reply.model == "scripted"


async def test_reply_longer_than_max_tokens_is_cut_to_fit():
    long_text = " ".join(f"word{i}" for i in range(200))
    reply = await ScriptedProvider([long_text]).complete(ask(max_tokens=10))
    assert reply.output_tokens <= 10
    assert reply.output_tokens == count_tokens(reply.text)
    assert long_text.startswith(reply.text) and len(reply.text) < len(long_text)
    assert reply.stop_reason == "max_tokens"


async def test_requests_are_recorded_for_inspection():
    provider = ScriptedProvider(["a"])
    first, second = ask("one", purpose="planner"), ask("two")
    await provider.complete(first)
    await provider.complete(second)
    assert provider.requests == [first, second]


async def test_latency_waits_on_the_trio_clock(autojump_clock):
    provider = ScriptedProvider(["a"], latency=1000.0)
    start = trio.current_time()
    await provider.complete(ask())
    # 1000 virtual seconds passed; the test itself took none of them for real.
    assert trio.current_time() - start == pytest.approx(1000.0)


async def test_latency_is_cancellable(autojump_clock):
    provider = ScriptedProvider(["a"], latency=1000.0)
    start = trio.current_time()
    with trio.move_on_after(1) as scope:
        await provider.complete(ask())
    assert scope.cancelled_caught
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_latency_range_is_drawn_from_the_seed(autojump_clock):
    async def delays(seed):
        provider = ScriptedProvider(["a"], latency=(2.0, 5.0), seed=seed)
        out = []
        for _ in range(6):
            start = trio.current_time()
            await provider.complete(ask())
            out.append(trio.current_time() - start)
        return out

    first, again, other = await delays(1), await delays(1), await delays(2)
    assert first == pytest.approx(again)
    assert first != pytest.approx(other)
    assert all(2.0 <= d <= 5.0 for d in first + other)


def test_scripted_provider_is_a_provider():
    provider = ScriptedProvider(["a"], context_window=1000)
    assert isinstance(provider, Provider)
    assert (provider.name, provider.context_window, provider.price) == ("scripted", 1000, None)


@pytest.mark.parametrize(
    ("replies", "latency", "message"),
    [
        ([], 0.0, "needs at least one reply; got an empty list."),
        ("just one", 0.0, "got one string. Wrap it in a list."),
        ([1], 0.0, "replies must be strings; got int 1."),
        (["a"], -1.0, "latency=...) must be seconds >= 0"),
        (["a"], (3.0, 1.0), "low <= high; got (3.0, 1.0)."),
    ],
)
def test_bad_settings_are_refused(replies, latency, message):
    with pytest.raises(ConfigError) as info:
        ScriptedProvider(replies, latency=latency)
    assert message in str(info.value)


async def test_from_file_reads_a_json_list(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["first", "second"]))
    provider = ScriptedProvider.from_file(path)
    assert provider.name == "scripted:replies.json"
    assert [(await provider.complete(ask())).text for _ in range(3)] == [
        "first",
        "second",
        "second",
    ]


async def test_from_file_loads_respond_from_python(tmp_path):
    path = tmp_path / "script.py"
    path.write_text("def respond(request):\n    return 'echo: ' + request.messages[-1].content\n")
    provider = ScriptedProvider.from_file(path, latency=0.0)
    assert (await provider.complete(ask("ping"))).text == "echo: ping"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("replies.json", '{"a": 1}', "must hold a JSON list of reply strings; got dict."),
        ("replies.json", "[1, 2]", "must hold a JSON list of reply strings; got list."),
        ("replies.json", "[", "is not valid JSON"),
        ("script.py", "x = 1\n", "must define respond(request) -> str."),
        ("script.py", "def respond(:\n", "failed to load: SyntaxError"),
        ("replies.txt", "hello", "must end in .json (a list of replies) or .py"),
    ],
)
def test_from_file_refuses_what_is_not_a_script(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        ScriptedProvider.from_file(path)
    assert message in str(info.value)


def test_from_file_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"scripted provider file not found: .*nope\.json"):
        ScriptedProvider.from_file(tmp_path / "nope.json")
