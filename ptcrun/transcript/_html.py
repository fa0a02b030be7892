"""A transcript as one self-contained HTML page: the turns and a timeline of every pmap.

The page has no external resource (inline CSS and a few lines of inline JavaScript) so it
opens from disk, offline, in any browser. Everything is drawn by this module as plain HTML;
the script only opens a detail panel when a call is clicked, so the page reads fine without it.

Layout: a header with the run's status (amber and spelled ``done (partial: 43 of 92 calls
failed)`` when the answer was built while calls were failing, with a line naming the failures by
kind) and its numbers; a run overview (planner calls, programs and pmaps
across the run's wall time; a bar links to its turn); then each turn with the planner's text
around its code block, its program (line numbers, the failing line marked), output, error,
answer, the calls the program made outside any pmap on its own row, and a Gantt chart per pmap
with one row per thread ("slot") and a bar per call coloured by status, a hover title giving its
duration, and the slowest calls outlined: every tool and worker call of the run has its bar.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ..errors import ConfigError
from ._runs import ended_its_program, run_status
from ._transcript import CallRecord, PmapRecord, Transcript, TurnRecord
from ._wording import (
    account,
    batch_counts,
    batch_note,
    failed_notes,
    failure_kinds,
    planner_prose,
    preview,
    reused,
    status_text,
    steering_note,
)

__all__ = ["render_html", "write_html"]

_SLOWEST = 3
# A call's arguments and reply can be huge (whole chunks); the page keeps this much of each and
# says how much it cut. The transcript keeps everything.
_DETAIL_CHARS = 4_000
_STATUS_COLOURS = ("ok", "error", "cancelled", "unfinished")


def _same(text: str) -> str:
    return text


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "unfinished"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _pct(value: float, total: float) -> str:
    if total <= 0:
        return "0"
    return f"{max(0.0, min(100.0, value / total * 100)):.3f}"


def _row(name: str, bars: list[str]) -> str:
    return f'<div class="row"><span class="name">{name}</span><div class="lane">{"".join(bars)}</div></div>'


def _bar(
    classes: str, start: float, end: float, origin: float, span: float, title: str, extra: str = ""
) -> str:
    left = _pct(start - origin, span)
    width = _pct(end - start, span)
    return (f'<div class="bar {classes}" style="left:{left}%;width:{width}%" '
            f'title="{_e(title)}"{extra}></div>')


def _axis(seconds: float) -> str:
    ticks = [f"<span>{_secs(seconds * i / 5) if i else '0'}</span>" for i in range(6)]
    return f'<div class="axis">{"".join(ticks)}</div>'


def _cut(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= _DETAIL_CHARS:
        return value
    return text[:_DETAIL_CHARS] + f"… [{len(text) - _DETAIL_CHARS:,} more characters in the transcript]"


def _call_title(c: CallRecord) -> str:
    where = f" · item {c.item} · slot {c.slot}" if c.item is not None else ""
    text = f"{c.tool} c{c.id}{where} · {c.status} · {_secs(c.seconds)}"
    if c.llm:
        text += f" · {c.input_tokens:,} → {c.output_tokens:,} tokens"
    if c.cached:
        text += f" · {reused(c.cached)}, at no cost"
    if c.retries:
        reasons = ", ".join(str(r.get("reason", "?")) for llm in c.llm for r in llm.retries)
        text += f" · ↻ retried {c.retries}× ({reasons})"
    if c.error:
        text += f" · {c.error.get('type', 'Error')}: {preview(c.error.get('message', ''), 120)}"
    return text


def _call_detail(c: CallRecord) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "tool": c.tool, "status": c.status, "seconds": c.seconds, "item": c.item, "slot": c.slot,
        "args": _cut(list(c.args)), "kwargs": _cut(dict(c.kwargs)),
    }
    if c.ok:
        detail["value"] = _cut(c.value)
    if c.error:
        detail["error"] = dict(c.error)
    if c.llm:
        detail["reply"] = _cut(c.reply)
        detail["tokens"] = {"input": c.input_tokens, "output": c.output_tokens}
        detail["attempts"] = len(c.llm)
    if c.cached:
        detail["cached"] = reused(c.cached)
    if c.retries:
        detail["retries"] = [dict(r) for llm in c.llm for r in llm.retries]
    return detail


def _call_bar(c: CallRecord, end: float, origin: float, span: float, slow: set[str], prefix: str) -> str:
    """A call's bar, coloured by status; ``end`` closes a call that never ended."""
    c_end = c.ended if c.ended is not None else end
    status = c.status if c.status in _STATUS_COLOURS else "error"
    classes = (f"call {status}" + (" slow" if c.span in slow else "") + (" retried" if c.retries else "")
               + (" cached" if c.cached else ""))
    extra = f' data-span="{_e(prefix + c.span)}"'
    return _bar(classes, c.started, c_end, origin, span, _call_title(c), extra)


