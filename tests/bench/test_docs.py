"""docs/bench.md keeps in step with the suite and the command."""

from __future__ import annotations

import re
from pathlib import Path

import ptcrun.bench
from ptcrun.bench import TASKS
from ptcrun.cli._parser import build_parser

DOC = (Path(__file__).resolve().parents[2] / "docs" / "bench.md").read_text(encoding="utf-8")


def test_the_doc_lists_every_task_with_its_family_and_summary():
    rows = re.findall(r"^\| `([\w-]+)` \| (\w+) \| (.+) \|$", DOC, flags=re.MULTILINE)
    listed = [(name, family, summary.removesuffix(" (fixed size)")) for name, family, summary in rows]
    assert listed == [(t.name, t.family, t.summary) for t in TASKS]


def test_the_doc_lists_every_flag_of_bench_run():
    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    run = bench._subparsers._group_actions[0].choices["run"]
    flags = {f for a in run._actions for f in a.option_strings if f.startswith("--") and f != "--help"}
    documented = set(re.findall(r"^\| `(--[\w-]+)", DOC, flags=re.MULTILINE))
    assert documented == flags


def test_the_public_names_resolve_and_are_documented():
    for name in ptcrun.bench.__all__:
        value = getattr(ptcrun.bench, name)  # raises for a name that is not there
        if callable(value):
            assert (value.__doc__ or "").strip(), name


def test_the_doc_holds_the_reference_results_of_every_task():
    assert "REFERENCE_TABLE" not in DOC and "MILLION_TABLE" not in DOC
    for task in TASKS:
        assert re.search(rf"^\| {re.escape(task.name)} \| 2\^13 \| [\d,.k]+ \| pass \|", DOC, flags=re.MULTILINE), task.name
