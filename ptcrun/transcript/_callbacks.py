"""Observers that hand a run's progress to the application's own function, in its own words.

- :func:`progress_callback`: ``fn(completed, total, latest_result)`` after each pmap item that
  finished well, the simple case.
- :func:`parallel_events`: the worker-pool events ``parallel.start``, ``worker.start``,
  ``worker.complete`` and ``parallel.complete``, for code written against that vocabulary.

Like every observer, each is called with each event as the run emits it, on the run's own
thread, before the run goes on, so ``fn`` must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._events import Observer
from ._progress_state import Event, in_sub_run

__all__ = ["parallel_events", "progress_callback"]


def progress_callback(fn: Callable[[int, int, Any], None]) -> Observer:
    """Turn ``fn(completed, total, latest_result)`` into an observer of pmap progress.

    ``fn`` is called after each item of a top-level pmap that finished well (not after a
    failed one): ``completed`` counts the items of that pmap finished so far, failed ones
    included; ``total`` is its item count; ``latest_result`` is the value of the last tool
    call the item made (``None`` if it made none). Items finish in any order. Nested pmaps
    count inside their parent's item, not on their own.

    Example::

        def show(done, total, latest):
            print(f"{done}/{total} - latest: {latest}")

        Runtime(planner=..., observers=[ptcrun.progress_callback(show)])
    """
    totals: dict[str, int] = {}
    finished: dict[str, int] = {}
    last_value: dict[str, Any] = {}

    def observe(event: Event) -> None:
        if in_sub_run(event):
            return  # the run's own top-level pmaps only
        kind = event["type"]
        if kind == "pmap.start":
            if str(event.get("parent", "")).endswith(".program"):
                totals[event["span"]] = int(event.get("total", 0))
                finished[event["span"]] = 0
        elif kind == "call.end" and event.get("ok"):
            last_value[str(event.get("parent"))] = event.get("value")
        elif kind == "item.end":
            pmap = str(event.get("parent"))
            if pmap in totals:
                finished[pmap] += 1
                value = last_value.pop(str(event.get("span")), None)
                if event.get("ok"):
                    fn(finished[pmap], totals[pmap], value)
        elif kind == "pmap.end":
            totals.pop(event["span"], None)
            finished.pop(event["span"], None)

    return observe


def parallel_events(fn: Callable[[dict[str, Any]], None]) -> Observer:
    """Turn the run's pmap events into worker-pool events and pass each to ``fn``.

    =======================  ===========================================================
    ``parallel.start``       a pmap started: ``worker_count`` (threads), ``item_count``
    ``worker.start``         an item started: ``worker_id`` (its slot), ``item_index``,
                             ``total_items``
    ``worker.complete``      an item ended: the same, plus ``error`` (true or false)
    ``parallel.complete``    a pmap ended: ``items_processed``, ``items_failed``,
                             ``timed_out``
    =======================  ===========================================================

    Each is ``{"type", "ts", "source": <pmap span>, "data": {...}}``.
    """
    totals: dict[str, int] = {}

    def send(kind: str, event: Event, source: str, data: dict[str, Any]) -> None:
        fn({"type": kind, "ts": event.get("ts"), "source": source, "data": data})

    def observe(event: Event) -> None:
        kind = event["type"]
        if kind == "pmap.start":
            totals[event["span"]] = int(event.get("total", 0))
            send("parallel.start", event, event["span"],
                 {"worker_count": event.get("concurrency"), "item_count": event.get("total")})
        elif kind in ("item.start", "item.end"):
            pmap = str(event.get("parent"))
            data = {"worker_id": event.get("slot"), "item_index": event.get("item"),
                    "total_items": totals.get(pmap)}
            if kind == "item.start":
                send("worker.start", event, pmap, data)
            else:
                send("worker.complete", event, pmap, {**data, "error": not event.get("ok")})
        elif kind == "pmap.end":
            totals.pop(event["span"], None)
            send("parallel.complete", event, event["span"], {
                "items_processed": int(event.get("done") or 0) + int(event.get("failed") or 0),
                "items_failed": event.get("failed"),
                "timed_out": bool(event.get("timed_out")),
            })

    return observe
