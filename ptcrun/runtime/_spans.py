"""Place the sandbox's events in the run's span tree.

The sandbox numbers its pmaps, items and tool calls; this turns those numbers into span ids
under the current turn's program: ``t2.program`` → ``t2.m1`` (a pmap) → ``t2.m1.i4`` (its item 4)
→ ``t2.c17`` (a tool call made by that item) → ``t2.c17.llm1`` (the worker's LLM request).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["SandboxSpans"]

_RENAMES = {"output": "program.output"}


class SandboxSpans:
    def __init__(self, emit: Callable[..., Any]) -> None:
        self._emit = emit
        #: The turn whose program is running; set by the turn loop.
        self.turn = 0
        self._pmap_parents: dict[str, str] = {}

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

    def on_sandbox_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        fields = {k: v for k, v in event.items() if k != "type"}
        program = self._program()
        if kind == "sandbox.start":
            self._emit(kind, f"t{self.turn}.sandbox", f"t{self.turn}" if self.turn else "run", **fields)
        elif kind == "pmap.start":
            span = f"t{self.turn}.m{fields['pmap']}"
            parent = self._item(fields.pop("parent_pmap", None), fields.pop("parent_item", None)) or program
            self._pmap_parents[span] = parent
            self._emit(kind, span, parent, **fields)
        elif kind == "pmap.end":
            span = f"t{self.turn}.m{fields['pmap']}"
            self._emit(kind, span, self._pmap_parents.get(span, program), **fields)
        elif kind in ("item.start", "item.end"):
            span = self._item(fields["pmap"], fields["item"])
            self._emit(kind, span, f"t{self.turn}.m{fields['pmap']}", **fields)
        elif kind in ("call.start", "call.end"):
            parent = self._item(fields.get("pmap"), fields.get("item")) or program
            self._emit(kind, f"t{self.turn}.c{fields['call']}", parent, **fields)
        else:
            self._emit(_RENAMES.get(kind, kind), program, f"t{self.turn}", **fields)