def _gantt(p: PmapRecord, t: Transcript, slow: set[str], prefix: str = "") -> str:
    origin = p.started
    end = p.ended if p.ended is not None else t.ended
    span = max(end - origin, 1e-6)
    # Every thread gets a row, idle ones too: an empty row shows a thread that found no work.
    used = {i.slot for i in p.items if i.slot is not None} | {c.slot for c in p.calls if c.slot is not None}
    slots = sorted(used | set(range(max(p.concurrency, 1))))
    rows = []
    for slot in slots:
        bars = []
        for item in p.items:
            if item.slot == slot or (item.slot is None and slot == 0):
                item_end = item.ended if item.ended is not None else end
                bars.append(_bar("item", item.started, item_end, origin, span,
                                 f"item {item.index} · {item.status} · {_secs(item.seconds)}"))
        for c in p.calls:
            if c.slot == slot or (c.slot is None and slot == 0):
                bars.append(_call_bar(c, end, origin, span, slow, prefix))
        rows.append(_row(f"slot {slot}", bars))
    nested = f" · nested in {_e(p.parent)}" if p.parent and ".m" in p.parent else ""
    counts = f"{p.done} ok, {p.failed} failed" if p.done is not None else f"{len(p.items)} started"
    head = (f'<h3>pmap {_e(p.span)} <span class="meta">{p.total} items · {p.concurrency} threads · '
            f'{counts} · <span class="status {_e(p.status)}">{_e(p.status)}</span> · {_secs(p.seconds)}'
            f'{nested}</span></h3>')
    return (f'<div class="gantt" data-pmap="{_e(prefix + p.span)}">{head}'
            f'<div class="rows">{"".join(rows)}</div>{_axis(span)}</div>')


def _loose_calls(
    calls: list[CallRecord], turn: TurnRecord, t: Transcript, slow: set[str], prefix: str
) -> str:
    """The calls a program made outside any pmap, on the program's own time line.

    The program's thread makes them one at a time, so they share one row; a call that overlaps
    another (none should) gets a row of its own rather than hide it.
    """
    start = turn.planner.ended if turn.planner is not None and turn.planner.ended else turn.started
    origin = min([start, *(c.started for c in calls)])
    end = max([turn.ended or t.ended, *((c.ended or t.ended) for c in calls)])
    span = max(end - origin, 1e-6)
    lanes: list[float] = []
    rows: list[list[str]] = []
    for c in sorted(calls, key=lambda c: c.started):
        c_end = c.ended if c.ended is not None else end
        lane = next((i for i, busy in enumerate(lanes) if busy <= c.started), len(lanes))
        if lane == len(lanes):
            lanes.append(c_end)
            rows.append([])
        lanes[lane] = c_end
        rows[lane].append(_call_bar(c, end, origin, span, slow, prefix))
    ended = ended_its_program(turn)  # always a call outside pmap
    failed = sum(1 for c in calls if c.status != "ok") - ended
    counts = (f"{len(calls)} call{'s' * (len(calls) != 1)}" + (f", {failed} failed" if failed else "")
              + (", 1 ended the program" if ended else ""))
    head = (f'<h3>calls outside pmap <span class="meta">{counts} · made by the program itself, one at a '
            f'time · {_secs(span)}</span></h3>')
    names = [f"program{f' {i + 1}' if i else ''}" for i in range(len(rows))]
    body = "".join(_row(name, bars) for name, bars in zip(names, rows, strict=True))
    return (f'<div class="gantt loose" data-loose="{_e(prefix)}t{turn.number}">{head}'
            f'<div class="rows">{body}</div>{_axis(span)}</div>')


