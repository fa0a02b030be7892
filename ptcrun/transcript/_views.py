"""Text views of a transcript: the turn-by-turn ``show``, the span ``tree`` and the run summary.

Each function takes a :class:`Transcript` and returns plain text (no colour codes), so the
same text goes to a terminal, a file or a test. Nothing is cut except where a preview says so:
reply previews in ``show --calls`` keep one line of a set width.

An answer built while calls were failing is never shown as a plain ``done``: its status reads
``done (partial: 43 of 92 calls failed)`` wherever a status is shown
(:func:`~._wording.status_text`). A run with no ``run.end`` reads ``running`` or
``interrupted`` (:func:`~._runs.run_status`), in every view as in ``ptcrun runs``. The words the
views share with the HTML page and the live progress are ``_wording``'s.

It runs past 400 lines on purpose: the three views share their row helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._runs import program_ender, run_status
from ._transcript import CallRecord, PmapRecord, SpanRecord, Transcript, TurnRecord
from ._wording import (
    batch_counts,
    batch_note,
    failed_notes,
    failure_kinds,
    planner_prose,
    preview,
    reused,
    status_text,
    steering_note,
    sub_runs_text,
)

__all__ = ["render_show", "render_summary", "render_tree"]

_SLOWEST = 3


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:,.1f} s"


def _tokens(inp: int, out: int) -> str:
    return f"{inp:,} in / {out:,} out"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.rstrip("\n").split("\n"))


def _same(text: str) -> str:
    return text


def _error_text(error: Mapping[str, Any] | None, words: Callable[[str], str] = _same) -> str:
    if not error:
        return ""
    kind = error.get("type") or "Error"
    where = f"line {error['line']}: " if error.get("line") else ""
    return f"{where}{kind}: {words(str(error.get('message', '')))}"


def _calls(count: int) -> str:
    return f"{count} call{'s' * (count != 1)}"


def _numbered(program: str, error_line: int | None) -> str:
    lines = program.rstrip("\n").split("\n")
    width = len(str(len(lines)))
    out = []
    for number, line in enumerate(lines, 1):
        mark = ">" if number == error_line else " "
        out.append(f" {mark}{number:>{width}} │ {line}")
    return "\n".join(out)


def _header(t: Transcript) -> list[str]:
    run = t.run
    tools = ", ".join(run.get("tools") or []) or "none"
    data = run.get("data") or {}
    if "chunks" in data:
        corpus = f"{data['chunks']:,} chunks, {data.get('chars', 0):,} chars"
    else:
        corpus = ", ".join(f"{name}: {d.get('chunks', 0):,} chunks" for name, d in data.items()) or "none"
    name = f"run {t.path.parent.name if t.path else '(in memory)'}"
    if t.depth:
        name = f"a sub-run (depth {t.depth}) of {name}"
    return [
        (f"{name}: {_status(t)} · {len(t.turns)} "
         f"turn{'s' * (len(t.turns) != 1)} · {t.usage.total_tokens:,} tokens · {_secs(t.seconds)}"),
        f"goal: {t.goal}",
        f"planner: {run.get('planner')} · worker: {run.get('worker')} · tools: {tools} · corpus: {corpus}",
    ]


def _turn_line(turn: TurnRecord) -> str:
    parts = [turn.status, _secs(turn.seconds)]
    if turn.planner is not None:
        parts.append(f"planner {_tokens(turn.planner_input_tokens, turn.planner_output_tokens)}"
                     + (f" ({reused(turn.planner.cached)})" if turn.planner.cached else ""))
    if turn.calls:
        cached = sum(1 for c in turn.calls if c.cached)
        notes = failed_notes(turn) + [f"{cached} cached"] * bool(cached)
        parts.append(f"{len(turn.calls)} call{'s' * (len(turn.calls) != 1)}"
                     + (f" ({', '.join(notes)})" if notes else ""))
        if turn.worker_input_tokens or turn.worker_output_tokens:
            parts.append(f"workers {_tokens(turn.worker_input_tokens, turn.worker_output_tokens)}")
    return f"── turn {turn.number} ── " + " · ".join(parts)


def _call_rows(calls: Iterable[CallRecord], words: Callable[[str], str] = _same) -> list[str]:
    rows = [["item", "slot", "call", "tool", "status", "seconds", "tokens", "reply"]]
    for c in sorted(calls, key=lambda c: (c.item if c.item is not None else -1, c.started)):
        if c.ok:
            shown = c.reply if c.reply is not None else c.value
        elif c.error:
            shown = f"{c.error.get('type', 'Error')}: {words(str(c.error.get('message', '')))}"
        else:
            shown = ""
        tokens = f"{c.input_tokens + c.output_tokens:,}" if c.llm else "-"
        rows.append([
            "-" if c.item is None else str(c.item),
            "-" if c.slot is None else str(c.slot),
            f"c{c.id}",
            c.tool,
            c.status + (f", {_retries(c.retries)}" if c.retries else "")
            + (f", {reused(c.cached)}" if c.cached else ""),
            "?" if c.seconds is None else f"{c.seconds:.3f}",
            tokens,
            preview(shown) if shown is not None else "",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["".join(c.ljust(w) + "  " for c, w in zip(r[:-1], widths, strict=True)) + r[-1] for r in rows]


def _replies(count: int) -> str:
    return f"{count:,} repl{'y' if count == 1 else 'ies'}"


def _retries(count: int) -> str:
    return f"{count} retr{'y' if count == 1 else 'ies'}"


def _retry_note(retries: Iterable[Mapping[str, Any]]) -> str:
    """``"retried 2× (429 rate limited, waited 1.0 s; …)"``: what each retry was for."""
    retries = list(retries)
    reasons = "; ".join(
        f"{r.get('reason', '?')}, waited {_secs(r.get('wait'))}"
        + (f", request id {r['request_id']}" if r.get("request_id") else "")
        for r in retries
    )
    return f"retried {len(retries)}× ({reasons})"


def _pmap_line(p: PmapRecord) -> str:
    counts = f"{p.done} ok, {p.failed} failed" if p.done is not None else f"{len(p.items)} started"
    nested = f" (in {p.parent})" if p.parent and ".m" in p.parent else ""
    return (
        f"pmap {p.span}{nested}: {p.total} item{'s' * (p.total != 1)}, {p.concurrency} "
        f"thread{'s' * (p.concurrency != 1)}, {counts}, {p.status}, {_secs(p.seconds)}"
    )


def _prompt_lines(turn: TurnRecord) -> list[str]:
    """The planner's whole request of a turn: its system prompt, then each message."""
    if turn.planner is None:
        return ["  prompt: (no planner request was recorded)"]
    out = [f"  prompt, system ({len(turn.planner.system):,} chars):", _indent(turn.planner.system, "    │ ")]
    for number, message in enumerate(turn.planner.messages, 1):
        content = str(message.get("content", ""))
        out.append(f"  prompt, message {number} ({message.get('role', '?')}, {len(content):,} chars):")
        out.append(_indent(content, "    │ "))
    return out


