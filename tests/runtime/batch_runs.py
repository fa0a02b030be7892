"""A run whose program fans out with ``pmap(..., batch=True)`` against the local fake Message
Batches API: the batch events of the transcript, for the tests that read every event type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptcrun import AnthropicProvider, Limits, Price, Result, Runtime, ScriptedProvider

from .providers.fakeapi import FakeAPI

BATCHED = """```python
answers = pmap(lambda c: tool.worker(c, "How many x?", schema={"type": "integer"}), data, batch=True)
done([a if not isinstance(a, Failure) else a.kind for a in answers])
```"""


def count_x(params: dict[str, Any]) -> str:
    """The fake model's answer: how many ``x`` the text between ``<text>`` tags holds."""
    content = params["messages"][0]["content"]
    return str(content.split("<text>\n", 1)[1].split("\n</text>", 1)[0].count("x"))


def batched_run(out: Path | None, chunks: list[str], *, program: str = BATCHED, **api: Any) -> tuple[Result, FakeAPI]:
    """Run ``program`` over ``chunks`` with an Anthropic worker served by a fresh fake API."""
    limits = api.pop("limits", Limits(call_timeout=5, pmap_timeout=10, turn_timeout=20, run_timeout=60))
    with FakeAPI(reply=api.pop("reply", count_x), **api) as fake:
        worker = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=fake.url, batch_poll=0.01,
                                   batch_poll_max=0.05, price=Price(1.0, 5.0))
        rt = Runtime(planner=ScriptedProvider([program, program]), worker=worker, limits=limits,
                     transcript_dir=out)
        return rt.run("How many x in each chunk?", chunks), fake