def _program(turn: TurnRecord) -> str:
    assert turn.program is not None
    bad = turn.error.get("line") if turn.error else None
    lines = []
    for number, line in enumerate(turn.program.rstrip("\n").split("\n"), 1):
        cls = ' class="bad"' if number == bad else ""
        lines.append(f'<code{cls}><span class="ln">{number}</span>{_e(line)}</code>')
    return f'<pre class="program">{"".join(lines)}</pre>'


def _turn(
    turn: TurnRecord, t: Transcript, slow: set[str], prefix: str = "", words: Callable[[str], str] = _same
) -> str:
    meta = [_secs(turn.seconds)]
    if turn.planner is not None:
        meta.append(f"planner {turn.planner_input_tokens:,} in / {turn.planner_output_tokens:,} out"
                    + (f" ({reused(turn.planner.cached)})" if turn.planner.cached else ""))
    if turn.calls:
        cached = sum(1 for c in turn.calls if c.cached)
        notes = failed_notes(turn) + [f"{cached} cached"] * bool(cached)
        meta.append(f"{len(turn.calls)} calls" + (f" ({', '.join(notes)})" if notes else ""))
        meta.append(f"workers {turn.worker_input_tokens:,} in / {turn.worker_output_tokens:,} out")
    parts = [(f'<h2>Turn {turn.number} <span class="status {_e(turn.status)}">{_e(turn.status)}</span>'
              f'<span class="meta">{_e(" · ".join(meta))}</span></h2>')]
    if turn.program is None:
        parts.append('<div class="label">No program in the reply. The reply:</div>')
        parts.append(f'<pre class="reply">{_e(turn.reply or "(no reply)")}</pre>')
    else:
        # The planner's text around its code block says why it wrote the program; show says it too.
        before, after = planner_prose(turn.reply) if turn.reply is not None else ("", "")
        if before:
            parts.append(f'<div class="label">Planner</div><div class="prose">{_e(before)}</div>')
        parts.append('<div class="label">Program</div>')
        parts.append(_program(turn))
        if after:
            parts.append('<div class="label">Planner, after the code</div>')
            parts.append(f'<div class="prose">{_e(after)}</div>')
        if turn.note:
            parts.append(f'<div class="note">{_e(words(turn.note))}</div>')
        parts.append('<div class="label">Output</div>')
        parts.append(f'<pre class="output">{_e(turn.output) if turn.output else "(none)"}</pre>')
        if turn.error:
            e = turn.error
            where = f"line {e['line']}: " if e.get("line") else ""
            text = f"{where}{e.get('type', 'Error')}: {words(str(e.get('message', '')))}"
            if e.get("source_line"):
                text += f"\n    {e['source_line']}"
            parts.append(f'<div class="error-box">{_e(text)}</div>')
        if turn.status in ("done", "failed", "invalid_answer"):
            verb = "fail" if turn.status == "failed" else "done"
            answer = _e(json.dumps(turn.answer, ensure_ascii=False, indent=2))
            parts.append(f'<div class="answer">{verb}({answer})</div>')
    loose = [c for c in turn.calls if c.pmap is None]
    if loose:
        parts.append(_loose_calls(loose, turn, t, slow, prefix))
    for p in turn.pmaps:
        parts.append(_gantt(p, t, slow, prefix))
    body = "".join(parts)
    return (f'<section class="turn" id="{_e(prefix)}turn-{turn.number}" data-turn="{turn.number}">'
            f'{body}</section>')


