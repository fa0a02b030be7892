"""Real runs (scripted LLMs, real sandbox) whose transcripts the view and export tests read."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ptcrun import Limits, Request, Result, Runtime, ScriptedProvider, Transcript
from ptcrun.runtime.providers._http import AttemptFailed, call_with_retries

# Short clocks, so a run that hits one ends in about a second.
FAST = {"call_timeout": 5, "pmap_timeout": 10, "turn_timeout": 20, "run_timeout": 60}

CHUNKS = [("INFO ok\n" * (i % 3)) + ("ERROR disk full\n" * (i % 4)) for i in range(12)]

LOOK = """
print(len(data), "chunks")
print(data[1][:40])
"""

FAN_OUT = """
counts = pmap(lambda c: tool.worker(c, "Count the ERROR lines.", schema={"type": "integer"}), data)
levels = pmap(lambda level: tool.lookup(level), ["ERROR", "INFO", "BAD"])
print("errors per chunk:", counts)
print("levels:", [str(x) for x in levels])
answer = {"errors": sum(counts)}
done(answer)
"""


def block(code: str) -> str:
    return f"Here is the program.\n```python\n{code.strip()}\n```"


def counting_worker(request: Request) -> str:
    """A rule-based worker: counts 'ERROR' in the text it was given."""
    text = request.messages[0].content.split("<text>", 1)[1]
    return str(text.count("ERROR"))


def retrying_worker() -> Any:
    """``counting_worker`` behind the HTTP providers' retry loop: the first request is rate
    limited once, so the run records an ``llm.retry``."""
    failed: list[bool] = []

    async def respond(request: Request) -> str:
        async def attempt() -> str:
            if not failed:
                failed.append(True)
                raise AttemptFailed("429 rate limited", status=429, retry_after=0.0, request_id="req_1")
            return counting_worker(request)

        return await call_with_retries(attempt, provider="scripted", what="worker call", cls_name="Scripted",
                                       max_retries=2, backoff=0.0, max_retry_wait=1.0, purpose="worker",
                                       rng=random.Random(0))

    return respond


def lookup(level: str) -> str:
    """Describe a log level."""
    if level == "BAD":
        raise ValueError("unknown level BAD")
    return {"ERROR": "something failed", "INFO": "all fine"}.get(level, "?")


def runtime(replies: Any, out: Path | None, *, worker: Any = counting_worker, tools: Any = (lookup,),
            latency: Any = 0.0, planner_latency: float = 0.0, observers: Any = (), **limits: Any) -> Runtime:
    return Runtime(
        planner=ScriptedProvider(replies, latency=planner_latency),
        worker=ScriptedProvider(worker, latency=latency, seed=7),
        tools=list(tools),
        limits=Limits(**{**FAST, **limits}),
        transcript_dir=out,
        observers=observers,
    )


def example_run(out: Path) -> tuple[Result, Transcript]:
    """Two turns: a look at the data, then a fan-out of 12 worker calls (4 at a time) and a
    pmap over a tool that fails on one item."""
    rt = runtime([block(LOOK), block(FAN_OUT)], out, worker=retrying_worker(), latency=(0.01, 0.08),
                 planner_latency=0.05, max_concurrency=4)
    result = rt.run("How many ERROR lines are in the log?", CHUNKS)
    assert result.status == "done", result
    assert result.transcript is not None
    return result, Transcript.load(result.transcript)