def _show_turn(
    turn: TurnRecord, *, calls: bool, prompt: bool = False, words: Callable[[str], str] = _same
) -> list[str]:
    out = [_turn_line(turn)]
    if prompt:
        out.extend(_prompt_lines(turn))
    before, after = planner_prose(turn.reply) if turn.reply is not None else ("", "")
    if turn.program is not None and before:
        out.append("  planner:")
        out.append(_indent(before, "    "))
    if turn.program is None:
        if turn.reply is None:
            out.append("  (no reply from the planner)")
        else:
            out.append("  no program in the reply; the reply was:")
            out.append(_indent(turn.reply, "    "))
        return out
    error_line = turn.error.get("line") if turn.error else None
    out.append(_numbered(turn.program, error_line if isinstance(error_line, int) else None))
    if after:
        out.append("  planner, after the code:")
        out.append(_indent(after, "    "))
    if turn.note:
        out.append(f"  note: {words(turn.note)}")
    if turn.output:
        out.append("  output:")
        out.append(_indent(turn.output, "    "))
    else:
        out.append("  output: (none)")
    if turn.error:
        out.append(f"  error: {_error_text(turn.error, words)}")
        if turn.error.get("source_line"):
            out.append(f"      {turn.error['source_line']}")
    if turn.restarted:
        out.append("  the sandbox was restarted after this program")
    if turn.status in ("done", "invalid_answer"):
        refused = " - refused: it did not match the schema" if turn.status == "invalid_answer" else ""
        out.append(f"  done({json.dumps(turn.answer, ensure_ascii=False)}){refused}")
    elif turn.status == "failed":
        out.append(f"  fail({json.dumps(turn.answer, ensure_ascii=False)})")
    if calls:
        in_pmaps = {c.span for p in turn.pmaps for c in p.calls}
        for p in turn.pmaps:
            out.append("  " + _pmap_line(p))
            if p.calls:
                out.extend("    " + row for row in _call_rows(p.calls, words))
        direct = [c for c in turn.calls if c.span not in in_pmaps]
        if direct:
            out.append("  calls outside any pmap:")
            out.extend("    " + row for row in _call_rows(direct, words))
    return out


