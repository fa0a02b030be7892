"""A run over a corpus store is the run over the same chunks in a list: the same first message,
the same answer, the same transcript record of the corpus."""

from __future__ import annotations

import re

from ptcrun import Limits, Runtime, ScriptedProvider, Transcript, build_store
from ptcrun.corpus._load import load_corpus
from ptcrun.runtime.providers._base import Request

LOG = "".join(
    f"2025-03-01T00:{i % 60:02d}:00Z {'ERROR' if i % 13 == 0 else 'INFO'} svc=api id={i} naïve→ok\n"
    for i in range(3_000)
)

PLANNER = [
    """```python
counts = pmap(lambda c: int(tool.worker(c, "How many ERROR lines? Answer with a number.")), data)
print(len(data), sum(counts), data[-1][-12:], len(list(data[::5])))
```""",
    """```python
done({"errors": sum(counts), "chunks": len(data)})
```""",
]


def count_errors(request: Request) -> str:
    return str(request.messages[-1].content.count(" ERROR svc="))


def run(data, tmp_path):
    planner = ScriptedProvider(PLANNER)
    runtime = Runtime(planner=planner, worker=ScriptedProvider(count_errors), transcript_dir=tmp_path,
                      limits=Limits(max_tokens=2_000_000))
    return runtime.run("How many ERROR lines are there?", data), planner


def test_a_run_over_a_store_matches_the_run_over_the_list(tmp_path):
    corpus = tmp_path / "app.log"
    corpus.write_text(LOG, encoding="utf-8")
    store = build_store(corpus, tmp_path / "app.store", chunk_tokens=2_000)
    chunks = load_corpus(corpus, chunk_tokens=2_000)
    assert len(chunks) > 3

    on_store, store_planner = run(store, tmp_path / "store-runs")
    on_list, list_planner = run(chunks, tmp_path / "list-runs")

    assert on_store.status == on_list.status == "done", (on_store.error, on_list.error)
    assert on_store.answer == on_list.answer == {"errors": LOG.count(" ERROR svc="), "chunks": len(chunks)}
    assert on_store.turns[0].output == on_list.turns[0].output
    first = [p.requests[0].messages[0].content for p in (store_planner, list_planner)]
    assert first[0] == first[1]
    assert re.search(rf"{len(chunks):,} chunks", first[0])
    records = [Transcript.load(r.transcript).events[0]["data"] for r in (on_store, on_list)]
    assert records[0] == records[1] == {
        "chunks": len(chunks), "chars": len(LOG), "sha256": store.sha256,
    }
