"""Every way a provider can fail ends a run with a Result, never a traceback.

Each fault is played by a local server (``fakeservers.FakeServer``, on 127.0.0.1 only) or by a
scripted provider that raises, and goes through a whole ``Runtime.run``:

- as the planner, the run ends with status ``error``, a ``ProviderError`` that names the
  provider and the problem, and a transcript that ends with ``run.end`` and holds every call
  that finished before the fault;
- as the worker inside ``pmap``, the call fails as a ``ProviderError`` value in its slot and
  the run goes on;
- through ``ptcrun run``, the command exits with the code ``docs/cli.md`` gives and prints
  the problem and its fix, spelled in flags, on standard error.

Providers here wait at most half a second per attempt and retry once, so no test takes long.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from ptcrun import (
    AnthropicProvider,
    Limits,
    Message,
    OpenAICompatProvider,
    Reply,
    Request,
    Runtime,
    ScriptedProvider,
)
from ptcrun.cli import EXIT_CODES
from ptcrun.errors import ConfigError, ProviderError
from ptcrun.runtime.providers._base import call_provider
from ptcrun.runtime.providers._spec import parse_provider

from ...clirun import run_cli
from .fakeservers import (
    Answer,
    FakeServer,
    anthropic_error,
    anthropic_message,
    empty_body,
    hang,
    html_page,
    openai_completion,
    openai_error,
    reset_mid_body,
    truncated_json,
)

DATA = ["ERROR a\nINFO b", "ERROR c\nERROR d", "INFO e"]

FAN_OUT = """Counting per chunk.
```python
counts = pmap(lambda c: tool.worker(c, "How many ERROR lines?"), data)
print(counts)
```"""

WORKERS_REPORT = """Reporting each slot.
```python
results = pmap(lambda c: tool.worker(c, "How many ERROR lines?"), data)
done([r if r else [r.kind, r.message] for r in results])
```"""

FAST = {"timeout": 0.5, "max_retries": 1, "backoff": 0.0, "max_retry_wait": 5.0}


@pytest.fixture(autouse=True)
def no_keys_or_urls_from_the_environment(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with FakeServer() as server:
        yield server


def provider(kind: str, server: FakeServer, **options: Any) -> AnthropicProvider | OpenAICompatProvider:
    options = {**FAST, **options}
    if kind == "anthropic":
        return AnthropicProvider("claude-haiku-4-5", api_key="test-key", base_url=server.url, **options)
    return OpenAICompatProvider("local-model", base_url=server.url + "/v1", **options)


def success(kind: str, text: str = "ok") -> Answer:
    return anthropic_message(text) if kind == "anthropic" else openai_completion(text)


def with_body(kind: str, **changes: Any) -> Answer:
    """A success whose body has ``changes`` applied at the top level (``None`` drops a key)."""
    body = dict(success(kind).body)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return Answer(body=body)


def status_storm(kind: str, status: int, retry_after: str | None = None) -> Answer:
    if kind == "anthropic":
        names = {429: "rate_limit_error", 529: "overloaded_error", 503: "api_error"}
        return anthropic_error(status, names[status], retry_after=retry_after)
    return openai_error(status, "busy", retry_after=retry_after)


def events_of(transcript: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in transcript.read_text().splitlines()]


#: fault name → (the answer every request gets once the queue is empty, by provider kind;
#: what the message must say; requests the provider makes for one planner turn).
FAULTS: dict[str, tuple[Any, dict[str, str], int]] = {
    "truncated_json": (
        lambda kind: truncated_json(success(kind)),
        {"anthropic": "200 reply is not a Messages API message: the body is not JSON",
         "openai": "200 reply is not a chat completion (the body is not JSON"},
        1,
    ),
    "html_page_200": (
        lambda kind: html_page(200),
        {"anthropic": "200 reply is not a Messages API message: the body is not JSON (text/html",
         "openai": "200 reply is not a chat completion (the body is not JSON"},
        1,
    ),
    "html_page_502": (
        lambda kind: html_page(502),
        {"anthropic": "failed after 2 attempts: 502 bad gateway",
         "openai": "failed after 2 attempts: 502 bad gateway"},
        2,
    ),
    "empty_body": (
        lambda kind: empty_body(200),
        {"anthropic": "200 reply is not a Messages API message: the body is not JSON",
         "openai": "200 reply is not a chat completion (the body is not JSON"},
        1,
    ),
    "usage_strings": (
        lambda kind: with_body(kind, usage={"input_tokens": "many", "output_tokens": 3}
                               if kind == "anthropic" else {"prompt_tokens": "many", "completion_tokens": 3}),
        {"anthropic": "usage.input_tokens is 'many', not a whole number of tokens",
         "openai": "usage.prompt_tokens is 'many', not a whole number of tokens"},
        1,
    ),
    "missing_content": (
        lambda kind: with_body(kind, content=None, choices=None),
        {"anthropic": "content is a NoneType, not a list of blocks", "openai": "it has no choices[0]"},
        1,
    ),
    "content_of_wrong_type": (
        lambda kind: with_body(kind, content="just text") if kind == "anthropic" else
        with_body(kind, choices=[{"index": 0, "message": {"role": "assistant", "content": 5}}]),
        {"anthropic": "content is a str, not a list of blocks",
         "openai": "choices[0].message.content is a int, not text"},
        1,
    ),
    "hang": (
        lambda kind: hang(),
        {"anthropic": "failed after 2 attempts: no reply within 0.5 s (AnthropicProvider(timeout=0.5, "
                      "max_retries=1)). Check that the server is up, or raise AnthropicProvider(timeout=...)",
         "openai": "failed after 2 attempts: no reply within 0.5 s (OpenAICompatProvider(timeout=0.5, "
                   "max_retries=1)). Check that the server is up, or raise OpenAICompatProvider(timeout=...)"},
        2,
    ),
    "reset_mid_body": (
        lambda kind: reset_mid_body(success(kind)),
        {"anthropic": "failed after 2 attempts: connection failed", "openai": "failed after 2 attempts: connection failed"},
        2,
    ),
    "429_storm": (
        lambda kind: status_storm(kind, 429),
        {"anthropic": "failed after 2 attempts: 429 rate limited (AnthropicProvider(max_retries=1)). "
                      "Try again later, or raise AnthropicProvider(max_retries=...).",
         "openai": "failed after 2 attempts: 429 rate limited (OpenAICompatProvider(max_retries=1)). "
                   "Try again later, or raise OpenAICompatProvider(max_retries=...)."},
        2,
    ),
    "529_storm": (
        lambda kind: status_storm(kind, 529),
        {"anthropic": "failed after 2 attempts: 529 overloaded", "openai": "failed after 2 attempts: 529"},
        2,
    ),
    "503_storm_with_retry_after": (
        lambda kind: status_storm(kind, 503, retry_after="0"),
        {"anthropic": "failed after 2 attempts: 503 service unavailable",
         "openai": "failed after 2 attempts: 503 service unavailable"},
        2,
    ),
    "huge_retry_after": (
        lambda kind: status_storm(kind, 429, retry_after="86400"),
        {"anthropic": "anthropic request failed: 429 rate limited: the server asked to wait 86400 s, more "
                      "than max_retry_wait=5 s. Try again later, or raise AnthropicProvider(max_retry_wait=...).",
         "openai": "openai-compatible request failed: 429 rate limited: the server asked to wait 86400 s, "
                   "more than max_retry_wait=5 s. Try again later, or raise "
                   "OpenAICompatProvider(max_retry_wait=...)."},
        1,
    ),
}

KINDS = ["anthropic", "openai"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_faulty_planner_ends_the_run_with_an_error_result(tmp_path, server, kind, fault):
    make, says, attempts = FAULTS[fault]
    # Turn 1 goes well and fans out to the workers; turn 2's planner request meets the fault.
    server.queue(success(kind, FAN_OUT))
    server.always(make(kind))
    planner = provider(kind, server)
    rt = Runtime(planner=planner, worker=ScriptedProvider(lambda request: "1"), transcript_dir=tmp_path)

    result = rt.run("How many ERROR lines?", DATA)

    assert result.status == "error"
    error = result.error
    assert isinstance(error, ProviderError)
    assert error.provider == planner.name
    assert says[kind] in str(error)
    assert isinstance(error.__cause__, Exception)
    assert len(server.received) == 1 + attempts
    events = events_of(result.transcript)
    assert events[-1]["type"] == "run.end"
    assert events[-1]["status"] == "error"
    assert events[-1]["error"]["type"] == "ProviderError"
    planner_ends = [e["status"] for e in events if e["type"] == "llm.end" and e["role"] == "planner"]
    assert planner_ends == ["ok", "error"]
    # Every call that finished before the fault is recorded.
    assert [e["ok"] for e in events if e["type"] == "call.end"] == [True, True, True]
    assert result.turns[0].output == "['1', '1', '1']\n"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["truncated_json", "usage_strings", "hang", "429_storm", "huge_retry_after"])
def test_a_faulty_worker_fails_its_pmap_slot_and_the_run_goes_on(tmp_path, server, kind, fault):
    make, says, _ = FAULTS[fault]
    server.queue(success(kind, "2"))  # one call succeeds; the others meet the fault
    server.always(make(kind))
    worker = provider(kind, server)
    rt = Runtime(planner=ScriptedProvider([WORKERS_REPORT]), worker=worker, transcript_dir=tmp_path)

    result = rt.run("How many ERROR lines?", DATA)

    assert result.status == "done", result.error
    failed = [slot for slot in result.answer if slot != "2"]
    assert result.answer.count("2") == 1 and len(failed) == 2
    for kind_name, message in failed:
        assert kind_name == "ProviderError"
        assert says[kind] in message
    events = events_of(result.transcript)
    assert events[-1]["type"] == "run.end" and events[-1]["status"] == "done"
    ends = [e for e in events if e["type"] == "call.end"]
    assert sorted(e["ok"] for e in ends) == [False, False, True]
    assert {e["error"]["fields"]["provider"] for e in ends if not e["ok"]} == {worker.name}


@pytest.mark.parametrize("kind", KINDS)
def test_errors_carry_the_status_and_the_servers_request_id(tmp_path, server, kind):
    header = "request-id" if kind == "anthropic" else "x-request-id"
    bad = attrs.evolve(truncated_json(success(kind)), headers={header: "req_fault_7"})
    server.always(bad)
    rt = Runtime(planner=provider(kind, server), transcript_dir=tmp_path)

    result = rt.run("Anything.", DATA)

    error = result.error
    assert isinstance(error, ProviderError)
    assert (error.status, error.request_id) == (200, "req_fault_7")
    assert str(error).endswith("Request id req_fault_7.")
    fields = events_of(result.transcript)[-1]["error"]["fields"]
    assert (fields["status"], fields["request_id"]) == (200, "req_fault_7")


@pytest.mark.parametrize("kind", KINDS)
def test_a_body_the_server_billed_keeps_its_charge_and_a_refusal_gives_it_back(tmp_path, server, kind):
    server.always(truncated_json(success(kind)))
    billed = Runtime(planner=provider(kind, server), transcript_dir=tmp_path).run("Anything.", DATA)
    server.always(status_storm(kind, 529))
    refused = Runtime(planner=provider(kind, server), transcript_dir=tmp_path).run("Anything.", DATA)

    assert billed.usage.unsettled_tokens > 0  # a 200 was billed, whatever its body
    assert refused.usage.unsettled_tokens == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_wait_longer_than_the_call_clock_is_not_waited_for(tmp_path, server, kind):
    server.always(status_storm(kind, 429, retry_after="30"))
    worker = provider(kind, server, max_retry_wait=60)
    limits = Limits(call_timeout=2)
    rt = Runtime(planner=ScriptedProvider([WORKERS_REPORT]), worker=worker, limits=limits, transcript_dir=tmp_path)

    result = rt.run("How many ERROR lines?", DATA)

    assert result.status == "done"
    for kind_name, message in result.answer:
        assert kind_name == "ProviderError"
        assert "429 rate limited; the server asked to wait 30 s, but the request's deadline is" in message
        # Had it waited, the call clock would have fired: the slot would hold TimeLimitExceeded.
        assert message.endswith("(Limits.call_timeout). Try again later, or raise call_timeout.")
    assert len(server.received) == len(DATA)  # one attempt each


# --- scripted providers that raise -----------------------------------------------------------

RAISED = [
    RuntimeError("script broke"),
    ValueError("invalid literal for int() with base 10: 'many'"),
    KeyError("choices"),
    json.JSONDecodeError("Expecting value", "", 0),
    OSError(104, "Connection reset by peer"),
    TimeoutError("read timed out"),
    trio.TooSlowError(),
    ConfigError("a provider's own configuration error"),
    ExceptionGroup("two things", [ValueError("a"), TypeError("b")]),
]


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_a_scripted_planner_that_raises_ends_the_run_with_an_error_result(tmp_path, exc):
    def respond(request: Request) -> str:
        raise exc

    rt = Runtime(planner=ScriptedProvider(respond, name="scripted:planner.py"), transcript_dir=tmp_path)

    result = rt.run("Anything.", DATA)

    assert result.status == "error"
    assert isinstance(result.error, ProviderError)
    assert result.error.provider == "scripted:planner.py"
    assert str(result.error).startswith(f"scripted:planner.py failed: {type(exc).__name__}")
    assert "fix the provider (a scripted provider's respond()) or the server it calls" in str(result.error)
    assert result.error.__cause__ is exc
    assert events_of(result.transcript)[-1]["status"] == "error"


@pytest.mark.parametrize("exc", [RuntimeError("worker script broke"), KeyError("text")], ids=repr)
def test_a_scripted_worker_that_raises_fails_its_slot(tmp_path, exc):
    def respond(request: Request) -> str:
        raise exc

    rt = Runtime(planner=ScriptedProvider([WORKERS_REPORT]), worker=ScriptedProvider(respond, name="w"),
                 transcript_dir=tmp_path)

    result = rt.run("Anything.", DATA)

    assert result.status == "done"
    assert all(kind == "ProviderError" and message.startswith(f"w failed: {type(exc).__name__}")
               for kind, message in result.answer)


@pytest.mark.parametrize(
    ("returned", "says"),
    [
        ({"text": "done(1)"}, "returned a dict, not a Reply"),
        (Reply(text=None, input_tokens=1, output_tokens=1), "whose text is a NoneType, not a str"),
        (Reply(text="x", input_tokens="many", output_tokens=1), "whose input_tokens is 'many'"),
        (Reply(text="x", input_tokens=1, output_tokens=-3), "whose output_tokens is -3"),
        (Reply(text="x", input_tokens=1, output_tokens=True), "whose output_tokens is True"),
    ],
)
def test_a_provider_returning_something_else_than_a_reply_ends_the_run(tmp_path, returned, says):
    class Odd:
        name = "odd"
        context_window = 200_000
        price = None

        async def complete(self, request: Request) -> Any:
            return returned

    result = Runtime(planner=Odd(), transcript_dir=tmp_path).run("Anything.", DATA)

    assert result.status == "error"
    assert isinstance(result.error, ProviderError)
    assert str(result.error).startswith(f"odd returned a {'dict' if isinstance(returned, dict) else 'Reply'}")
    assert says in str(result.error)
    assert result.usage.unsettled_tokens == 0


async def test_cancellation_and_interrupts_pass_the_boundary_untouched():
    async def hangs(request: Request) -> str:
        await trio.sleep_forever()
        raise AssertionError

    with trio.move_on_after(0.05) as scope:
        await call_provider(ScriptedProvider(hangs), Request(messages=[Message("user", "hi")]))
    assert scope.cancelled_caught

    def interrupted(request: Request) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await call_provider(ScriptedProvider(interrupted), Request(messages=[Message("user", "hi")]))


async def test_the_boundary_reads_status_and_request_id_from_the_exception_chain():
    class SDKError(Exception):
        status_code = 503
        request_id = "req_chain"

    def respond(request: Request) -> str:
        try:
            raise SDKError("upstream")
        except SDKError as exc:
            raise RuntimeError("wrapped") from exc

    with pytest.raises(ProviderError) as info:
        await call_provider(ScriptedProvider(respond, name="s"), Request(messages=[Message("user", "hi")]))
    assert (info.value.status, info.value.request_id) == (503, "req_chain")
    assert str(info.value) == (
        "s failed: RuntimeError: wrapped (HTTP 503). The provider raised it instead of replying; fix the "
        "provider (a scripted provider's respond()) or the server it calls. Request id req_chain."
    )


# --- provider strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("openai:m@ftp://127.0.0.1/v1", "names the base URL 'ftp://127.0.0.1/v1', which is not http:// or https://"),
        ("anthropic:m@ftp://127.0.0.1", "names the base URL 'ftp://127.0.0.1', which is not http:// or https://"),
        ("openai:m@127.0.0.1:8000/v1", "write openai:m@http://127.0.0.1:8000/v1"),
        ("anthropic:m@localhost:8080", "write anthropic:m@http://localhost:8080"),
    ],
)
def test_a_base_url_that_does_not_parse_is_refused_never_replaced_by_the_default(monkeypatch, spec, says):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-would-go-to-the-public-service")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with pytest.raises(ConfigError, match="^provider .*" + says.replace("(", r"\(").replace(")", r"\)")):
        parse_provider(spec)


async def test_anthropic_model_at_base_url_goes_to_that_server(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    provider = parse_provider(f"anthropic:claude-haiku-4-5@{server.url}")
    assert (await provider.complete(Request(messages=[Message("user", "hi")]))).text == "ok"
    assert server.received[0].path == "/v1/messages"


async def test_openai_base_url_comes_from_the_environment_when_the_string_gives_none(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    provider = parse_provider("openai:local-model")
    assert provider.base_url == server.url + "/v1"
    assert (await provider.complete(Request(messages=[Message("user", "hi")]))).text == "ok"
    assert server.received[0].path == "/v1/chat/completions"


def test_a_base_url_from_the_environment_must_be_http(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "ftp://127.0.0.1")
    with pytest.raises(ConfigError, match=r"must start with http:// or https://; got 'ftp://127.0.0.1'"):
        AnthropicProvider("m", api_key="k")


@pytest.mark.parametrize("case", ["missing", "directory", "not_utf8_json", "not_utf8_py"])
def test_a_scripted_file_that_cannot_be_read_is_a_config_error(tmp_path, case):
    path = {"missing": tmp_path / "none.json", "directory": tmp_path,
            "not_utf8_json": tmp_path / "replies.json", "not_utf8_py": tmp_path / "respond.py"}[case]
    if case.startswith("not_utf8"):
        path.write_bytes(b'["caf\xe9"]')
    says = {"missing": "scripted provider file not found", "directory": "is a directory; give a .json",
            "not_utf8_json": "is not UTF-8 text (byte 0xe9 at offset 5); save it as UTF-8",
            "not_utf8_py": "is not UTF-8 text (byte 0xe9 at offset 5); save it as UTF-8"}[case]
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_provider(f"scripted:{path}")


# --- through the command line ----------------------------------------------------------------




@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "app.log"
    path.write_text("".join(DATA))
    return path


def run_argv(corpus: Path, planner: str, *extra: str) -> list[str]:
    return ["run", str(corpus), "--goal", "How many ERROR lines?", "--planner", planner,
            "--out", str(corpus.parent / "runs"), "--quiet", *extra]


@pytest.mark.parametrize(
    ("fault", "flags", "exit_name", "says"),
    [
        (truncated_json(openai_completion()), [], "error",
         "ptcrun: openai-compatible request failed: 200 reply is not a chat completion (the body is not JSON"),
        (hang(), ["--request-timeout", "0.3", "--max-retries", "1"], "error", (
            "ptcrun: openai-compatible request failed after 2 attempts: no reply within 0.3 s "
            "(--request-timeout=0.3, --max-retries=1). Check that the server is up, or raise "
            "--request-timeout for long replies.\n")),
        (openai_error(429, "slow down", retry_after="86400"), ["--max-retry-wait", "5"], "error", (
            "ptcrun: openai-compatible request failed: 429 rate limited: the server asked to wait 86400 s, "
            "more than --max-retry-wait=5 s. Try again later, or raise --max-retry-wait.\n")),
        (openai_error(503, "busy"), ["--max-retries", "0"], "error", (
            "failed after 1 attempt: 503 service unavailable (--max-retries=0). Try again later, or raise "
            "--max-retries.\n")),
        (hang(), ["--turn-timeout", "1", "--request-timeout", "5"], "limit", (
            "ptcrun: turn clock expired after 1 s (--turn-timeout); the planner did not reply in time. "
            "Raise --turn-timeout.\n")),
    ],
    ids=["truncated_json", "hang", "huge_retry_after", "503", "turn_clock"],
)
def test_cli_run_against_a_faulty_endpoint_exits_with_the_documented_code(server, corpus, fault, flags,
                                                                        exit_name, says):
    server.always(fault)
    planner = f"openai:m@{server.url}/v1"
    code, _, err = run_cli(run_argv(corpus, planner, "--request-timeout", "0.5", *flags))
    assert code == EXIT_CODES[exit_name]
    assert says in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("planner", "says"),
    [
        ("openai:m@ftp://127.0.0.1/v1", "which is not http:// or https://"),
        ("scripted:{dir}", "is a directory"),
        ("scripted:{dir}/none.json", "scripted provider file not found"),
    ],
)
def test_cli_refuses_a_provider_that_does_not_parse_before_anything_runs(corpus, planner, says):
    code, _, err = run_cli(run_argv(corpus, planner.format(dir=corpus.parent)))
    assert code == EXIT_CODES["config"]
    assert says in err and "Traceback" not in err
    assert not list((corpus.parent / "runs").glob("*/transcript.jsonl"))  # no run started


def test_cli_clock_flags_lower_the_inner_clocks_they_would_contain(corpus, tmp_path):
    replies = tmp_path / "planner.json"
    replies.write_text(json.dumps(["```python\ndone(1)\n```"]))
    code, out, _ = run_cli(run_argv(corpus, f"scripted:{replies}", "--turn-timeout", "30", "--json"))
    assert code == EXIT_CODES["done"]
    start = events_of(Path(json.loads(out)["transcript"]))[0]
    assert {k: start["limits"][k] for k in ("call_timeout", "pmap_timeout", "turn_timeout", "run_timeout")} == {
        "call_timeout": 30, "pmap_timeout": 30, "turn_timeout": 30, "run_timeout": 1800}
    code, _, err = run_cli(run_argv(corpus, f"scripted:{replies}", "--call-timeout", "400"))
    assert code == EXIT_CODES["config"]
    assert ("--call-timeout=400 is longer than --pmap-timeout=300, so it could never fire; raise "
            "--pmap-timeout or lower --call-timeout.") in err