def render_show(
    t: Transcript,
    *,
    turn: int | None = None,
    calls: bool = False,
    prompt: bool = False,
    words: Callable[[str], str] = _same,
) -> str:
    """The turn-by-turn view: each turn's planner text around its code, the program with line
    numbers, output, error, tokens, time.

    With ``calls``, each pmap's calls follow their turn: duration, status, reply preview. With
    ``prompt``, each turn starts with the planner's whole request: system prompt and messages.
    ``words`` rewrites each error message shown (the CLI spells settings as its flags); what
    the program printed and the planner's text are shown as recorded.

    Raises:
        TranscriptError: ``turn`` is not a turn of the run.
    """
    chosen = [t.turn(turn)] if turn is not None else list(t.turns)
    out = _header(t)
    for record in chosen:
        out.append("")
        out.extend(_show_turn(record, calls=calls, prompt=prompt, words=words))
    if turn is None:
        for prefix, sub in list(t.walk())[1:]:
            out.append("")
            out.extend(_show_sub_run(prefix.rstrip("/"), sub, calls=calls, prompt=prompt, words=words))
        out.append("")
        out.append(render_summary(t, words=words))
    return "\n".join(out) + "\n"


def _show_sub_run(
    call: str, sub: Transcript, *, calls: bool, prompt: bool, words: Callable[[str], str]
) -> list[str]:
    """A sub-run's turns, indented by its depth under a line that names the call that started it."""
    pad = "    " * sub.depth
    out = [
        (f"{pad}══ sub-run of call {call} (depth {sub.depth}) ══ {_status(sub)} · {len(sub.turns)} "
         f"turn{'s' * (len(sub.turns) != 1)} · {sub.usage.total_tokens:,} tokens · {_secs(sub.seconds)}"),
        f"{pad}goal: {sub.goal}",
    ]
    if sub.error:
        out.append(f"{pad}error: {_error_text(sub.error, words)}")
    for record in sub.turns:
        turn = _show_turn(record, calls=calls, prompt=prompt, words=words)
        out.extend(_indent("\n".join(turn), pad).split("\n"))
    return out


def render_summary(t: Transcript, *, words: Callable[[str], str] = _same) -> str:
    """A few lines: status, turns, tokens by role, cost, wall time and parallel speed-up;
    ``words`` rewrites the run's error message."""
    u = t.usage
    limit = t.limits.get("max_tokens")
    of = f" of {limit:,}" if isinstance(limit, int) else ""
    lines = [
        f"status     {_status(t)}" + (f" ({_error_text(t.error, words)})" if t.error else ""),
    ]
    if t.failed_calls:
        count = sum(t.failed_calls.values())
        built = "; the answer was built while they were failing" if t.partial else ""
        lines.append(f"failed     {count:,} of {max(t.calls_made, count):,} calls: "
                     f"{failure_kinds(t.failed_calls)}{built}")
    statuses = t.sub_run_statuses
    if statuses:
        lines.append(f"sub-runs   {sub_runs_text(statuses)}")
    lines += [
        f"turns      {len(t.turns)}",
        f"tokens     {u.total_tokens:,}{of}: "
        f"planner {_tokens(u.planner_input_tokens, u.planner_output_tokens)} ({_calls(u.planner_calls)}), "
        f"workers {_tokens(u.worker_input_tokens, u.worker_output_tokens)} ({_calls(u.worker_calls)})"
        + (f", {u.unsettled_tokens:,} unsettled" if u.unsettled_tokens else ""),
        f"cost       {f'${u.cost:.4f}' if u.cost is not None else 'unknown (no price for a model)'}",
        f"wall time  {_secs(t.seconds)}",
    ]
    speedup = t.parallel_speedup
    if speedup is None:
        lines.append("calls      none")
    else:
        lines.append(
            f"calls      {len(t.calls)}, {_secs(t.call_seconds)} in all; parallel speed-up "
            f"{speedup:.1f}x (sum of call times / time with a call running)"
        )
    if t.cached_calls:
        lines.append(f"cached     {t.cached_calls:,} worker request{'s' * (t.cached_calls != 1)} "
                     "answered by the result cache, at no cost")
    steered = steering_note(t.events)
    if steered:
        lines.append(f"throttled  {steered}")
    batched = batch_note(t.events)
    if batched:
        lines.append(f"batches    {batched}")
    if t.resumed_from is not None:
        planner, worker = t.replayed.get("planner", 0), t.replayed.get("worker", 0)
        lines.append(f"resumed    from {t.resumed_from}: {_replies(planner)} of the planner and "
                     f"{_replies(worker)} of workers replayed, at no cost")
    if t.fallback_used:
        lines.append("answer     a fallback (the program's last `answer` value), not given to done()")
    return "\n".join(lines)


def _status(t: Transcript) -> str:
    return status_text(run_status(t), t.failed_calls, t.calls_made, t.partial)