def _sub_run(prefix: str, sub: Transcript, slow: set[str], words: Callable[[str], str] = _same) -> str:
    """A sub-run's turns, under a heading that names the call that started it, indented by depth."""
    call = prefix.rstrip("/")
    meta = [f"depth {sub.depth}", f"{len(sub.turns)} turn{'s' * (len(sub.turns) != 1)}",
            f"{sub.usage.total_tokens:,} tokens", _secs(sub.seconds)]
    word = run_status(sub)
    status = status_text(word, sub.failed_calls, sub.calls_made, sub.partial)
    head = (f'<h2>Sub-run of call {_e(call)} <span class="status {_e(word)}">{_e(status)}</span>'
            f'<span class="meta">{_e(" · ".join(meta))}</span></h2>'
            f'<div class="label">Goal</div><pre class="reply">{_e(sub.goal)}</pre>')
    if sub.error:
        error = f'{sub.error.get("type", "Error")}: {words(str(sub.error.get("message", "")))}'
        head += f'<div class="error-box">{_e(error)}</div>'
    turns = "".join(_turn(turn, sub, slow, prefix, words) for turn in sub.turns)
    return (f'<section class="sub-run" id="sub-{_e(call)}" data-sub-run="{_e(call)}" '
            f'style="margin-left:{1.5 * sub.depth:g}em">{head}{turns}</section>')


def _sub_run_rows(t: Transcript, origin: float, span: float) -> list[str]:
    """The overview's rows of sub-runs: each a bar from its start to its end, on the lowest row
    free when it starts; a click goes to its section."""
    lanes: list[float] = []
    lane_bars: list[list[str]] = []
    for prefix, sub in list(t.walk())[1:]:
        end = sub.ended if sub.complete else t.ended
        for index, busy in enumerate(lanes):
            if busy <= sub.started:
                lanes[index] = end
                break
        else:
            index = len(lanes)
            lanes.append(end)
            lane_bars.append([])
        call = prefix.rstrip("/")
        word = run_status(sub)
        title = (f"sub-run of {call} (depth {sub.depth}) · {preview(sub.goal, 60)} · {word} · "
                 f"{_secs(sub.seconds)}")
        link = f' onclick="location.hash=\'sub-{_e(call)}\'"'
        colour = {"done": "ok", "cancelled": "cancelled"}.get(word, "error" if sub.complete else "unfinished")
        lane_bars[index].append(_bar(f"sub-run {colour}", sub.started, end, origin, span, title, link))
    return [_row(f"sub-runs {index + 1}", bars) for index, bars in enumerate(lane_bars)]


def _overview(t: Transcript) -> str:
    origin = t.started
    span = max(t.ended - origin, 1e-6)
    planner, program = [], []
    for turn in t.turns:
        link = f' onclick="location.hash=\'turn-{turn.number}\'"'
        if turn.planner is not None:
            req = turn.planner
            end = req.ended if req.ended is not None else t.ended
            tokens = f"{req.input_tokens:,} → {req.output_tokens:,} tokens"
            planner.append(_bar("planner", req.started, end, origin, span,
                                f"turn {turn.number} planner · {_secs(req.seconds)} · {tokens}", link))
        if turn.program is not None and turn.ended is not None:
            start = turn.planner.ended if turn.planner and turn.planner.ended else turn.started
            title = f"turn {turn.number} program · {turn.status} · {_secs(turn.program_seconds)}"
            program.append(_bar("program", start, turn.ended, origin, span, title, link))
    lanes: list[float] = []
    lane_bars: list[list[str]] = []
    for p in t.pmaps:
        end = p.ended if p.ended is not None else t.ended
        for index, busy in enumerate(lanes):
            if busy <= p.started:
                lanes[index] = end
                break
        else:
            index = len(lanes)
            lanes.append(end)
            lane_bars.append([])
        lane_bars[index].append(_bar("pmap", p.started, end, origin, span,
                                     f"pmap {p.span} · {p.total} items · {p.status} · {_secs(p.seconds)}"))
    program_starts = {e["span"]: float(e["ts"]) for e in t.events if e["type"] == "program.start"}
    sandbox = []
    for e in t.events:
        if e["type"] == "sandbox.start":
            # A child starts before the first turn, or when a program needs a fresh one.
            turn_id = str(e["span"]).split(".")[0]
            begin = program_starts.get(f"{turn_id}.program", t.started) if turn_id != "t0" else t.started
            title = f"sandbox child started (pid {e.get('pid')}) · {_secs(float(e['ts']) - begin)}"
            sandbox.append(_bar("sandbox", begin, float(e["ts"]), origin, span, title))
    rows = [_row("sandbox", sandbox), _row("planner", planner), _row("programs", program)]
    rows += [_row(f"pmaps {index + 1}", bars) for index, bars in enumerate(lane_bars)]
    rows += _sub_run_rows(t, origin, span)
    rows += _steering_rows(t, origin, span)
    batches = _batch_bars(t, origin, span)
    if batches:
        rows.append(_row("batches", batches))
    legend = "".join(
        f'<span><i style="background:var(--{name})"></i>{label}</span>'
        for name, label in (("sandbox", "sandbox start"), ("planner", "planner call"), ("program", "program"),
                            ("pmap", "pmap"), ("ok", "call ok"), ("error", "call failed"),
                            ("cancelled", "cancelled"), ("unfinished", "unfinished"))
    )
    return (f'<section class="overview" id="overview"><h2>Run timeline<span class="meta">{_secs(t.seconds)} '
            f'wall time; outlined calls are the {_SLOWEST} slowest</span></h2>'
            f'<div class="rows">{"".join(rows)}</div>{_axis(span)}'
            f'<div class="legend">{legend}</div></section>')


