"""Where the app's events come from: a live trainer, or a run directory on disk.

Both feeds have the same small surface so the app treats them alike: `read()` and
`ended()` run in the app's thread worker; `send()` and `close()` on the UI thread.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from tui.bridge import Bridge, TrainerExit
from tui.replay import EventReader, events_path

Event = dict[str, Any]


@dataclass(frozen=True)
class FeedEnd:
    """Why a feed has no more events: `finished` (normal) or `died` (trainer lost)."""

    kind: str
    detail: str = ""


class LiveFeed:
    """Events from a trainer subprocess; controls go back to it."""

    live = True

    def __init__(self, bridge: Bridge, run_dir: str = "") -> None:
        self.bridge = bridge
        self.run_dir = run_dir
        self.bad_lines = 0
        self._saw_finish = False
        self._closed = False

    def start(self) -> None:
        self.bridge.start()

    def read(self, timeout: float) -> list[Event]:
        events = self.bridge.poll(timeout)
        if any(e.get("type") == "sweep_finished" for e in events):
            self._saw_finish = True
        return events

    def ended(self) -> FeedEnd | None:
        if self._closed:
            return FeedEnd("closed")
        if self.bridge.is_alive():
            return None
        how = TrainerExit(self.bridge.exitcode())
        if self._saw_finish and how.exitcode == 0:
            return FeedEnd("finished")
        tail = trainer_log_tail(self.bridge)
        detail = how.describe() + (f": {tail}" if tail else "")
        log = getattr(self.bridge, "log_path", "")
        if tail and log:
            detail += f" (full log: {log})"
        return FeedEnd("died", detail)

    def send(self, message: dict[str, Any]) -> None:
        self.bridge.send(message)

    def close(self) -> None:
        self._closed = True
        self.bridge.shutdown()


def trainer_log_tail(bridge: Bridge, lines: int = 1) -> str:
    """The last line(s) the trainer wrote to its log, if the bridge keeps one (the crash's cause)."""
    path = getattr(bridge, "log_path", None)
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " / ".join(kept[-lines:])


class ReplayFeed:
    """Events from a run directory's events.jsonl, followed while it grows."""

    live = False

    def __init__(self, run_dir: str, poll_s: float = 0.25, follow: bool = True) -> None:
        self.run_dir = run_dir
        self.reader = EventReader(events_path(run_dir))
        self.poll_s = poll_s
        self.follow = follow
        self._saw_finish = False
        self._closed = False

    @property
    def bad_lines(self) -> int:
        return self.reader.bad_lines

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> list[Event]:
        events = self.reader.read()
        if any(e.get("type") == "sweep_finished" for e in events):
            self._saw_finish = True
        if not events and timeout > 0:
            time.sleep(min(timeout, self.poll_s))  # ~4 polls a second while following
        return events

    def ended(self) -> FeedEnd | None:
        if self._closed:
            return FeedEnd("closed")
        if not self.reader.at_end:
            return None
        if self._saw_finish:
            return FeedEnd("finished")
        if not self.follow:
            return FeedEnd("finished", "the sweep did not finish in this run directory")
        return None

    def send(self, message: dict[str, Any]) -> None:
        pass  # a recorded sweep has nothing to control

    def close(self) -> None:
        self._closed = True

