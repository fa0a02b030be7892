"""Place the sandbox's events in the run's span tree, as transcript events.

The sandbox numbers its pmaps, items and tool calls; this turns those numbers into span ids
under the current turn's program: ``t2.program`` → ``t2.m1`` (a pmap) → ``t2.m1.i4`` (its item 4)
→ ``t2.c17`` (a tool call made by that item) → ``t2.c17.llm1`` (the worker's LLM request).

Events of pmaps and items come from the child, which is not trusted: their int fields were
checked by the protocol, and the rest is reduced here to what the schema allows, so a hostile
child cannot write a transcript that the reader refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..transcript._schema import (
    CallEnd,
    CallStart,
    Event,
    ItemEnd,
    ItemStart,
    LLMEnd,
    PmapEnd,
    PmapStart,
    ProgramOutput,
    SandboxStart,
)

__all__ = ["SandboxSpans"]


class SandboxSpans:
    """Turns the sandbox's ``on_event`` dicts into transcript events under the running turn."""

    def __init__(self, emit: Callable[[Event], object]) -> None:
        self._emit = emit
        #: The turn whose program is running; set by the turn loop.
        self.turn = 0
        self._pmap_parents: dict[str, str] = {}
        #: Where the replies of each running worker call came from (``llm.end``'s ``cached``).
        self._sources: dict[str, list[str | None]] = {}
        self._started = False  # whether the run's first sandbox child has started

    def note(self, event: Event) -> None:
        """Note a worker's ``llm.end``, so its call's ``call.end`` can say whether any request was sent."""
        if isinstance(event, LLMEnd) and event.parent is not None:
            self._sources.setdefault(event.parent, []).append(event.cached if event.status == "ok" else None)

    def _program(self) -> str:
        return f"t{self.turn}.program"

    def _item(self, pmap: Any, item: Any) -> str | None:
        if pmap is None or item is None:
            return None
        return f"t{self.turn}.m{pmap}.i{item}"

    def call_span(self, context: dict[str, Any] | None) -> str:
        """The span of the tool call being served (``context`` from the driver)."""
        if not context:
            return self._program()
        return f"t{self.turn}.c{context['call']}"

    def on_sandbox_event(self, event: Mapping[str, Any]) -> None:
        """Emit the transcript event for one sandbox event.

        Raises:
            ValueError: the sandbox reported an event type this module does not place.
        """
        self._emit(self._translate(event))

    def _translate(self, event: Mapping[str, Any]) -> Event:
        kind = event["type"]
        turn = f"t{self.turn}"
        if kind == "sandbox.start":
            layers = event.get("layers")
            # The first child starts while the planner writes its first reply: it is the run's,
            # whichever turn has begun by then; a later start is a restart in the running turn.
            if not self._started:
                self._started = True
                turn = "t0"
            return SandboxStart(span=f"{turn}.sandbox", parent=turn if turn != "t0" else "run",
                                pid=event["pid"], layers=layers if isinstance(layers, dict) else None,
                                seed=event.get("seed"))
        if kind == "output":
            return ProgramOutput(span=self._program(), parent=turn, text=event["text"],
                                 pmap=event.get("pmap"), item=event.get("item"))
        if kind in ("call.start", "call.end"):
            return self._call(kind, event)
        if kind in ("pmap.start", "pmap.end"):
            return self._pmap(kind, event)
        if kind in ("item.start", "item.end"):
            return self._pmap_item(kind, event)
        raise ValueError(f"the sandbox reported an event of unknown type {kind!r}")

    def _call(self, kind: str, event: Mapping[str, Any]) -> Event:
        span = f"t{self.turn}.c{event['call']}"
        parent = self._item(event.get("pmap"), event.get("item")) or self._program()
        where = {"call": event["call"], "tool": event["tool"], "pmap": event.get("pmap"),
                 "item": event.get("item")}
        if kind == "call.start":
            return CallStart(span=span, parent=parent, args=event["args"], kwargs=event["kwargs"], **where)
        sources = self._sources.pop(span, None)
        cached = sources[-1] if sources and all(sources) else None
        return CallEnd(span=span, parent=parent, ok=event["ok"], value=event.get("value"),
                       error=event.get("error"), seconds=event["seconds"], cached=cached, **where)

    def _pmap(self, kind: str, event: Mapping[str, Any]) -> Event:
        span = f"t{self.turn}.m{event['pmap']}"
        if kind == "pmap.start":
            parent = self._item(event.get("parent_pmap"), event.get("parent_item")) or self._program()
            self._pmap_parents[span] = parent
            return PmapStart(span=span, parent=parent, pmap=event["pmap"], total=event["total"],
                             concurrency=event["concurrency"])
        return PmapEnd(span=span, parent=self._pmap_parents.get(span, self._program()), pmap=event["pmap"],
                       done=event["done"], failed=event["failed"], timed_out=event.get("timed_out") is True)

    def _pmap_item(self, kind: str, event: Mapping[str, Any]) -> Event:
        pmap_span = f"t{self.turn}.m{event['pmap']}"
        where = {"span": f"{pmap_span}.i{event['item']}", "parent": pmap_span,
                 "pmap": event["pmap"], "item": event["item"], "slot": event["slot"]}
        if kind == "item.start":
            return ItemStart(**where)
        return ItemEnd(ok=event.get("ok") is True, error=_payload(event.get("error")), **where)


def _payload(error: Any) -> dict[str, Any] | None:
    """An item's error as an error payload, whatever the child sent."""
    if error is None or isinstance(error, dict):
        return error
    return {"type": "Error", "message": str(error)}
