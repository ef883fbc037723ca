"""The feed of a trainer this app started: its events over the bridge, controls back to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.runlog import Event
from tui.feeds.base import FeedEnd, log_tail
from tui.feeds.bridge import Bridge, TrainerExit
from tui.state.status import StatusLine

#: How long `r` waits for the old trainer's clean stop before signals end it (a stop is honoured
#: at the next iteration: within 2 s even with multi-second steps, bench/stop.py).
STOP_GRACE_S = 3.0


class LiveFeed:
    """Events from a trainer subprocess; controls go back to it.

    The trainer outlives this feed: `close` (the app ends for any reason but `q`) and `leave` (`d`)
    let it train on headless once it writes a run; `stop_sweep` (`q`) asks it to stop cleanly first;
    `stop_trainer` (`r`) ends it.
    """

    live = True
    follows_trainer = False
    watch: StatusLine | None = None

    def __init__(self, bridge: Bridge, run_dir: str = "") -> None:
        self.bridge = bridge
        self.run_dir = run_dir
        self.bad_lines = 0
        self._saw_finish = False
        self._closed = False

    @property
    def trainer_pid(self) -> int | None:
        return self.bridge.pid()

    def start(self) -> None:
        self.bridge.start()

    def read(self, timeout: float) -> list[Event]:
        events = self.bridge.poll(timeout)
        for event in events:
            if event.get("type") == "sweep_finished":
                self._saw_finish = True
            elif event.get("type") == "sweep_started" and isinstance(event.get("run_dir"), str):
                self.run_dir = self.run_dir or event["run_dir"]
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
        return FeedEnd("died", detail, killed=how.exitcode is not None and how.exitcode < 0)

    def send(self, message: dict[str, Any]) -> None:
        self.bridge.send(message)

    def stop_sweep(self) -> bool:
        """q: ask the trainer for a clean stop, without waiting for it. True when it had already
        ended (tidied up here); False when it finishes the stop on its own (headless)."""
        if self._closed:
            return not self.bridge.is_alive()
        self.bridge.send({"cmd": "stop"})
        if self.bridge.is_alive():
            self.leave()
            return False
        self.stop_trainer()  # nothing left to stop: the queues and the log are tidied
        return True

    def leave(self) -> None:
        """d (or the app ending): the trainer trains on without this app."""
        self._closed = True
        self.bridge.release()

    def stop_trainer(self) -> None:
        """r: end the trainer (a clean stop first, then signals; within about 2 s)."""
        self._closed = True
        self.bridge.shutdown(grace_s=STOP_GRACE_S)

    def close(self) -> None:
        """The app ends without q: a trainer that writes a run trains on (the run directory is the
        record); one still starting, which has recorded nothing, is ended."""
        if self._closed:
            return
        if self.run_dir and self.bridge.is_alive():
            self.leave()
        else:
            self.stop_trainer()


def trainer_log_tail(bridge: Bridge, lines: int = 1) -> str:
    """The last line(s) the trainer wrote to its log, if the bridge keeps one (the crash's cause)."""
    path = getattr(bridge, "log_path", None)
    return log_tail(Path(path), lines) if path else ""