def _steering_rows(t: Transcript, origin: float, span: float) -> list[str]:
    """One row per account whose throttle changed (``concurrency.change``), with one bar per
    stretch of time at one allowed width; its title says the width, of how many, to which
    providers (planner, workers and sub-runs of one account share it), and why it changed."""
    accounts: dict[str, list[Mapping[str, Any]]] = {}
    for event in t.events:
        if event["type"] == "concurrency.change":
            accounts.setdefault(str(event.get("provider") or "a provider"), []).append(event)
    rows = []
    for providers, changes in accounts.items():
        bars = []
        for change, after in zip(changes, [*changes[1:], None], strict=True):
            start = float(change["ts"])
            end = float(after["ts"]) if after is not None else t.ended
            title = (f"{change['allowed']} of {change['ceiling']} requests allowed in flight to "
                     f"{account(providers)} ({change['reason']}) · {_secs(end - start)}")
            allowed = f' data-allowed="{int(change["allowed"])}"'
            bars.append(_bar("pmap", start, end, origin, span, title, allowed))
        rows.append(_row("in flight", bars))
    return rows


def _batch_bars(t: Transcript, origin: float, span: float) -> list[str]:
    """One bar per batch of a ``pmap(..., batch=True)``, from its submission to its end."""
    ends = {e["span"]: e for e in t.events if e["type"] == "batch.end"}
    bars = []
    for start in (e for e in t.events if e["type"] == "batch.start"):
        end = ends.get(start["span"])
        stop = float(end["ts"]) if end is not None else t.ended
        status = str(end["status"]) if end is not None else "unfinished"
        kind = {"ended": "ok", "canceled": "cancelled", "unfinished": "unfinished"}.get(status, "error")
        title = (f"batch {start['batch_id']} · {start['requests']:,} requests (items {start['first_item']}-"
                 f"{start['last_item']}) · {status} · {_secs(stop - float(start['ts']))}")
        if end is not None:
            title += " · " + batch_counts(end)
        bars.append(_bar(f"call {kind}", float(start["ts"]), stop, origin, span, title,
                         f' data-batch="{_e(start["batch_id"])}"'))
    return bars