# -- tree --------------------------------------------------------------------------------------


def _span_label(
    s: SpanRecord,
    slow_rank: Mapping[str, int],
    unfinished_run: str = "unfinished",
    enders: frozenset[str] = frozenset(),
) -> str:
    f = s.fields
    kind = s.kind
    if kind == "run":
        head = f"sub-run: {f.get('goal', '')!s}" if f.get("depth") else f"run: {f.get('goal', '')!s}"
        head = preview(head, 70)
    elif kind == "turn":
        head = f"turn {f.get('turn', '?')}"
    elif kind == "llm":
        tokens = f"{int(f.get('input_tokens') or 0):,} → {int(f.get('output_tokens') or 0):,} tokens"
        what = "planner request" if f.get("role") == "planner" else f"LLM request {s.span.rsplit('.', 1)[-1]}"
        head = f"{what} ({f.get('provider', '')}) {tokens}"
        if f.get("cached"):
            head += f" {reused(str(f['cached']))}"
    elif kind == "program":
        head = "program"
    elif kind == "pmap":
        head = f"pmap {s.span.rsplit('.', 1)[-1]}: {f.get('total', '?')} items"
        if f.get("done") is not None:
            head += f", {f.get('done')} ok, {f.get('failed')} failed"
    elif kind == "item":
        head = f"item {f.get('item')} (slot {f.get('slot')})"
    elif kind == "call":
        head = f"{f.get('tool', 'call')} c{f.get('call')}"
    elif kind == "batch":
        head = (f"batch {f.get('batch_id')}: {f.get('requests', '?')} requests "
                f"(items {f.get('first_item')}-{f.get('last_item')})")
        if f.get("succeeded") is not None:
            head += f", {batch_counts(f)}"
    elif kind == "sandbox":
        seed = f", random seed {f['seed']}" if f.get("seed") is not None else ""
        return f"sandbox started (pid {f.get('pid')}{seed})"
    else:
        head = kind
    status = unfinished_run if kind == "run" and s.status == "unfinished" else s.status
    text = f"{head}  {status}  {_secs(s.seconds)}"
    if f.get("retries"):
        text += f"  ↻ {_retry_note(f['retries'])}"
    if s.span in enders:
        text += "  ◀ ended the program"
    if s.span in slow_rank:
        text += f"  ◀ slowest #{slow_rank[s.span]}"
    return text


def render_tree(t: Transcript, *, slowest: int = _SLOWEST, depth: int | None = None) -> str:
    """The span tree with durations and status; the ``slowest`` slowest calls are marked.

    With ``depth``, only that many levels are drawn (1: the run alone); a span whose children
    are left out says how many spans are below it.
    """
    spans = t.spans()
    children: dict[str | None, list[SpanRecord]] = {}
    known = {s.span for s in spans}
    for s in spans:
        parent = s.parent if s.parent in known else None
        if s.span == "run":
            parent = None
        children.setdefault(parent, []).append(s)
    timed = sorted((c for c in t.calls if c.seconds is not None), key=lambda c: -(c.seconds or 0.0))
    slow_rank = {c.span: rank for rank, c in enumerate(timed[:slowest], 1)}
    # Not among the run's failed calls: the program's error (see program_ender).
    enders = frozenset(
        prefix + ender.span
        for prefix, run in t.walk()
        for ender in map(program_ender, run.turns)
        if ender is not None
    )
    # A run with no end reads as `ptcrun runs` and `show` say it: running, or interrupted.
    unfinished_run = run_status(t) if not t.complete else "unfinished"
    lines: list[str] = []

    def under(node: SpanRecord) -> int:
        return sum(1 + under(kid) for kid in children.get(node.span, []))

    def walk(node: SpanRecord, prefix: str, last: bool, root: bool, level: int) -> None:
        joint = "" if root else ("└─ " if last else "├─ ")
        kids = children.get(node.span, [])
        label = _span_label(node, slow_rank, unfinished_run, enders)
        if kids and depth is not None and level >= depth:
            hidden = under(node)
            lines.append(prefix + joint + label + f"  (+{hidden:,} span{'s' * (hidden != 1)} below)")
            return
        lines.append(prefix + joint + label)
        below = prefix + ("" if root else ("   " if last else "│  "))
        for i, kid in enumerate(kids):
            walk(kid, below, i == len(kids) - 1, False, level + 1)

    roots = children.get(None, [])
    for root in roots:
        walk(root, "", True, True, 1)
    if any("◀ slowest" in line for line in lines):
        lines.append("")
        lines.append(f"◀ marks the {len(slow_rank)} slowest call{'s' * (len(slow_rank) != 1)}.")
    return "\n".join(lines) + "\n"
