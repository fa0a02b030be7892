"""Resume: a new run replays what an earlier one recorded, at no cost, until the two diverge.

The earlier run's transcript holds every planner reply and every worker reply it received,
with the requests that asked for them. The new run asks the same questions in the same order
as long as nothing differs, so each of its requests is looked up among the recorded ones:

- a worker request is replayed when an identical one was answered (the result cache's key);
- a planner request is replayed when the recorded run sent the same conversation, its budget
  figures aside: a resumed run spends nothing on what it replays, so the tokens, turns and
  seconds left that each feedback message states differ from the recorded ones, and may differ
  on purpose (a run resumed with a larger budget).

The first request not found is sent live, and so is everything after it that depends on it: a
live planner reply no longer matches the recorded conversation, so the turns after it are live
(unless the model replied word for word as before). Requests that ended in an error, were
cancelled or were cut off by a kill are not recorded answers: they are sent again. Tools other
than the worker always run again: they may have effects, and their results are not the
model's. A run that had finished replays to its answer at no cost.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .. import errors
from ..transcript._transcript import Transcript
from ._cache import request_key
from .providers._base import Message, Provider, Reply, Request

__all__ = ["Recorded", "load_recorded", "planner_key"]

#: The lines of the planner's messages that state the budget (the templates' "Budget left:" and
#: "Left:" lines, and a pass's share of the budget), each with what a resumed run may state
#: differently without diverging in its place. Whole lines only, so that text a program wrote
#: elsewhere (an error message) is compared as it is.
_BUDGET_LINES = tuple(
    (re.compile(pattern, re.MULTILINE), replacement)
    for pattern, replacement in (
        (r"^Turn (\d+) of \d+\. Budget left: .*$", r"Turn \1 of <turns>. Budget left: <budget>."),
        (r"^Left: .*?\. Planner and workers share", "Left: <budget>. Planner and workers share"),
        (r"^(The corpus holds .*?)\(\d+% of the budget\)", r"\1(<share> of the budget)"),
    )
)


def _mask(text: str) -> str:
    """``text`` with the budget figures ptcrun wrote masked; what the program printed is kept
    whole, so that output which merely looks like a budget line still tells two runs apart."""
    start, end = text.find("<program_output"), text.rfind("</program_output>")
    if start == -1 or end < start:
        return _mask_lines(text)
    return _mask_lines(text[:start]) + text[start:end] + _mask_lines(text[end:])


def _mask_lines(text: str) -> str:
    for pattern, replacement in _BUDGET_LINES:
        text = pattern.sub(replacement, text)
    return text


def planner_key(provider: Provider, request: Request) -> str:
    """The key of a planner request for a resume: its conversation, budget figures aside."""
    return request_key(provider, request, mask=_mask)


@attrs.frozen
class Recorded:
    """What an earlier run recorded that a new one may replay.

    Attributes:
        transcript: the earlier run's transcript file.
        planner: planner replies by :func:`planner_key`.
        worker: worker replies by the result cache's key.
        status: how the earlier run ended (``"incomplete"`` when it was killed).
    """

    transcript: Path
    planner: Mapping[str, Reply]
    worker: Mapping[str, Reply]
    status: str


def load_recorded(
    path: str | os.PathLike[str],
    *,
    goal: str,
    data_summary: Mapping[str, Any],
    planner: Provider,
    worker: Provider,
) -> Recorded:
    """Read the run to resume at ``path`` (a run folder or its ``transcript.jsonl``).

    Only replies from providers of the same names as this run's are kept: another model's
    replies are not this one's.

    Raises:
        ConfigError: the transcript cannot be read, or the earlier run had another goal or
            another corpus (a resume continues the same run; ``cache=`` reuses worker replies
            across different runs).
    """
    try:
        transcript = Transcript.load(path)
    except errors.TranscriptError as exc:
        raise errors.ConfigError(f"resume={os.fspath(path)!r}: {exc}") from None
    assert transcript.path is not None
    if transcript.goal != goal:
        raise errors.ConfigError(
            f"resume={os.fspath(path)!r} is a run of another goal ({_quote(transcript.goal)}, not "
            f"{_quote(goal)}); a resume continues the same run: pass its goal. To reuse worker "
            "replies across different runs, use cache=."
        )
    if transcript.run.get("data") != data_summary:
        raise errors.ConfigError(
            f"resume={os.fspath(path)!r} is a run over another corpus (its chunks or their text "
            "differ, by their SHA-256); a resume continues the same run: pass the same corpus, cut "
            "the same way. To reuse worker replies across different runs, use cache=."
        )
    planner_replies: dict[str, Reply] = {}
    worker_replies: dict[str, Reply] = {}
    for record in transcript.llm_calls:
        if record.status != "ok" or record.text is None or record.max_tokens is None:
            continue
        provider = planner if record.role == "planner" else worker
        if record.provider != provider.name:
            continue
        request = Request(
            messages=tuple(Message(m["role"], m["content"]) for m in record.messages),  # type: ignore[arg-type]
            system=record.system,
            max_tokens=record.max_tokens,
            purpose="planner" if record.role == "planner" else "worker",
        )
        reply = Reply(text=record.text, input_tokens=0, output_tokens=0, model=record.model or "",
                      stop_reason=record.stop_reason)
        if record.role == "planner":
            planner_replies[planner_key(planner, request)] = reply
        else:
            worker_replies[request_key(worker, request)] = reply
    return Recorded(transcript.path, planner_replies, worker_replies, transcript.status)


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")
