"""A pure model of a sweep, built by applying events one at a time (their handlers: tui.state.events).

The live queue and a replayed events.jsonl feed the same `SweepState.apply`, so
anything the app shows live it can show again from disk (DESIGN.md). No Textual,
no torch: tests drive it directly.

Events from a file may be foreign or damaged; `apply` never raises on a bad event,
it counts it in `SweepState.skipped` (shown in the UI) and moves on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tui.state.events import HANDLERS
from tui.state.run import EpochRecord, EvalPoint, RunState
from tui.state.sweep_fields import Alert, SweepFields

__all__ = ["Alert", "EpochRecord", "EvalPoint", "RunState", "SweepState"]


@dataclass
class SweepState(SweepFields):
    """The sweep as the app shows it, built by applying events one at a time."""

    def apply(self, event: Any) -> bool:
        """Apply one event; False (and counted in `skipped`) if it could not be used."""
        try:
            if not isinstance(event, dict):
                raise TypeError("not an object")
            handler = HANDLERS.get(event.get("type"))
            if handler is None:
                raise KeyError(f"unknown event type {event.get('type')!r}")
            handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            self.skipped += 1
            return False
        run = self.runs.get(event.get("run")) if isinstance(event.get("run"), str) else None
        if run is not None:
            run.version += 1
        t = event.get("t") if event.get("type") != "startup" else None  # start-up has a clock of its own
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > self.clock:
            self.clock = float(t)
        self.version += 1
        return True

    def apply_all(self, events: list[Any]) -> None:
        for event in events:
            self.apply(event)
