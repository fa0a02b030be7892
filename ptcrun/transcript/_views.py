"""Text views of a transcript: the turn-by-turn ``show``, the span ``tree`` and the run summary.

Each function takes a :class:`Transcript` and returns plain text (no colour codes), so the
same text goes to a terminal, a file or a test. Nothing is cut except where a preview says so:
reply previews in ``show --calls`` keep one line of a set width.

An answer built while calls were failing is never shown as a plain ``done``: its status reads
``done (partial: 43 of 92 calls failed)`` wherever a status is shown (:func:`status_text`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._transcript import CallRecord, PmapRecord, SpanRecord, Transcript, TurnRecord

__all__ = [
    "failure_kinds", "preview", "render_show", "render_summary", "render_tree", "reused", "status_text",
]

_PREVIEW_CHARS = 60
_SLOWEST = 3


def preview(value: Any, width: int = _PREVIEW_CHARS) -> str:
    """One line of at most ``width`` characters showing ``value`` (JSON for non-strings)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def failure_kinds(failed: Mapping[str, int]) -> str:
    """``"43 BudgetExceeded, 2 ToolError"``: failures by kind, most frequent first."""
    ranked = sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{count:,} {kind}" for kind, count in ranked)


def status_text(status: str, failed: Mapping[str, int], calls: int, partial: bool) -> str:
    """The run's status as every view shows it: ``done``, or
    ``done (partial: 43 of 92 calls failed)`` when the answer was built while calls failed."""
    if not partial:
        return status
    count = sum(failed.values())
    return f"{status} (partial: {count:,} of {max(calls, count):,} call{'s' * (calls != 1)} failed)"


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


