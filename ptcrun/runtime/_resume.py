"""Resume: a new run replays what an earlier one recorded, at no cost, until the two diverge.

The earlier run's transcript holds every planner reply and every worker reply it received,
with the requests that asked for them. The new run asks the same questions in the same order
as long as nothing differs, so each of its requests is looked up among the recorded ones:

- a worker request is replayed when an identical one was answered (the result cache's key),
  live or in a batch (``batch.result`` records the key);
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

A batch the earlier run submitted and never finished reading (``batch.start`` with no
``batch.end``) is handed to the new run with each unread request's key, so that the requests it
holds are read from it rather than submitted and paid again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .. import errors
from ..transcript._parsing import parse_event
from ..transcript._schema import (
    SCHEMA_VERSION,
    BatchEnd,
    BatchResult,
    BatchStart,
    Event,
    LLMEnd,
    LLMStart,
    RunEnd,
    RunStart,
)
from ._cache import request_key
from .providers._base import Message, Provider, Reply, Request

__all__ = ["Recorded", "load_recorded", "planner_key"]

#: The transcript's name in its run folder.
_FILE_NAME = "transcript.jsonl"

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
        worker: worker replies by the result cache's key, batched ones too.
        status: how the earlier run ended (``"incomplete"`` when it was killed).
        batches: the batches of worker requests it submitted and never finished reading (it
            died first), by the provider's id: each request's ``custom_id`` and key there,
            those whose results it read left out.
    """

    transcript: Path
    planner: Mapping[str, Reply]
    worker: Mapping[str, Reply]
    status: str
    batches: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)


def load_recorded(
    path: str | os.PathLike[str],
    *,
    goal: str,
    data_summary: Mapping[str, Any],
    planner: Provider,
    worker: Provider,
) -> Recorded:
    """Read the run to resume at ``path`` (a run folder or its ``transcript.jsonl``).

    The file is read line by line, and a request's messages are kept only until its reply is
    keyed, so a transcript of a 100,000-call fan-out is read in the memory of its replies, not
    of its prompts. Only replies from providers of the same names as this run's are kept:
    another model's replies are not this one's.

    Raises:
        ConfigError: the transcript cannot be read or is not a ptcrun transcript, or the earlier
            run had another goal or another corpus (a resume continues the same run; ``cache=``
            reuses worker replies across different runs).
    """
    where = f"resume={os.fspath(path)!r}"
    events = _events(path, where)
    first = next(events, None)
    if not isinstance(first, RunStart):
        raise errors.ConfigError(f"{where}: the transcript does not start with run.start; it is not a "
                                 "whole ptcrun transcript.")
    if first.goal != goal:
        raise errors.ConfigError(
            f"{where} is a run of another goal ({_quote(first.goal)}, not {_quote(goal)}); a resume "
            "continues the same run: pass its goal. To reuse worker replies across different runs, "
            "use cache=."
        )
    if first.data != data_summary:
        raise errors.ConfigError(
            f"{where} is a run over another corpus (its chunks or their text differ, by their "
            "SHA-256); a resume continues the same run: pass the same corpus, cut the same way. To "
            "reuse worker replies across different runs, use cache=."
        )
    replies: dict[str, dict[str, Reply]] = {"planner": {}, "worker": {}}
    providers = {"planner": planner, "worker": worker}
    keys = {"planner": planner_key, "worker": request_key}
    sent: dict[str, LLMStart] = {}
    # The batches submitted and not yet ended, by span; the requests of each not yet read,
    # key to custom_id, by the batch's id.
    batch_spans: dict[str, str] = {}
    batch_keys: dict[str, Mapping[str, str]] = {}
    unread: dict[str, dict[str, str]] = {}
    status = "incomplete"
    for event in events:
        if isinstance(event, LLMStart):
            if event.role in providers and event.provider == providers[event.role].name:
                sent[event.span] = event
        elif isinstance(event, LLMEnd):
            start = sent.pop(event.span, None)
            if start is None or event.status != "ok" or event.text is None:
                continue
            request = Request(
                messages=tuple(Message(m["role"], m["content"]) for m in start.messages),  # type: ignore[arg-type]
                system=start.system,
                max_tokens=start.max_tokens,
                purpose="planner" if start.role == "planner" else "worker",
            )
            key = keys[start.role](providers[start.role], request)
            replies[start.role][key] = Reply(text=event.text, input_tokens=0, output_tokens=0,
                                             model=event.model or "", stop_reason=event.stop_reason)
        elif isinstance(event, BatchStart):
            if event.provider == worker.name and event.keys:
                batch_spans[event.span] = event.batch_id
                batch_keys[event.span] = event.keys
                unread[event.batch_id] = {key: custom_id for custom_id, key in event.keys.items()}
        elif isinstance(event, BatchResult):
            batch_id = batch_spans.get(event.span)
            # A batch this run submitted names its requests i<item>; one it read for the run
            # it resumed names each result's key.
            named = event.key or batch_keys.get(event.span, {}).get(f"i{event.item}")
            if batch_id is None or named is None:
                continue
            # A request whose result was read is replayed (its reply) or sent again (an error),
            # never read from its batch again.
            unread[batch_id].pop(named, None)
            if event.status == "succeeded" and event.text is not None:
                replies["worker"][named] = Reply(text=event.text, input_tokens=0, output_tokens=0,
                                                 stop_reason=event.stop_reason)
        elif isinstance(event, BatchEnd):
            batch_keys.pop(event.span, None)
            batch_id = batch_spans.pop(event.span, None)
            if batch_id is not None:
                unread.pop(batch_id, None)  # read to its end, or cancelled
        elif isinstance(event, RunEnd):
            status = event.status
    batches = {batch_id: {custom_id: key for key, custom_id in keys.items()}
               for batch_id, keys in unread.items() if keys}
    return Recorded(_file(path), replies["planner"], replies["worker"], status, batches)


