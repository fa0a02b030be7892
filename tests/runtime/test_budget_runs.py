"""The token limit holds for whole runs: planner and workers, any fan-out, any concurrency."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun import Limits, Reply, Request, Runtime, ScriptedProvider

PROGRAM = """```python
def ask(c):
    try:
        return tool.worker(c, "Summarise.", max_tokens={max_out})
    except BudgetExceeded:
        return None
answers = pmap(ask, data, concurrency={concurrency})
print(sum(1 for a in answers if a is not None), "answered")
```"""


@settings(max_examples=20)
@given(
    max_tokens=st.integers(min_value=6_000, max_value=40_000),
    chunks=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
    concurrency=st.integers(min_value=1, max_value=12),
    max_out=st.integers(min_value=1, max_value=600),
    used_fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_total_usage_never_exceeds_max_tokens(max_tokens, chunks, concurrency, max_out, used_fraction):
    def worker(request: Request) -> Reply:
        # Real usage anywhere between nothing and the whole allowed output.
        from ptcrun.runtime._llm import request_tokens

        return Reply(text="ok", input_tokens=request_tokens(request), output_tokens=int(request.max_tokens * used_fraction))

    planner = ScriptedProvider([PROGRAM.format(max_out=max_out, concurrency=concurrency)])
    rt = Runtime(
        planner=planner,
        worker=ScriptedProvider(worker, latency=(0.0, 0.002)),
        limits=Limits(max_tokens=max_tokens, max_turns=3, max_concurrency=concurrency, planner_max_tokens=1000, worker_max_tokens=600),
        transcript_dir=None,
    )
    result = rt.run("Summarise each chunk.", ["word " * n for n in chunks])
    assert result.usage.total_tokens <= max_tokens
    assert result.status in ("max_turns", "budget_exceeded")