def _error_text(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    kind = error.get("type") or "Error"
    where = f"line {error['line']}: " if error.get("line") else ""
    return f"{where}{kind}: {error.get('message', '')}"


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
    return [
        (f"run {t.path.parent.name if t.path else '(in memory)'}: {_status(t)} · {len(t.turns)} "
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
        failed = sum(1 for c in turn.calls if c.status == "error")
        cached = sum(1 for c in turn.calls if c.cached)
        notes = [f"{failed} failed"] * bool(failed) + [f"{cached} cached"] * bool(cached)
        parts.append(f"{len(turn.calls)} call{'s' * (len(turn.calls) != 1)}"
                     + (f" ({', '.join(notes)})" if notes else ""))
        if turn.worker_input_tokens or turn.worker_output_tokens:
            parts.append(f"workers {_tokens(turn.worker_input_tokens, turn.worker_output_tokens)}")
    return f"── turn {turn.number} ── " + " · ".join(parts)


def _call_rows(calls: Iterable[CallRecord]) -> list[str]:
    rows = [["item", "slot", "call", "tool", "status", "seconds", "tokens", "reply"]]
    for c in sorted(calls, key=lambda c: (c.item if c.item is not None else -1, c.started)):
        if c.ok:
            shown = c.reply if c.reply is not None else c.value
        elif c.error:
            shown = f"{c.error.get('type', 'Error')}: {c.error.get('message', '')}"
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


def reused(source: str) -> str:
    """How a reply that cost nothing is marked in every view: ``cached (disk)``, ``replayed``."""
    return "replayed" if source == "resume" else f"cached ({'this run' if source == 'run' else source})"


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


def _show_turn(turn: TurnRecord, *, calls: bool) -> list[str]:
    out = [_turn_line(turn)]
    if turn.program is None:
        if turn.reply is None:
            out.append("  (no reply from the planner)")
        else:
            out.append("  no program in the reply; the reply was:")
            out.append(_indent(turn.reply, "    "))
        return out
    error_line = turn.error.get("line") if turn.error else None
    out.append(_numbered(turn.program, error_line if isinstance(error_line, int) else None))
    if turn.note:
        out.append(f"  note: {turn.note}")
    if turn.output:
        out.append("  output:")
        out.append(_indent(turn.output, "    "))
    else:
        out.append("  output: (none)")
    if turn.error:
        out.append(f"  error: {_error_text(turn.error)}")
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
                out.extend("    " + row for row in _call_rows(p.calls))
        direct = [c for c in turn.calls if c.span not in in_pmaps]
        if direct:
            out.append("  calls outside any pmap:")
            out.extend("    " + row for row in _call_rows(direct))
    return out


def render_show(t: Transcript, *, turn: int | None = None, calls: bool = False) -> str:
    """The turn-by-turn view: each turn's program with line numbers, output, error, tokens, time.

    With ``calls``, each pmap's calls follow their turn: duration, status, reply preview.

    Raises:
        TranscriptError: ``turn`` is not a turn of the run.
    """
    chosen = [t.turn(turn)] if turn is not None else list(t.turns)
    out = _header(t)
    for record in chosen:
        out.append("")
        out.extend(_show_turn(record, calls=calls))
    if turn is None:
        out.append("")
        out.append(render_summary(t))
    return "\n".join(out) + "\n"


def render_summary(t: Transcript) -> str:
    """A few lines: status, turns, tokens by role, cost, wall time and parallel speed-up."""
    u = t.usage
    limit = t.limits.get("max_tokens")
    of = f" of {limit:,}" if isinstance(limit, int) else ""
    lines = [
        f"status     {_status(t)}" + (f" ({t.error['type']}: {t.error['message']})" if t.error else ""),
    ]
    if t.failed_calls:
        count = sum(t.failed_calls.values())
        built = "; the answer was built while they were failing" if t.partial else ""
        lines.append(f"failed     {count:,} of {max(t.calls_made, count):,} calls: "
                     f"{failure_kinds(t.failed_calls)}{built}")
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


def steering_note(events: Iterable[Mapping[str, Any]]) -> str:
    """What rate limits did to the worker requests in flight (``concurrency.change``), in one
    line; empty when they never changed it."""
    changes = [e for e in events if e.get("type") == "concurrency.change"]
    if not changes:
        return ""
    lowest = min(changes, key=lambda e: e["allowed"])
    last = changes[-1]
    return (f"rate limits steered the worker requests in flight {len(changes):,} time"
            f"{'s' * (len(changes) != 1)}: down to {lowest['allowed']} of {lowest['ceiling']} "
            f"({lowest['reason']}), {last['allowed']} at the end")


_BATCH_COUNTS = ("succeeded", "errored", "canceled", "expired")


def batch_counts(fields: Mapping[str, Any]) -> str:
    """``"5 succeeded, 1 errored"``: how a batch's requests ended."""
    counts = [f"{int(fields.get(k) or 0):,} {k}" for k in _BATCH_COUNTS if fields.get(k)]
    return ", ".join(counts) or "no results"


def batch_note(events: Iterable[Mapping[str, Any]]) -> str:
    """The run's batches (``pmap(..., batch=True)``) in one line: how many requests, how they
    ended, what they cost; empty when the run sent none."""
    starts = [e for e in events if e.get("type") in ("batch.start", "batch.end")]
    if not starts:
        return ""
    requests = sum(int(e.get("requests") or 0) for e in starts if e["type"] == "batch.start")
    ends = [e for e in starts if e["type"] == "batch.end"]
    batches = sum(1 for e in starts if e["type"] == "batch.start")
    totals = {k: sum(int(e.get(k) or 0) for e in ends) for k in _BATCH_COUNTS}
    costs = [e.get("cost") for e in ends]
    cost = ""
    if costs and None not in costs:
        cost = f", ${sum(c for c in costs if c is not None):.4f} at the batch price"
    cancelled = sum(1 for e in ends if e.get("status") == "canceled")
    note = f"; {cancelled} cancelled by a clock or a cancel" if cancelled else ""
    return (f"{batches} batch{'es' * (batches != 1)} of {requests:,} worker requests: "
            f"{batch_counts(totals)}{cost}{note}")


def _status(t: Transcript) -> str:
    return status_text(t.status, t.failed_calls, t.calls_made, t.partial)


# -- tree --------------------------------------------------------------------------------------


def _span_label(s: SpanRecord, slow_rank: Mapping[str, int]) -> str:
    f = s.fields
    kind = s.kind
    if kind == "run":
        head = f"run: {f.get('goal', '')!s}"
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
        head = f"sandbox started (pid {f.get('pid')})"
        return head
    else:
        head = kind
    text = f"{head}  {s.status}  {_secs(s.seconds)}"
    if f.get("retries"):
        text += f"  ↻ {_retry_note(f['retries'])}"
    if s.span in slow_rank:
        text += f"  ◀ slowest #{slow_rank[s.span]}"
    return text


def render_tree(t: Transcript, *, slowest: int = _SLOWEST) -> str:
    """The span tree with durations and status; the ``slowest`` slowest calls are marked."""
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
    lines: list[str] = []

    def walk(node: SpanRecord, prefix: str, last: bool, root: bool) -> None:
        joint = "" if root else ("└─ " if last else "├─ ")
        lines.append(prefix + joint + _span_label(node, slow_rank))
        kids = children.get(node.span, [])
        below = prefix + ("" if root else ("   " if last else "│  "))
        for i, kid in enumerate(kids):
            walk(kid, below, i == len(kids) - 1, False)

    roots = children.get(None, [])
    for root in roots:
        walk(root, "", True, True)
    if slow_rank:
        lines.append("")
        lines.append(f"◀ marks the {len(slow_rank)} slowest call{'s' * (len(slow_rank) != 1)}.")
    return "\n".join(lines) + "\n"