def _file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    return file / _FILE_NAME if file.is_dir() else file


def _events(path: str | os.PathLike[str], where: str) -> Iterator[Event]:
    """The transcript's events, read and checked one line at a time; a last line cut short by a
    kill is dropped, as the reader does.

    Raises:
        ConfigError: the file cannot be read, or a line is not a ptcrun event of a version this
            ptcrun reads.
    """
    file = _file(path)
    try:
        lines = file.open(encoding="utf-8")
    except FileNotFoundError:
        raise errors.ConfigError(
            f"{where}: {str(file)!r} does not exist; pass the run folder of the run to resume "
            "(runs/<timestamp>-<id>/) or its transcript.jsonl."
        ) from None
    except OSError as exc:
        raise errors.ConfigError(f"{where}: {str(file)!r} cannot be read: {exc}.") from None
    with lines:
        try:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    if not line.endswith("\n"):
                        return  # the writer was stopped mid-line: everything before it stands
                    raise errors.ConfigError(f"{where}: line {number} is not JSON; the file was "
                                             "changed after it was written.") from None
                event = _event(data, f"{where}: line {number}")
                if event is not None:
                    yield event
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.ConfigError(f"{where}: {str(file)!r} cannot be read: {exc}.") from None


def _event(data: Any, where: str) -> Event | None:
    if not (isinstance(data, dict) and isinstance(data.get("v"), int) and isinstance(data.get("type"), str)):
        raise errors.ConfigError(f"{where} is not a ptcrun event (no 'v' or 'type'); pass a ptcrun "
                                 "run folder or transcript.")
    if data["v"] > SCHEMA_VERSION:
        raise errors.ConfigError(f"{where} was written with transcript schema v{data['v']}; this ptcrun "
                                 f"reads up to v{SCHEMA_VERSION}. Upgrade ptcrun to resume it.")
    try:
        return parse_event(data)
    except ValueError as exc:
        raise errors.ConfigError(f"{where}: the {data['type']} event {exc}; it was changed after it "
                                 "was written, or was not written by ptcrun.") from None


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")
