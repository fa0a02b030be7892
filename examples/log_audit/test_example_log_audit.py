"""The log audit example, offline: the answer matches the generator's ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common

run = _common.load_module(HERE / "run.py")
generate = _common.load_module(HERE / "generate.py")
worker_rules = _common.load_module(HERE / "worker_rules.py")

LINES = 1_500
SEED = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return run.prepare_corpus(folder, lines=LINES, seed=SEED, quiet=True)


def offline(seed=SEED):
    return _common.offline_providers(HERE, latency=(0.01, 0.03), seed=seed)


def test_generator_plants_incidents_where_chunks_meet(corpus):
    log, truth = corpus
    incidents = truth["incidents"]
    assert len(incidents) == generate.MIN_INCIDENTS
    assert any(len(t["chunks"]) == 2 for t in incidents), "no incident in lines two chunks share"
    assert any(t["cut_by_chunk_end"] for t in incidents), "no stack trace cut by a chunk end"
    assert {t["kind"] for t in incidents} == set(generate.KINDS)
    lines = log.read_text().splitlines()
    assert len(lines) == LINES
    for t in incidents:
        assert t["request_id"] in lines[t["line"] - 1]


def test_generator_repeats_itself_for_a_seed():
    one = generate.generate(400, seed=11)
    two = generate.generate(400, seed=11)
    assert one.text == two.text and one.truth == two.truth
    assert generate.generate(400, seed=12).text != one.text


def test_offline_audit_finds_every_incident_once(corpus, tmp_path):
    log, truth = corpus
    outcome = run.run_audit(log, truth, providers=offline(), transcript_dir=tmp_path)
    result = outcome.result
    assert result.status == "done", result.error
    assert outcome.score.recall == 1.0, outcome.score.missed
    assert outcome.score.precision == 1.0, outcome.score.false_reports
    # Incidents in shared lines were reported by two workers; the program kept one of each.
    shared = sum(len(t["chunks"]) == 2 for t in truth["incidents"])
    assert result.answer["duplicates_removed"] == shared
    assert result.answer["total"] == len(truth["incidents"])
    assert result.usage.worker_calls == outcome.chunks
    assert result.transcript is not None and result.transcript.is_file()


def test_score_counts_a_double_report_as_false():
    truth = [{"id": "INC-001", "kind": "oom", "line": 10, "last_line": 20}]
    once = run.score([{"line": 10, "kind": "oom"}], truth)
    twice = run.score([{"line": 10, "kind": "oom"}, {"line": 10, "kind": "oom"}], truth)
    assert (once.recall, once.precision) == (1.0, 1.0)
    assert (twice.recall, twice.precision) == (1.0, 0.5)
    assert run.score([{"line": 10, "kind": "segfault"}], truth).recall == 0.0


def test_rule_worker_skips_trace_lines_without_their_first_record():
    header = "   100| 2024-05-14T08:00:00.000Z ERROR [order-service] java.lang.OutOfMemoryError: Java heap space req=1"
    frames = ["   101|     at com.shop.orders.CartCache.put(CartCache.java:118)", "   102|     ... 12 more"]
    assert worker_rules.find_incidents("\n".join(frames)) == []
    found = worker_rules.find_incidents("\n".join([header, *frames]))
    assert [(i["line"], i["kind"]) for i in found] == [(100, "oom")]