def _stats(t: Transcript) -> str:
    u = t.usage
    limit = t.limits.get("max_tokens")
    speedup = t.parallel_speedup
    items = [
        ("turns", f"{len(t.turns)}"),
        ("tokens", f"{u.total_tokens:,}" + (f" of {limit:,}" if isinstance(limit, int) else "")),
        ("planner", f"{u.planner_input_tokens:,} in / {u.planner_output_tokens:,} out"),
        ("workers", f"{u.worker_input_tokens:,} in / {u.worker_output_tokens:,} out"),
        ("cost", f"${u.cost:.4f}" if u.cost is not None else "unknown"),
        ("wall time", _secs(t.seconds)),
        ("calls", f"{len(t.calls)}"),
    ]
    if t.failed_calls:
        items.append(("failed calls", f"{sum(t.failed_calls.values()):,} of {t.calls_made:,}"))
    if t.cached_calls:
        items.append(("cached", f"{t.cached_calls:,} worker requests at no cost"))
    steered = steering_note(t.events)
    if steered:
        items.append(("throttled", steered))
    batched = batch_note(t.events)
    if batched:
        items.append(("batches", batched))
    if t.resumed_from is not None:
        planner, worker = t.replayed.get("planner", 0), t.replayed.get("worker", 0)
        replayed = f"{planner:,} planner, {worker:,} worker replies replayed"
        items.append(("resumed", f"from {t.resumed_from}: {replayed}"))
    items += [
        ("speed-up", f"{speedup:.1f}x" if speedup is not None else "-"),
        ("models", f"{t.run.get('planner')} / {t.run.get('worker')}"),
    ]
    return "".join(f"<li><b>{_e(k)}</b>{_e(v)}</li>" for k, v in items)


def _failures(t: Transcript) -> str:
    """The header's line on failed calls: what failed, and that the answer rests on it."""
    if not t.failed_calls:
        return ""
    count = sum(t.failed_calls.values())
    what = f"{count:,} of {max(t.calls_made, count):,} calls failed: {failure_kinds(t.failed_calls)}."
    if t.partial:
        what += " The answer was built while these calls were failing; it may be incomplete."
    return f'<p class="failures" id="failures">{_e(what)}</p>'


def _ending(t: Transcript, words: Callable[[str], str]) -> str:
    """The header's lines on how the run ended, when not with a plain answer: the error that
    ended it (a budget, a clock, a provider), and an answer that is a fallback."""
    parts = []
    if t.error:
        error = f'{t.error.get("type", "Error")}: {words(str(t.error.get("message", "")))}'
        parts.append(f'<div class="error-box" id="run-error">{_e(error)}</div>')
    if t.fallback_used:
        parts.append('<p class="note" id="fallback">The answer is a fallback: the program\'s last '
                     '<code>answer</code> value, not given to <code>done()</code>.</p>')
    return "".join(parts)


def render_html(t: Transcript, *, words: Callable[[str], str] = _same) -> str:
    """The page as a string; ``words`` rewrites each error message shown (the CLI spells
    settings as its flags)."""
    page = resources.files("ptcrun.transcript").joinpath("timeline.html")
    template = Template(page.read_text(encoding="utf-8"))
    timed = sorted((c for c in t.calls if c.seconds is not None), key=lambda c: -(c.seconds or 0.0))
    slow = {c.span for c in timed[:_SLOWEST]}
    calls = {prefix + c.span: _call_detail(c) for prefix, run in t.walk() for c in run.calls}
    # Inside <script>, only "</" can end the element early; JSON allows "<\/" for it.
    calls_json = json.dumps(calls, ensure_ascii=False).replace("</", "<\\/")
    return template.substitute(
        title=_e(preview(t.goal, 80)),
        status_class=_e(f"{run_status(t)} partial" if t.partial else run_status(t)),
        status=_e(status_text(run_status(t), t.failed_calls, t.calls_made, t.partial)),
        failures=_failures(t) + _ending(t, words),
        goal=_e(t.goal),
        stats=_stats(t),
        overview=_overview(t),
        turns="\n".join([*(_turn(turn, t, slow, "", words) for turn in t.turns),
                          *(_sub_run(prefix, sub, slow, words) for prefix, sub in list(t.walk())[1:])]),
        source=_e(t.path.name if t.path else "events in memory"),
        calls=calls_json,
    )


def write_html(
    t: Transcript, path: str | os.PathLike[str] | None = None, *, words: Callable[[str], str] = _same
) -> Path:
    """Write the page and return its path (by default ``timeline.html`` beside the transcript).

    Raises:
        ConfigError: no ``path`` was given for a transcript that was not read from a file.
    """
    if path is None:
        if t.path is None:
            raise ConfigError("this transcript was not read from a file; pass the path to write the page to.")
        path = t.path.parent / "timeline.html"
    out = Path(path)
    out.write_text(render_html(t, words=words), encoding="utf-8")
    return out
