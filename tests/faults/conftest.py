"""Helpers of the fault-injection suite: programs, transcripts, and what every ending must keep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ptcrun.corpus._tokens import get_encoding


@pytest.fixture(autouse=True, scope="session")
def _loaded_encoding() -> None:
    get_encoding()  # load once, outside any timed part


def block(code: str) -> str:
    return f"Here is the program.\n```python\n{code.strip()}\n```"


def events_of(path: Path) -> list[dict[str, Any]]:
    """Every event of a transcript file; each line must be one whole JSON object."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "the last line is torn"
    return [json.loads(line) for line in text.splitlines()]


def transcript_of(folder: Path) -> Path:
    (path,) = folder.glob("*/transcript.jsonl")
    return path


def assert_ends(events: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """The transcript ends with run.end of ``status``, and every span it opened is closed."""
    last = events[-1]
    assert last["type"] == "run.end", last["type"]
    assert last["status"] == status
    for kind in ("turn", "program"):
        started = {e["span"] for e in events if e["type"] == f"{kind}.start"}
        ended = {e["span"] for e in events if e["type"] == f"{kind}.end"}
        assert started == ended, kind
    return last


def finished_calls(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The call.end events, by call id."""
    return {e["call"]: e for e in events if e["type"] == "call.end"}


